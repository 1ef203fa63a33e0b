"""Loading textual-image before Textual takes the terminal, probing the terminal only when the answer is used.

textual-image asks the terminal, when it is first imported, whether it draws Sixel or Kitty graphics and how
many pixels a cell has (escape sequences with 0.1 s timeouts; about 0.2 s inside tmux, which answers none of
them), and it must be imported before Textual starts reading the terminal. The half-block and unicode renderers
need none of those answers, and `auto` inside tmux is half-block (tui.widgets.image_preview.renderer_class).
"""

from __future__ import annotations

import io
import os
import sys


def needs_probe(renderer: str) -> bool:
    if renderer in ("halfcell", "unicode"):
        return False
    return not (renderer == "auto" and os.environ.get("TMUX"))


def load_textual_image(renderer: str) -> None:
    """Import textual-image for the `tui.image_renderer` setting; call it before the app runs."""
    if "textual_image.widget" in sys.modules:
        return
    if needs_probe(renderer):
        import textual_image.widget  # noqa: F401
        return
    real = sys.__stdout__
    sys.__stdout__ = io.StringIO()  # not a terminal: textual-image skips its probes (cells assumed 10x20 px)
    try:
        import textual_image.widget  # noqa: F401
    finally:
        sys.__stdout__ = real
