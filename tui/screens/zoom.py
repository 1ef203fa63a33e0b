"""Zoom (`z` on every screen with a preview): the post's original image as large as the terminal allows, drawn
with the best protocol the terminal has (the `tui.image_renderer` choice: Kitty or Sixel where the terminal
answers, half-blocks elsewhere), with the words read on it underneath. `v` opens it in the desktop's viewer
where there is a display (tui.viewer). `z`, `escape` or `q` go back.
"""

from __future__ import annotations

from pathlib import Path

from bizsent.core.collect.ocr import missing
from bizsent.core.store.image_text import ZoomSource, zoom_source
from bizsent.tui.app import BizsentNode
from bizsent.tui.viewer import open_in_viewer
from bizsent.tui.widgets.image_preview import ImagePreview, Picture, load_picture
from bizsent.tui.workers import background, reading
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import Static

CAPTION_ROWS = 2
ZOOM_SCREEN = "zoom"  # the name the one zoom screen is installed under
ZOOM_PX = 1600  # longest side decoded: more than any terminal shows, even through Kitty on a 4K screen
TRUE_COLOUR_HINT = "colours: {depth} (true colour: COLORTERM=truecolor; in tmux see the README)"


def caption(source: ZoomSource | None, picture: Picture, depth: str | None) -> Text:
    """The lines under the zoomed image: what it is, the words read on it, the keys."""
    if source is None:
        return Text("post no longer in the store", style="bold")
    if source.text is None:
        words = "not read yet (bizsent read-images)" if missing() is None else "no OCR here: pip install -e .[ocr]"
    else:
        words = source.text.replace("\n", " · ") or "(no text found)"
    size = f"{picture.image.width}x{picture.image.height} px" if picture.image is not None else picture.reason
    line = Text.assemble((f"post {source.post_id}", "bold"), f"  {size}  ", ("on the image: ", "dim"), words)
    hint = f"  ·  {TRUE_COLOUR_HINT.format(depth=depth)}" if depth in ("256", "standard") else ""
    line.append(f"\nz/escape back · v desktop viewer{hint}", style="dim")
    return line


def image_file(image_dir: Path, path: str | None) -> str | None:
    """A stored image path as a file name: relative ones are under the image folder (as Trends reads them)."""
    return str(image_dir / path) if path else None


def zoom_picture(source: ZoomSource | None, image_dir: Path, renderer: str, size: Size) -> Picture:
    """The post's original image decoded and drawn for `size` (in a worker thread)."""
    if source is None or source.status == "none":
        return Picture(reason="post has no image" if source else "post no longer in the store")
    return load_picture(image_file(image_dir, source.path), source.status, source.reason, max_px=ZOOM_PX,
                        renderer=renderer, size=size)


class ZoomKeys(BizsentNode):
    """Mixin for a screen with a preview: `z` zooms and `v` opens the desktop viewer, on the post that
    `zoom_post()` names (None: nothing shown)."""

    def zoom_post(self) -> int | None:
        raise NotImplementedError

    def action_zoom(self) -> None:
        pid = self.zoom_post()
        if pid is None:
            self.notify("no post on screen to zoom")
            return
        # The picture is read, decoded and drawn for the cells it will have (the terminal less the caption)
        # before the zoom screen opens, so that screen's first frame already shows it: one paint, not two.
        size = self.app.size
        self._prepare_zoom(pid, self.bizsent.settings.tui.image_renderer,
                           Size(size.width, max(size.height - CAPTION_ROWS, 1)))

    @background("loading the zoomed image", group="zoom", exclusive=True)
    def _prepare_zoom(self, pid: int, renderer: str, size: Size) -> None:
        with reading(self.bizsent.db_path) as db:
            source = zoom_source(db, pid)
        picture = zoom_picture(source, self.bizsent.settings.image_dir, renderer, size)
        self.bizsent.call_from_thread(self._open_zoom, pid, source, picture)

    def _open_zoom(self, pid: int, source: ZoomSource | None, picture: Picture) -> None:
        if self.app.screen is not self:  # the user moved on meanwhile
            return
        # One zoom screen per console, installed once and shown again: no new widgets, styles or layout for
        # every zoom, only the new picture.
        renderer = self.bizsent.settings.tui.image_renderer
        if not self.app.is_screen_installed(ZOOM_SCREEN):
            self.app.install_screen(ZoomScreen(renderer), ZOOM_SCREEN)
        screen = self.app.get_screen(ZOOM_SCREEN)
        assert isinstance(screen, ZoomScreen)
        if screen.open:  # left open on another screen (F-keys switched away from it): that one stays as it is
            screen = ZoomScreen(renderer)
        screen.set_view(pid, source, picture)
        screen.open = True
        self.app.push_screen(screen)

    def action_viewer(self) -> None:
        pid = self.zoom_post()
        if pid is None:
            self.notify("no post on screen to open")
            return
        self._open_viewer(pid)

    @background("opening the desktop viewer", group="viewer", exclusive=True)
    def _open_viewer(self, post_id: int) -> None:
        with reading(self.bizsent.db_path) as db:
            source = zoom_source(db, post_id)
        path = image_file(self.bizsent.settings.image_dir, source.path) if source else None
        self.bizsent.call_from_thread(self.bizsent.notify, open_in_viewer(path))


class ZoomScreen(ZoomKeys, Screen[None]):
    """A whole screen, not a modal over the last one: nothing beneath it is composited on every frame."""

    BINDINGS = [
        Binding("z,escape,q", "close", "back"),
        Binding("v", "viewer", "desktop viewer"),
    ]
    DEFAULT_CSS = """
    ZoomScreen { background: $background; }
    ZoomScreen > ImagePreview { width: 1fr; height: 1fr; }
    ZoomScreen > #zoom-caption { height: CAPTION; padding: 0 1; }
    """.replace("CAPTION", str(CAPTION_ROWS))

    def __init__(self, renderer: str) -> None:
        super().__init__()
        self._renderer = renderer
        self.post_id = 0
        self.source: ZoomSource | None = None
        self.picture = Picture(reason="loading")
        self.shown = False  # the image (or why there is none) is on screen
        self.open = False  # pushed on a screen stack and not closed yet

    def set_view(self, post_id: int, source: ZoomSource | None, picture: Picture) -> None:
        """What to show next time the screen is shown."""
        self.post_id, self.source, self.picture, self.shown = post_id, source, picture, False
        if self.is_mounted:
            self._draw()

    def compose(self) -> ComposeResult:
        yield ImagePreview(self._renderer, id="zoom-image")
        yield Static(id="zoom-caption")

    def on_mount(self) -> None:
        self._draw()

    def _draw(self) -> None:
        self.query_one(ImagePreview).show(self.picture)
        self.query_one("#zoom-caption", Static).update(caption(self.source, self.picture,
                                                               self.app.console.color_system))

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        preview = self.query_one(ImagePreview)
        if self.picture.strips and preview.showing != "cells":
            self.call_after_refresh(self._painted)  # laid out, but the cells come with the next frame
            return
        self.shown = True

    def action_close(self) -> None:
        self.open = False
        self.dismiss(None)

    def zoom_post(self) -> int | None:
        return self.post_id
