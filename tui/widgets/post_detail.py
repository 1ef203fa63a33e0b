"""A post's clean text (greentext in green) and, on the Posts screen, every label and note it has.

Both are drawn in a TextPane: a fixed-size pane that scrolls its own lines. Showing the next post there repaints
the pane only; a widget whose height follows its text would re-lay out the whole screen on every post.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from bizsent.core.store.browse import PostDetail
from bizsent.tui.keys import nav_bindings
from bizsent.tui.style import format_time, label_color
from rich.console import Console, Group, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events
from textual.strip import Strip
from textual.widget import Widget

QUOTE_LINK = re.compile(r"^>>\d+")
LABEL_COLUMNS = (("source", 6), ("labeler", 6), ("label", 7), ("conf", 4), ("flags", 5), ("split", 10))


def post_text(text: str, subject: str = "") -> Text:
    """Clean text with greentext ('>' lines, but not '>>123' quote links) styled green."""
    out = Text()
    if subject:
        out.append(subject + "\n", style="bold")
    for i, line in enumerate(text.splitlines()):
        if i:
            out.append("\n")
        if line.startswith(">") and not QUOTE_LINK.match(line):
            out.append(line, style="green")
        elif QUOTE_LINK.match(line):
            out.append(line, style="underline bright_blue")
        else:
            out.append(line)
    return out


def labels_table(detail: PostDetail) -> Table | Text:
    if not detail.labels:
        return Text("no labels yet", style="dim")
    table = Table(box=None, pad_edge=False, show_edge=False, expand=False, padding=(0, 1), collapse_padding=True)
    # In a narrow pane the labeler's long name gives way first (Rich shrinks only wrapping columns; its one
    # word is cut with an ellipsis): every other column keeps its whole word.
    for column, least in LABEL_COLUMNS:
        table.add_column(column, style="dim" if column == "labeler" else None, no_wrap=column != "labeler",
                         min_width=least, overflow="ellipsis")
    for label in detail.labels:
        flags = " ".join(f for f, on in (("sarcastic", label.sarcastic), ("unsure", label.unsure)) if on)
        confidence = "-" if label.confidence is None else f"{label.confidence:.2f}"
        table.add_row(label.source, label.labeler or "-", Text(label.label, style=label_color(label.label)),
                      confidence, flags or "-", label.split)
    return table


def earlier_text(detail: PostDetail, last: int = 5) -> Text:
    """The human label's earlier values: what it was, what it became, when and by whom (newest last)."""
    out = Text("earlier human labels", style="bold")
    for change in detail.earlier[-last:]:
        old = change.old
        assert old is not None  # updates and deletes always have an old value
        out.append(f"\n{change.changed_at[:16].replace('T', ' ')} ", style="dim")
        out.append(old.label, style=label_color(old.label))
        out.append(f" ({old.split})")
        if change.new is None:
            out.append(" deleted")
        else:
            out.append(" → ")
            out.append(change.new.label, style=label_color(change.new.label))
            out.append(f" ({change.new.split})")
        out.append(f" by {change.changed_by or 'unknown'}", style="dim")
    return out


def header(detail: PostDetail) -> Text:
    return Text.assemble(
        (f"/{detail.board}/ No.{detail.post_no}", "bold"),
        (f"  thread {detail.thread_no}  {format_time(detail.time)}  source {detail.source}", "dim"),
    )


def image_words(text: str) -> Text:
    """The words read on the image (OCR), one line: what `/` also searches."""
    return Text.assemble(("on the image: ", "dim"), (text.replace("\n", " · "), "italic"))


@dataclass(frozen=True, slots=True)
class Wrapped:
    """A renderable and its lines for one width, made in a worker so the event loop only draws them."""

    renderable: RenderableType
    lines: tuple[Strip, ...]
    width: int


def wrap(renderable: RenderableType, width: int) -> Wrapped:
    return Wrapped(renderable, render_strips(renderable, width), width)


