"""A post's picture, drawn with textual-image, or one clean line saying why it can't be shown.

textual-image probes the terminal once, when `textual_image.widget` is first imported, and that must happen
before Textual takes over the terminal: importing this module (done by tui.app) takes care of it, and the CLI
loads it first through tui.terminal, which skips the probe where its answer would not be used.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from bizsent.tui.terminal import half_blocks_in_tmux
from bizsent.tui.workers import background
from PIL import Image as PILImage
from rich.color import Color
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static
from textual_image._geometry import ImageSize
from textual_image._terminal import get_cell_size
from textual_image.renderable.halfcell import Image as HalfcellRenderable
from textual_image.renderable.unicode import Image as UnicodeRenderable
from textual_image.widget import HalfcellImage, SixelImage, TGPImage, UnicodeImage
from textual_image.widget import Image as AutoImage

RENDERERS: dict[str, type[Widget]] = {
    "halfcell": HalfcellImage,
    "unicode": UnicodeImage,
    "sixel": SixelImage,
    "kitty": TGPImage,
}


def renderer_class(name: str) -> type[Widget]:
    """The image widget class for the `tui.image_renderer` setting.

    auto keeps textual-image's own choice (Kitty/Sixel when the terminal answers, half-block otherwise),
    except inside tmux with a textual-image too old to pass graphics through it: there half-block always works.
    """
    if name == "auto":
        return HalfcellImage if half_blocks_in_tmux() else AutoImage
    return RENDERERS[name]


@dataclass(frozen=True, slots=True)
class Picture:
    """A decoded image ready to draw, or the reason there is none.

    `strips` holds the image already drawn as text cells for `size` (half-block/unicode renderers), made in
    the worker that decoded it: drawing ~1,500 coloured cells takes tens of ms, too slow for the event loop
    between two key presses.
    """

    image: PILImage.Image | None = None
    reason: str = "no image"
    strips: tuple[Strip, ...] = ()
    size: Size = Size(0, 0)


NO_SIZE = Size(0, 0)
NO_POST = "no post"  # Picture.reason where no post is shown at all: nothing is missing, the pane stays blank


def prerender(image: PILImage.Image, renderer: str, size: Size) -> tuple[Strip, ...]:
    """The image as cell strips fitted into `size`, for text renderers; () for graphics protocols."""
    renderable = getattr(renderer_class(renderer), "_Renderable", None)
    if renderable not in (HalfcellRenderable, UnicodeRenderable) or size.width < 1 or size.height < 1:
        return ()
    if renderable is HalfcellRenderable:
        return halfcell_strips(image, size)
    console = Console(width=size.width, height=size.height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor")
    options = console.options.update_dimensions(size.width, size.height)
    lines = console.render_lines(renderable(image, "auto", "auto"), options, pad=False)
    return tuple(Strip(line) for line in lines if line)


def halfcell_strips(image: PILImage.Image, size: Size) -> tuple[Strip, ...]:
    """Half-block cells ('▀': upper pixel as foreground, lower as background), the same picture textual-image
    draws, built straight from the pixel bytes with runs of equal cells merged: several times faster."""
    width, height = ImageSize(image.width, image.height, "auto", "auto").get_cell_size(
        size.width, size.height, get_cell_size())
    if width < 1 or height < 1:
        return ()
    pixels = image.convert("RGB").resize((width, height * 2)).tobytes()
    row_bytes = width * 3
    styles: dict[bytes, Style] = {}
    strips = []
    for y in range(height):
        top = pixels[2 * y * row_bytes:(2 * y + 1) * row_bytes]
        bottom = pixels[(2 * y + 1) * row_bytes:(2 * y + 2) * row_bytes]
        segments = []
        run_key, run = b"", 0
        for x in range(0, row_bytes, 3):
            key = top[x:x + 3] + bottom[x:x + 3]
            if key == run_key:
                run += 1
                continue
            if run:
                segments.append(Segment("▀" * run, styles[run_key]))
            if key not in styles:
                styles[key] = Style(color=Color.from_rgb(*key[:3]), bgcolor=Color.from_rgb(*key[3:]))
            run_key, run = key, 1
        segments.append(Segment("▀" * run, styles[run_key]))
        strips.append(Strip(segments, width))
    return tuple(strips)


def load_picture(path: str | None, status: str = "ok", reason: str = "", max_px: int = 640,
                 renderer: str = "auto", size: Size = NO_SIZE) -> Picture:
    """Decode, downscale and (for text renderers) pre-draw the image at `path`, in a worker thread."""
    if status != "ok":
        return Picture(reason=f"{status}{': ' + reason if reason else ''}")
    if not path:
        return Picture(reason="missing: no file recorded")
    if not Path(path).exists():
        return Picture(reason=f"missing: {path} is not on disk")
    try:
        with PILImage.open(path) as img:
            img.draft("RGB", (max_px, max_px))  # JPEG: decode at reduced size, much faster
            frame = img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        return Picture(reason=f"corrupt: {exc}")
    frame.thumbnail((max_px, max_px))
    return Picture(image=frame, reason="", strips=prerender(frame, renderer, size), size=size)


class CellImage(Widget):
    """Draws pre-rendered strips, centred, through the Line API: no image work on the event loop.

    It fills the preview whatever the picture's shape, so a new picture is a repaint of this widget alone,
    never a relayout of the screen.
    """

    DEFAULT_CSS = "CellImage { width: 1fr; height: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._strips: tuple[Strip, ...] = ()
        self._placed: tuple[tuple[Strip, ...], Size] = ((), Size(0, 0))

    @property
    def picture_size(self) -> Size:
        """Cells the picture itself covers (the rest of the widget is blank margin)."""
        return Size(max((strip.cell_length for strip in self._strips), default=0), len(self._strips))

    def set_strips(self, strips: tuple[Strip, ...]) -> None:
        self._strips = strips
        self._placed = ((), Size(0, 0))
        self.refresh()

    def _centred(self) -> tuple[Strip, ...]:
        # Padded once per picture and size, and the same Strip objects returned on every repaint, so the
        # compositor's per-strip caches (colour filters) hit instead of redoing ~1,500 styled cells.
        size = self.content_size
        if self._placed[1] != size:
            width, height = self.picture_size
            left = max((size.width - width) // 2, 0)
            top = max((size.height - height) // 2, 0)
            blank = Strip.blank(size.width)
            rows = [blank] * top
            for strip in self._strips[:size.height - top]:
                rows.append(Strip.join([Strip.blank(left), strip]).crop_extend(0, size.width, None))
            rows += [blank] * (size.height - len(rows))
            self._placed = (tuple(rows), size)
        return self._placed[0]

    def render_line(self, y: int) -> Strip:
        rows = self._centred()
        return rows[y] if y < len(rows) else Strip.blank(self.content_size.width)


class ImagePreview(Widget):
    """Shows a Picture; swaps between the image widget and a text placeholder without remounting.

    Pictures pre-drawn for another size (the terminal was resized) are drawn again for the new size in a
    worker; meanwhile textual-image's widget shows them. A Resized message tells the screen, so it can redraw
    what it prefetched.
    """

    DEFAULT_CLASSES = "image-preview"
    DEFAULT_CSS = """
    ImagePreview {
        height: 1fr;
        & #picture { width: auto; height: auto; }
        /* fills the pane and centres the picture itself: a new picture never re-lays out */
        & #cells { width: 1fr; height: 1fr; }
        & .placeholder { width: auto; color: $warning; padding: 1; }
    }
    """

    @dataclass
    class Resized(Message):
        """The cells an image may fill here changed (pictures pre-drawn for the old size are stale)."""

        preview: ImagePreview
        size: Size

    def __init__(self, renderer: str = "auto", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._renderer_name = renderer
        self._renderer = renderer_class(renderer)
        self.picture = Picture(reason="loading")
        self._last_size = NO_SIZE

    @property
    def renderer(self) -> str:
        return self._renderer_name

    @property
    def target_size(self) -> Size:
        """The cells an image may fill here; workers pre-draw pictures for this size."""
        return self.content_region.size

    @property
    def draws_cells(self) -> bool:
        """True for text renderers (half-block, unicode), whose pictures are pre-drawn as strips."""
        return getattr(self._renderer, "_Renderable", None) in (HalfcellRenderable, UnicodeRenderable)

    def compose(self) -> ComposeResult:
        yield CellImage(id="cells")
        with Middle(id="slow"), Center():
            yield self._renderer(id="picture")
            yield Static("", id="placeholder", classes="placeholder")

    def on_mount(self) -> None:
        self.show(self.picture)

    def on_resize(self) -> None:
        size = self.target_size
        if size == self._last_size:
            return
        self._last_size = size
        if self.picture.image is not None and self.picture.size != size and self.draws_cells and size.area:
            self._redraw(self.picture, size)
        elif self.picture.strips and self.picture.size == size:
            self.show(self.picture)  # pre-drawn for this size before it was laid out: shown now, as cells
        self.post_message(self.Resized(self, size))

    @background("drawing the image", group="image-redraw", exclusive=True)
    def _redraw(self, picture: Picture, size: Size) -> None:
        assert picture.image is not None
        redrawn = Picture(picture.image, picture.reason, prerender(picture.image, self.renderer, size), size)
        self.app.call_from_thread(self._redrawn, picture, redrawn)

    def _redrawn(self, old: Picture, new: Picture) -> None:
        if self.picture is old:  # still the picture on screen
            self.show(new)

    def show(self, picture: Picture) -> None:
        self.picture = picture
        if not self.is_mounted:
            return
        cells = self.query_one("#cells", CellImage)
        image = self.query_one("#picture")
        placeholder = self.query_one("#placeholder", Static)
        # Not laid out yet (no size): cells drawn for the size it is expected to get go up in the first frame;
        # on_resize draws them again if that size turns out different.
        fast = bool(picture.strips) and (picture.size == self.target_size or not self.target_size.area)
        cells.set_strips(picture.strips if fast else ())
        cells.display = fast
        self.query_one("#slow").display = not fast
        # The textual-image widget draws graphics protocols, and text images made for another size. Setting
        # its image re-lays out the screen, even to the same None: only when it really changes.
        slow_image = picture.image if picture.image is not None and not fast else None
        if image.image is not slow_image:
            image.image = slow_image
        image.display = slow_image is not None
        placeholder.display = picture.image is None
        if picture.image is None:
            placeholder.update(self.placeholder_text)
        elif not fast and self.draws_cells and self.target_size.area:
            self._redraw(picture, self.target_size)  # pre-drawn for another size (before a resize)

    @property
    def showing(self) -> str:
        """'cells', 'widget' or 'placeholder': which of the three ways the picture is on screen."""
        if self.query_one("#cells").display:
            return "cells"
        return "widget" if self.query_one("#picture").display else "placeholder"

    @property
    def placeholder_text(self) -> str:
        """What the placeholder says (empty while an image is shown)."""
        if self.picture.image is not None:
            return ""
        if self.picture.reason == "loading":
            return "loading image…"
        if self.picture.reason == NO_POST:
            return ""
        return f"image missing/corrupt: {self.picture.reason}"
