"""The Label screen's post pane: the image and the text side by side, and the next posts made ready.

It prefetches the posts the screen says are coming (`follow`) with their images already decoded and drawn and
their text already wrapped, into panes whose size never depends on the post, so showing the next one is a
repaint, never a relayout. Other labels of a post are never read here (no anchoring).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bizsent.core.label.queue import LabelPost, label_posts
from bizsent.tui.app import BizsentNode
from bizsent.tui.style import format_time
from bizsent.tui.widgets.image_preview import NO_POST, ImagePreview, Picture, load_picture
from bizsent.tui.widgets.post_detail import TextPane, Wrapped, image_words, post_text, wrap
from bizsent.tui.workers import background, reading
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.message import Message
from textual.widgets import Static

IMAGE_PX = 800  # "large" image: enough for Kitty/Sixel, trivially downscaled again by half-block

Item = tuple[LabelPost, Picture, Wrapped]


class LabelPostView(BizsentNode, Horizontal):
    """`follow(behind, ahead)` says which posts to keep and which to prepare (the shown one first in `ahead`);
    `show(pid, where, empty)` draws one, or `empty` when there is none."""

    DEFAULT_CSS = """
    LabelPostView {
        height: 1fr;
        & > #label-left { width: 1fr; }
        & #label-image-text { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
        & > #label-side { width: 1fr; padding: 0 1; border-left: solid $primary 50%; }
        & #label-meta { height: 1; }
        & TextPane { height: 1fr; }
    }
    """

    @dataclass
    class ItemsLoaded(Message):
        """Prefetched posts, their images decoded and their text wrapped. The view keeps them; it bubbles on to
        the screen, which shows the post it waits for."""

        items: list[Item]

    def __init__(self, renderer: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._renderer = renderer
        self.items: dict[int, Item] = {}
        self._loading: set[int] = set()
        self._behind: list[int] = []
        self._ahead: list[int] = []
        self._arrived = asyncio.Event()  # set whenever prepared posts come in
        self._drawn: Item | None = None  # the prepared post drawn now ("loading…" is not a post drawn)

    def compose(self) -> ComposeResult:
        with Vertical(id="label-left"):
            yield ImagePreview(self._renderer, id="label-image")
            yield Static(id="label-image-text")
        with Vertical(id="label-side"):
            yield Static(id="label-meta")
            yield TextPane(id="label-text", classes="post-text")

    def on_mount(self) -> None:
        self.query_one(TextPane).can_scroll_by_key = True

    @property
    def preparing(self) -> frozenset[int]:
        """The posts being read and drawn in a worker now."""
        return frozenset(self._loading)

    @property
    def shown(self) -> int | None:
        """The post drawn now, None while one is loading."""
        return self._drawn[0].id if self._drawn else None

    def draws(self, pid: int | None) -> bool:
        """Whether `pid` is drawn as prepared now: not when a newer preparation (after a resize) came in."""
        return self._drawn is not None and pid is not None and self._drawn is self.items.get(pid)

    def follow(self, behind: list[int], ahead: list[int]) -> None:
        self._behind, self._ahead = behind, ahead

    def show(self, pid: int | None, where: str, empty: Text) -> None:
        meta = self.query_one("#label-meta", Static)
        body = self.query_one(TextPane)
        preview = self.query_one(ImagePreview)
        words = self.query_one("#label-image-text", Static)
        shown = self.items.get(pid) if pid is not None else None
        self._drawn = shown
        words.update(image_words(shown[0].image_text) if shown and shown[0].image_text else "", layout=False)
        if pid is None:
            preview.show(Picture(reason=NO_POST))
            meta.update("", layout=False)
            body.show(empty)
        elif pid in self.items:
            post, picture, text = self.items[pid]
            preview.show(picture)
            # Where the post is in the queue before its time: a narrow pane cuts the end of the line.
            meta.update(Text.assemble((f"post {post.id}", "bold"), (f"  {where}", "dim"),
                                      (f"  {format_time(post.time)}", "dim"), no_wrap=True), layout=False)
            body.show(text)
        else:
            preview.show(Picture(reason="loading"))
            meta.update(Text(f"post {pid}", style="bold"), layout=False)
            body.show(Text("loading…", style="dim"))
            self.prefetch()  # now, not after the "loading" frame: the user waits for it

    async def until_ready(self, pid: int | None, within: float) -> None:
        """Wait up to `within` seconds for `pid` to be prepared (its preparation starts now if need be)."""
        if pid is None or pid in self.items:
            return
        self.prefetch()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while pid not in self.items and (left := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def scroll_text(self, pages: int) -> None:
        pane = self.query_one(TextPane)
        pane.scroll_by(pages * max(pane.content_size.height - 1, 1))

    def prefetch(self) -> None:
        """Prepare the posts ahead. While the first (the one on screen) is not ready it is prepared alone: a
        worker drawing the others would hold the GIL while it is read and painted. The screen asks again once
        it is shown."""
        missing = [pid for pid in self._ahead if pid not in self.items]
        if self._ahead and self._ahead[0] not in self.items:
            missing = missing[:1]
        wanted = [pid for pid in missing if pid not in self._loading]
        if wanted:
            self._loading.update(wanted)
            preview = self.query_one(ImagePreview)
            self._load_items(wanted, preview.renderer, preview.target_size, self.query_one(TextPane).text_width)

    @background("loading the next posts", group="label-prefetch")
    def _load_items(self, ids: list[int], renderer: str, size: Size, text_width: int) -> None:
        with reading(self.bizsent.db_path) as db:
            posts = label_posts(db, ids)
        # Prepare one at a time and post each: the post on screen may be waiting for the first.
        for post in posts:
            picture = load_picture(post.image_path, max_px=IMAGE_PX, renderer=renderer, size=size)
            text = wrap(post_text(post.text, post.subject), text_width)
            self.post_message(self.ItemsLoaded([(post, picture, text)]))

    def on_label_post_view_items_loaded(self, message: LabelPostView.ItemsLoaded) -> None:
        preview = self.query_one(ImagePreview)
        stale = False
        for post, picture, text in message.items:
            self._loading.discard(post.id)
            if picture.image is not None and preview.draws_cells and picture.size != preview.target_size:
                stale = True  # drawn for the size before a resize: draw it again
                continue
            self.items[post.id] = (post, picture, text)
        window = {*self._behind, *self._ahead}
        for pid in [pid for pid in self.items if pid not in window]:
            del self.items[pid]
        self._arrived.set()
        if stale:
            self.prefetch()

    def on_image_preview_resized(self, message: ImagePreview.Resized) -> None:
        # Prefetched pictures were drawn for the old size: draw them again now, not one by one as they show
        # (until then they would go through textual-image's much slower widget). The preview redraws the one
        # on screen meanwhile.
        message.stop()
        self.items.clear()
        self.prefetch()