def render_strips(renderable: RenderableType, width: int) -> tuple[Strip, ...]:
    """`renderable` wrapped to `width` cells as strips; safe in a worker thread (a console of its own)."""
    if width < 1:
        return ()
    console = Console(width=width, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    lines = console.render_lines(renderable, console.options.update_width(width), pad=False)
    return tuple(Strip(line).simplify() for line in lines)


class TextPane(Widget):
    """Any Rich renderable in a pane whose size never depends on it; it scrolls its own lines.

    `show` may be given strips already wrapped (in a worker) for the pane's current width; otherwise the
    renderable is wrapped when first drawn. Mouse wheel or `scroll_by` moves through long texts; the last row
    says how much more there is.
    """

    DEFAULT_CSS = "TextPane { height: 1fr; }"
    can_scroll_by_key = False  # screens that bind keys to scroll_by set this, so the hint names them
    scroll_keys = "pgdn"  # the key the hint names

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.renderable: RenderableType = ""
        self._lines: tuple[Strip, ...] = ()
        self._width = -1  # the width self._lines were wrapped for
        self.top = 0

    @property
    def text_width(self) -> int:
        """The width the pane wraps to: what a worker pre-wrapping for it should use."""
        return self.content_size.width

    def show(self, content: RenderableType | Wrapped) -> None:
        """Show a renderable (wrapped when drawn) or one already wrapped (used as is if the width still fits)."""
        if isinstance(content, Wrapped):
            self.renderable, self._lines, self._width = content.renderable, content.lines, content.width
        else:
            self.renderable, self._lines, self._width = content, (), -1
        self.top = 0
        self.refresh()

    @property
    def lines(self) -> tuple[Strip, ...]:
        width = self.text_width
        if width != self._width:
            self._lines, self._width = render_strips(self.renderable, width), width
        return self._lines

    def scroll_page(self, direction: int) -> None:
        self.scroll_by(direction * max(self.content_size.height - 1, 1))

    def scroll_by(self, rows: int) -> None:
        height = self.content_size.height
        top = min(max(self.top + rows, 0), max(len(self.lines) - height, 0))
        if top != self.top:
            self.top = top
            self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        lines = self.lines
        below = len(lines) - self.top - height
        if y == height - 1 and below > 0:
            keys = f", {self.scroll_keys}" if self.can_scroll_by_key else ""
            more = f"… {below + 1} more lines (wheel{keys})"
            return Strip([Segment(more[:width].ljust(width), Style(dim=True, italic=True))], width)
        index = self.top + y
        return lines[index].extend_cell_length(width) if index < len(lines) else Strip.blank(width)

    def on_resize(self) -> None:
        self.top = 0

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.scroll_by(3)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.scroll_by(-3)


def notes_text(detail: PostDetail) -> Text:
    return Text("\n".join(f"note: {n}" for n in detail.notes), style="italic")


class PostDetailView(TextPane, can_focus=True):
    """Header, text, labels and notes of one post in one pane; `show_detail(None)` clears it. Tab reaches it and
    the moving keys scroll it, so its labels and history are readable at 80x24 without a mouse."""

    BINDINGS = nav_bindings({"nav.down": "scroll_lines(1)", "nav.up": "scroll_lines(-1)",
                             "nav.page_down": "scroll_pages(1)", "nav.page_up": "scroll_pages(-1)",
                             "nav.top": "scroll_lines(-1_000_000)", "nav.bottom": "scroll_lines(1_000_000)"})
    DEFAULT_CSS = "PostDetailView:focus { background: $boost; }"
    can_scroll_by_key = True
    scroll_keys = "tab, j/k"

    detail: PostDetail | None = None

    def action_scroll_lines(self, rows: int) -> None:
        self.scroll_by(rows)

    def action_scroll_pages(self, direction: int) -> None:
        self.scroll_page(direction)

    def show_detail(self, detail: PostDetail | None) -> None:
        self.detail = detail
        if detail is None:
            self.show(Text("no post selected", style="dim"))
            return
        parts: list[RenderableType] = [header(detail), post_text(detail.text, detail.subject), "", labels_table(detail)]
        if detail.image_text:
            parts[2:2] = ["", image_words(detail.image_text)]
        if detail.earlier:
            parts += ["", earlier_text(detail)]
        if detail.notes:
            parts += ["", notes_text(detail)]
        self.show(Group(*parts))
