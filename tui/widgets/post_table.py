"""A virtualised post list: it holds only ids and draws just the rows on screen (toolong's approach).

Textual's DataTable measures every cell up front (seconds for 100,000 posts); this widget keeps the id list,
fetches the rows that scroll into view in a worker thread, caches them, and renders through the Line API.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bizsent.core.label import providers
from bizsent.core.store.browse import LabelMark, PostRow
from bizsent.tui.keys import nav_bindings
from bizsent.tui.style import LABEL_COLORS, LABEL_GLYPHS, format_time
from bizsent.tui.workers import background
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

# One letter per origin (core.labels.origin); each provider declares its own (core.label.providers).
SOURCE_MARK = {"human": "H", "model": "M", "pseudo": "P"}
IMAGE_STYLE = {"ok": "green", "pending": "yellow", "corrupt": "red", "missing": "red", "unsupported": "magenta"}
COLUMNS = (("id", 7), ("time", 14), ("labels", 8), ("image", 8))  # the text preview takes the rest
ROW_CACHE = 5_000
PREFETCH_SCREENS = 2  # rows fetched beyond the visible ones, in screen heights, so scrolling rarely waits


def _cell(text: str, width: int) -> str:
    return text[:width].ljust(width)


def labels_legends() -> list[str]:
    """What the labels column's letters and glyphs mean (one letter per origin, one glyph per label), longest
    first: the header shows the longest that fits."""
    apis = list(providers.registered())
    glyphs = " ".join(f"{glyph}={label[:4]}" for label, glyph in LABEL_GLYPHS.items())
    every = " ".join(f"{mark}={name}" for name, mark in {**SOURCE_MARK, **{p.name: p.mark for p in apis}}.items())
    api_marks = ",".join(p.mark for p in apis)
    return [f"labels: {every} · {glyphs}", f"{glyphs} · H=human {api_marks}=API M=model", f"{glyphs} · H=human"]


def header_line(width: int) -> str:
    """The column names, and the labels column's legend at the right where it fits (`?` has it always)."""
    fixed = " ".join(_cell(name, w) for name, w in COLUMNS)
    head = f"{fixed} text"
    for legend in labels_legends():
        if len(head) + 2 + len(legend) <= width:
            return head + legend.rjust(width - len(head))
    return _cell(head, width)


def source_mark(origin: str) -> str:
    if origin in SOURCE_MARK:
        return SOURCE_MARK[origin]
    known = {p.name: p.mark for p in providers.registered()}
    return known.get(origin, origin[:1].upper())


def _label_segments(marks: Sequence[LabelMark], width: int, base: Style) -> list[Segment]:
    out: list[Segment] = []
    used = 0
    for mark in marks:
        glyph, color = LABEL_GLYPHS.get(mark.label, "?"), LABEL_COLORS.get(mark.label, "white")
        if used + 2 > width:
            break
        out.append(Segment(source_mark(mark.source), base))
        out.append(Segment(glyph, base + Style(color=color, bold=True)))
        used += 2
    out.append(Segment(" " * (width - used), base))
    return out


def row_segments(row: PostRow, width: int, base: Style) -> list[Segment]:
    """One list row as styled segments, exactly `width` cells wide."""
    (_, w_id), (_, w_time), (_, w_labels), (_, w_image) = COLUMNS
    segments = [
        Segment(_cell(str(row.id), w_id) + " ", base + Style(dim=True)),
        Segment(_cell(format_time(row.time), w_time) + " ", base),
        *_label_segments(row.labels, w_labels, base),
        Segment(" ", base),
        Segment(_cell(row.image, w_image) + " ", base + Style(color=IMAGE_STYLE.get(row.image, "bright_black"))),
    ]
    used = w_id + w_time + w_labels + w_image + 4
    segments.append(Segment(_cell(row.preview, max(width - used, 0)), base))
    return segments


