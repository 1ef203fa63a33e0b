"""Loading textual-image before Textual takes the terminal, probing the terminal only when the answer is used.

textual-image asks the terminal, when it is first imported, whether it draws Sixel or Kitty graphics and how
many pixels a cell has, and it must be imported before Textual starts reading the terminal. The half-block and
unicode renderers need none of those answers. Inside tmux, textual-image 0.14 (Python 3.12+) wraps its queries
and images in tmux's passthrough envelope, so Kitty and Sixel can reach the outer terminal; 0.12 (the newest for
Python 3.11) cannot, and there `auto` inside tmux is half-block without asking (image_preview.renderer_class).
"""

from __future__ import annotations

import io
import os
import sys
from importlib.metadata import version

TMUX_PASSTHROUGH = (0, 14)  # the first textual-image that wraps its graphics for tmux


def passes_through_tmux() -> bool:
    """Whether the installed textual-image can draw Kitty/Sixel graphics from inside tmux."""
    release = tuple(int(part) for part in version("textual-image").split(".")[:2] if part.isdigit())
    return release >= TMUX_PASSTHROUGH


def half_blocks_in_tmux() -> bool:
    """`auto` means half-blocks without asking the terminal: inside tmux, with a textual-image that cannot pass
    graphics through it."""
    return bool(os.environ.get("TMUX")) and not passes_through_tmux()


def needs_probe(renderer: str) -> bool:
    if renderer in ("halfcell", "unicode"):
        return False
    return not (renderer == "auto" and half_blocks_in_tmux())


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
