"""bizsent: a terminal operations console for training a multimodal (image + text) sentiment model on 4chan /biz/.

One package whose parts sit in the repository's own folders (pyproject.toml maps them): `bizsent.core` the engine,
`bizsent.jobs` long-running work, `bizsent.tui` the console, and `bizsent.cli` the command line over all three.
"""