class PostTable(ScrollView, can_focus=True):
    """Ids in, rows on demand. `fetch_rows` runs in a worker thread and must not touch the UI."""

    BINDINGS = nav_bindings({"nav.down": "cursor(1)", "nav.up": "cursor(-1)", "nav.page_down": "page(1)",
                             "nav.page_up": "page(-1)", "nav.top": "jump(0)", "nav.bottom": "jump(-1)"})
    COMPONENT_CLASSES = {"post-table--cursor", "post-table--pending"}
    DEFAULT_CSS = """
    PostTable {
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
        /* a grey band keeps the row's label colours (green ▲, the H of a human label) readable */
        & > .post-table--cursor { background: $foreground 12%; text-style: bold; }
        &:focus > .post-table--cursor { background: $foreground 18%; }
        & > .post-table--pending { color: $text-muted; }
    }
    """

    @dataclass
    class RowHighlighted(Message):
        """The cursor moved onto `post_id` (None: the list is empty). Only the newest matters: a held arrow
        key's earlier ones are replaced in the queue."""

        post_id: int | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, PostTable.RowHighlighted)

    @dataclass
    class RowsLoaded(Message):
        """Rows fetched by the table's worker, for the table itself."""

        rows: dict[int, PostRow]

    cursor: reactive[int] = reactive(0, always_update=True, init=False)

    def __init__(self, fetch_rows: Callable[[list[int]], dict[int, PostRow]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._fetch_rows = fetch_rows
        self.ids: list[int] = []
        self._rows: OrderedDict[int, PostRow] = OrderedDict()
        self._wanted: set[int] = set()
        self._fetching = False

    @property
    def current_id(self) -> int | None:
        return self.ids[self.cursor] if 0 <= self.cursor < len(self.ids) else None

    def row(self, post_id: int) -> PostRow | None:
        return self._rows.get(post_id)

    def set_ids(self, ids: list[int]) -> None:
        """Replace the list (a new filter); the cursor goes to the top."""
        self.ids = ids
        self._fetching = False
        self.virtual_size = Size(self.size.width, len(ids))
        self.scroll_to(y=0, animate=False, immediate=True)
        self.cursor = 0
        self.refresh()

    def invalidate(self, post_ids: Sequence[int]) -> None:
        """Forget cached rows (their labels changed) so they are fetched again when drawn."""
        for pid in post_ids:
            self._rows.pop(pid, None)
        self.refresh()

    # -- drawing ---------------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        index = round(self.scroll_offset.y) + y
        width = self.scrollable_content_region.width
        if index >= len(self.ids):
            return Strip.blank(width, self.rich_style)
        pid = self.ids[index]
        base = self.rich_style
        if index == self.cursor:
            base = base + self.get_component_rich_style("post-table--cursor")
        row = self._rows.get(pid)
        if row is None:
            self._want(index)
            pending = base + self.get_component_rich_style("post-table--pending")
            return Strip([Segment(_cell(f"{pid:<7} …", width), pending)], width)
        return Strip(row_segments(row, width, base), width)

    def _want(self, index: int) -> None:
        """Queue the rows around `index` for fetching; one fetch runs at a time."""
        height = max(self.size.height, 1)
        start = max(index - height, 0)
        stop = min(index + PREFETCH_SCREENS * height, len(self.ids))
        self._wanted.update(pid for pid in self.ids[start:stop] if pid not in self._rows)
        if not self._fetching:
            self._fetching = True
            self.call_later(self._start_fetch)

    def _start_fetch(self) -> None:
        wanted, self._wanted = sorted(self._wanted), set()
        if not wanted:
            self._fetching = False
            return
        self._load_rows(wanted)

    @background("reading posts", group="post-rows")
    def _load_rows(self, ids: list[int]) -> None:
        # A failure leaves _fetching set (no retry storm); the app runs this again once the database is back.
        self.post_message(self.RowsLoaded(self._fetch_rows(ids)))

    def on_post_table_rows_loaded(self, message: RowsLoaded) -> None:
        message.stop()
        self._rows.update(message.rows)
        while len(self._rows) > ROW_CACHE:
            self._rows.popitem(last=False)
        self._fetching = False
        if self._wanted:
            self._wanted -= message.rows.keys()
            self._fetching = True
            self.call_later(self._start_fetch)
        self.refresh()

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.ids))

    # -- cursor --------------------------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        width = self.size.width
        top = round(self.scroll_offset.y)
        for index in {old, new}:
            self.refresh(Region(0, index - top, width, 1))
        height = self.scrollable_content_region.height
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False, immediate=True)
        self.post_message(self.RowHighlighted(self.current_id))

    def _move_to(self, index: int) -> None:
        if self.ids:
            self.cursor = min(max(index, 0), len(self.ids) - 1)

    def action_cursor(self, step: int) -> None:
        self._move_to(self.cursor + step)

    def action_page(self, direction: int) -> None:
        self._move_to(self.cursor + direction * max(self.scrollable_content_region.height - 1, 1))

    def action_jump(self, index: int) -> None:
        self._move_to(index if index >= 0 else len(self.ids) - 1)

    def on_click(self, event) -> None:
        self._move_to(round(self.scroll_offset.y) + event.y)
