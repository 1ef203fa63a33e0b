"""Posts: every post in the store, filtered and searched, with a detail pane (image, text, labels, notes)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from bizsent.core.label.human import not_labelable
from bizsent.core.label.providers import origins
from bizsent.core.labels import LABELS, SPLITS
from bizsent.core.store.browse import (
    DISAGREE,
    IMAGE_STATES,
    UNLABELED,
    PostDetail,
    PostFilter,
    PostRow,
    label_sources,
    post_detail,
    post_ids,
    post_rows,
)
from bizsent.tui.keys import with_ids
from bizsent.tui.screens.label import LabelScreen
from bizsent.tui.screens.zoom import ZoomKeys
from bizsent.tui.widgets.image_preview import NO_POST, ImagePreview, Picture, load_picture
from bizsent.tui.widgets.key_bar import KeyBar
from bizsent.tui.widgets.post_detail import PostDetailView
from bizsent.tui.widgets.post_table import PostTable, header_line
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.workers import background, reading
from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

SEARCH_DEBOUNCE_S = 0.25
DETAIL_CACHE = 64
FILTER_FIELDS = ("label", "source", "split", "image")
FILTER_NAMES = {"label": "label", "source": "src", "split": "split", "image": "img"}  # short: fits 80 columns


class PostsScreen(ZoomKeys, Screen):
    TITLE = "Posts"
    CSS_PATH = Path(__file__).parent.parent / "styles" / "posts.tcss"
    BINDINGS = with_ids("posts", [
        Binding("enter", "label_post", "label it"),  # first: the footer drops keys from its end at 80 columns
        Binding("slash", "search", "search"),
        Binding("l", "cycle('label')", "label"),
        Binding("o", "cycle('source')", "source"),
        Binding("t", "cycle('split')", "split"),
        Binding("i", "cycle('image')", "image"),
        Binding("d", "toggle_disagree", "labelers disagree", show=False),  # 80 columns: the footer is full
        Binding("c", "clear_filters", "clear"),
        Binding("r", "reload", "reload"),
        Binding("escape", "focus_list", "to list", show=False),
        Binding("z", "zoom", "zoom", show=False),
        Binding("v", "viewer", "viewer", show=False),
    ])
    HELP = (
        "Every post in the store, newest first. Arrow keys (or j/k, PgUp/PgDn, Home/End) move; the pane below "
        "shows the image, the clean text (greentext in green) and every label and note of the post.\n\n"
        "`l` label, `o` label source, `t` split and `i` image status cycle through their filters; label, source "
        "and split apply to the same label row (e.g. *bullish* from *openai* in *train*); the label cycle ends "
        "with *disagree*, which `d` also toggles: posts to which two API labelers (e.g. openai and gemini) "
        "gave different labels. `/` searches the text (as you type); `escape` returns to the list; `c` clears "
        "every filter; `enter` opens the post under the cursor in the Label screen.\n\n"
        "The labels column shows each label of the post as its origin's letter and the label's glyph, e.g. `H▲` "
        "a human bullish label, `O▼` an openai bearish one (the legend is at the right of the header where it fits)."
    )

    @dataclass
    class IdsLoaded(Message):
        """The list's ids for one filter (generation tells stale results apart)."""

        generation: int
        ids: list[int]

    @dataclass
    class DetailLoaded(Message):
        detail: PostDetail | None
        picture: Picture

    @dataclass
    class SourcesLoaded(Message):
        """The label sources in the store, for the source filter's cycle."""

        sources: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.filter = PostFilter()
        self.choices: dict[str, list[str | None]] = {
            "label": [None, *LABELS, UNLABELED, DISAGREE],
            "source": [None, *origins()],
            "split": [None, *SPLITS],
            "image": [None, *IMAGE_STATES],
        }
        self._generation = 0
        self._details: OrderedDict[int, tuple[PostDetail, Picture]] = OrderedDict()
        self._search_timer: Timer | None = None
        self._keep_id: int | None = None
        self._detail_busy = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="posts-bar"):
            yield Static(id="filters")
            yield Input(placeholder="/ search text", id="search")
        yield Static(id="posts-header", classes="table-header")
        yield PostTable(self._fetch_rows, id="posts")
        with Horizontal(id="posts-detail"):
            yield ImagePreview(self.bizsent.settings.tui.image_renderer, id="preview")
            yield PostDetailView(id="detail")
        yield StatusBar()
        yield KeyBar()

    def on_mount(self) -> None:
        self._show_filters()
        self.query_one(PostTable).focus()
        self._load_sources()
        left_at = self.bizsent.position("posts")  # the post the cursor was on when the console was last closed
        self.reload(keep=left_at if isinstance(left_at, int) else None)

    def on_screen_resume(self) -> None:
        # Labels may have changed on another screen: refetch rows and the detail, keep the cursor's post.
        if self.query_one(PostTable).ids:
            self._details.clear()
            self.query_one(PostTable).invalidate(self.query_one(PostTable).ids)
            self.reload(keep=self.query_one(PostTable).current_id)

    def on_resize(self) -> None:
        self.query_one("#posts-header", Static).update(Text(header_line(self.size.width), style="bold"))

    # -- loading -------------------------------------------------------------------------------------------

    def _fetch_rows(self, ids: list[int]) -> dict[int, PostRow]:
        with reading(self.bizsent.db_path) as db:
            return post_rows(db, ids)

    def reload(self, keep: int | None = None) -> None:
        self._generation += 1
        self._keep_id = keep
        self._load_ids(self.filter, self._generation)

    @background("loading the posts", group="post-ids", exclusive=True)
    def _load_ids(self, f: PostFilter, generation: int) -> None:
        with reading(self.bizsent.db_path) as db:
            ids = post_ids(db, f)
        self.post_message(self.IdsLoaded(generation, ids))

    @background("reading the label sources", group="post-sources")
    def _load_sources(self) -> None:
        with reading(self.bizsent.db_path) as db:
            self.post_message(self.SourcesLoaded(label_sources(db)))

    def on_posts_screen_sources_loaded(self, message: PostsScreen.SourcesLoaded) -> None:
        every = origins()
        known = [s for s in every if s in message.sources] + [s for s in message.sources if s not in every]
        self.choices["source"] = [None, *(known or every)]

    def on_posts_screen_ids_loaded(self, message: PostsScreen.IdsLoaded) -> None:
        if message.generation != self._generation:
            return
        table = self.query_one(PostTable)
        # A reload that keeps the cursor keeps the post it is on now: the user may have moved while it read.
        keep = self._keep_id if self._keep_id is None or table.current_id is None else table.current_id
        table.set_ids(message.ids)
        if keep is not None and keep in message.ids:
            table.cursor = message.ids.index(keep)
        self._show_filters()

    def on_post_table_row_highlighted(self, message: PostTable.RowHighlighted) -> None:
        self.bizsent.note_position("posts", message.post_id)
        if message.post_id is None:
            self.query_one(PostDetailView).show_detail(None)
            self.query_one(ImagePreview).show(Picture(reason=NO_POST))
            return
        cached = self._details.get(message.post_id)
        if cached:
            self._show_detail(*cached)
        elif not self._detail_busy:
            self._start_detail(message.post_id)

    def _start_detail(self, pid: int) -> None:
        # One detail worker at a time: holding an arrow key must not pile up threads fighting the event loop
        # for the GIL; when one finishes, the post under the cursor by then is loaded next.
        self._detail_busy = True
        preview = self.query_one(ImagePreview)
        self._load_detail(pid, preview.renderer, preview.target_size)

    @background("loading the post", group="post-detail", exclusive=True)
    def _load_detail(self, pid: int, renderer: str, size: Size) -> None:
        with reading(self.bizsent.db_path) as db:
            detail = post_detail(db, pid)
        if detail is None:
            picture = Picture(reason="post no longer in the store")
        elif detail.image_status == "none":
            picture = Picture(reason="post has no image")
        else:
            picture = load_picture(detail.image_path, detail.image_status, detail.image_reason,
                                   renderer=renderer, size=size)
        self.post_message(self.DetailLoaded(detail, picture))

    def on_posts_screen_detail_loaded(self, message: PostsScreen.DetailLoaded) -> None:
        self._detail_busy = False
        current = self.query_one(PostTable).current_id
        if message.detail is not None:
            self._details[message.detail.id] = (message.detail, message.picture)
            while len(self._details) > DETAIL_CACHE:
                self._details.popitem(last=False)
            if message.detail.id != current:  # the cursor moved on while this loaded
                if current is not None and current not in self._details:
                    self._start_detail(current)
                elif current is not None:
                    self._show_detail(*self._details[current])
                return
        self._show_detail(message.detail, message.picture)

    def _show_detail(self, detail: PostDetail | None, picture: Picture) -> None:
        self.query_one(PostDetailView).show_detail(detail)
        self.query_one(ImagePreview).show(picture)

    # -- filters ---------------------------------------------------------------------------------------------

    def _show_filters(self) -> None:
        f = self.filter
        # Only the filters that are set, so the line fits 80 columns; it wraps rather than cut the last one.
        parts = [f"{FILTER_NAMES[name]} [b]{getattr(f, name)}[/]" for name in FILTER_FIELDS if getattr(f, name)]
        if f.text:  # a search narrows the list too: "no filter" beside it would be untrue
            parts.append(f"text [b]{escape(f.text)}[/]")
        count = len(self.query_one(PostTable).ids)
        self.query_one("#filters", Static).update(
            f"[b]{count:,}[/] posts │ " + (" │ ".join(parts) if parts else "[dim]no filter: l o t i d[/]")
        )

    def set_filter(self, **changes) -> None:
        self.filter = replace(self.filter, **changes)
        self._show_filters()
        self.reload()

    def zoom_post(self) -> int | None:
        return self.query_one(PostTable).current_id

    def action_cycle(self, field: str) -> None:
        values = self.choices[field]
        current = getattr(self.filter, field)
        index = values.index(current) if current in values else 0
        self.set_filter(**{field: values[(index + 1) % len(values)]})

    def action_toggle_disagree(self) -> None:
        self.set_filter(label=None if self.filter.label == DISAGREE else DISAGREE)

    async def action_label_post(self) -> None:
        pid = self.query_one(PostTable).current_id
        if pid is None:
            self.notify("no post under the cursor")
            return
        with reading(self.bizsent.db_path) as db:  # one indexed read, on the key press that asks for it
            refused = not_labelable(db, pid)
        if refused:
            self.notify(refused, severity="warning")
            return
        await self.app.switch_mode("label")
        screen = self.app.screen
        if isinstance(screen, LabelScreen):
            screen.open_post(pid)

    def action_clear_filters(self) -> None:
        self.query_one("#search", Input).value = ""
        self.set_filter(label=None, source=None, split=None, image=None, text="")

    def action_reload(self) -> None:
        self._details.clear()
        table = self.query_one(PostTable)
        table.invalidate(table.ids)
        self.reload(keep=table.current_id)

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_list(self) -> None:
        self.query_one(PostTable).focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DEBOUNCE_S, lambda: self._apply_search(event.value))

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._apply_search(event.value)
        self.action_focus_list()

    def _apply_search(self, text: str) -> None:
        if text.strip() != self.filter.text:
            self.set_filter(text=text.strip())
