"""Zoom (`z` on every screen with a preview): the post's original image as large as the terminal allows, drawn
with the best protocol the terminal has (the `tui.image_renderer` choice: Kitty or Sixel where the terminal
answers, half-blocks elsewhere), with the words read on it underneath. `v` opens it in the desktop's viewer
where there is a display (tui.viewer). `z`, `escape` or `q` go back.
"""

from __future__ import annotations

from dataclasses import dataclass

from bizsent.core.store.image_text import ZoomSource, zoom_source
from bizsent.tui.app import BizsentNode
from bizsent.tui.viewer import open_in_viewer
from bizsent.tui.widgets.image_preview import ImagePreview, Picture, load_picture
from bizsent.tui.workers import background, reading
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

ZOOM_PX = 1600  # longest side decoded: more than any terminal shows, even through Kitty on a 4K screen
TRUE_COLOUR_HINT = "colours: {depth} (true colour: COLORTERM=truecolor; in tmux see the README)"


def caption(source: ZoomSource | None, picture: Picture, depth: str | None) -> Text:
    """The lines under the zoomed image: what it is, the words read on it, the keys."""
    if source is None:
        return Text("post no longer in the store", style="bold")
    words = ("not read yet (bizsent read-images)" if source.text is None
             else source.text.replace("\n", " · ") or "(no text found)")
    size = f"{picture.image.width}x{picture.image.height} px" if picture.image is not None else picture.reason
    line = Text.assemble((f"post {source.post_id}", "bold"), f"  {size}  ", ("on the image: ", "dim"), words)
    hint = f"  ·  {TRUE_COLOUR_HINT.format(depth=depth)}" if depth in ("256", "standard") else ""
    line.append(f"\nz/escape back · v desktop viewer{hint}", style="dim")
    return line


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
        self.app.push_screen(ZoomScreen(pid, self.bizsent.settings.tui.image_renderer))

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
        self.bizsent.call_from_thread(self.bizsent.notify, open_in_viewer(source.path if source else None))


class ZoomScreen(ZoomKeys, ModalScreen[None]):
    BINDINGS = [
        Binding("z,escape,q", "close", "back"),
        Binding("v", "viewer", "desktop viewer"),
    ]
    DEFAULT_CSS = """
    ZoomScreen { background: $background; }
    ZoomScreen > ImagePreview { width: 1fr; height: 1fr; }
    ZoomScreen > #zoom-caption { height: 2; padding: 0 1; }
    """

    @dataclass
    class Loaded(Message):
        source: ZoomSource | None
        picture: Picture

    def __init__(self, post_id: int, renderer: str) -> None:
        super().__init__()
        self.post_id = post_id
        self._renderer = renderer
        self.source: ZoomSource | None = None
        self.shown = False  # the image (or why there is none) is on screen

    def compose(self) -> ComposeResult:
        yield ImagePreview(self._renderer, id="zoom-image")
        yield Static(Text(f"post {self.post_id}: loading…", style="dim"), id="zoom-caption")

    def on_mount(self) -> None:
        self.call_after_refresh(self._start)  # after the first layout: the preview's size is known

    def _start(self) -> None:
        preview = self.query_one(ImagePreview)
        self._load(preview.renderer, preview.target_size)

    @background("loading the zoomed image", group="zoom", exclusive=True)
    def _load(self, renderer: str, size: Size) -> None:
        with reading(self.bizsent.db_path) as db:
            source = zoom_source(db, self.post_id)
        if source is None or source.status == "none":
            picture = Picture(reason="post has no image" if source else "post no longer in the store")
        else:
            picture = load_picture(source.path, source.status, source.reason, max_px=ZOOM_PX, renderer=renderer,
                                   size=size)
        self.post_message(self.Loaded(source, picture))

    def on_zoom_screen_loaded(self, message: ZoomScreen.Loaded) -> None:
        self.source = message.source
        self.query_one(ImagePreview).show(message.picture)
        self.query_one("#zoom-caption", Static).update(caption(message.source, message.picture,
                                                               self.app.console.color_system))
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        self.shown = True

    def action_close(self) -> None:
        self.dismiss(None)

    def zoom_post(self) -> int | None:
        return self.post_id
