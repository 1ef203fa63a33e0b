"""bizsent: a terminal operations console for training a multimodal (image + text) sentiment model on 4chan /biz/.

One package whose parts sit in the repository's own folders (pyproject.toml maps them): `bizsent.core` the engine,
`bizsent.jobs` long-running work, `bizsent.tui` the console, and `bizsent.cli` the command line over all three.

The floors, from the ground up, as the imports draw them: a module imports only from its own floor and the
floors below (the longest prefix names a module's floor; tests/test_architecture.py reads this table, enforces
it and finds no import circle). Each package's docstring says the same in words.

    0 ground     bizsent core core.errors core.labels core.secure core.sections core.evaluate.metrics core.pods.agent
    1 providers  core.label.providers core.label.labelers core.label.batching
    2 config     core.config core.log
    3 store      core.store
    4 collect    core.collect core.coins core.demo
    5 model      core.model
    6 evaluate   core.evaluate core.pods core.serve core.model.selftrain
    7 label      core.label core.costs core.collect.transfer core.collect.export
    8 jobs       jobs
    9 tui        tui
    10 cli       cli __main__

Why the few modules that sit off their package's floor do: metrics is pure arithmetic over the labels, which
training, agreement and evaluation all use; the in-pod agent is standard library only; the providers declare the
[labeling.NAME] sections that config composes; self-training alternates training and evaluation rounds; import
and export carry human labels, so they obey the human-label rules of core.label.human.
"""
