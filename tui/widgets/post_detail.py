"""A post's clean text (greentext in green) and, on the Posts screen, every label and note it has."""

from __future__ import annotations

import re

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.queries import PostDetail, format_time

QUOTE_LINK = re.compile(r"^>>\d+")
LABEL_COLOR = {"bearish": "red", "neutral": "yellow", "bullish": "green"}


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
    table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
    for column in ("source", "labeler", "label", "conf", "flags", "split"):
        table.add_column(column, style="dim" if column == "labeler" else None, no_wrap=True)
    for label in detail.labels:
        flags = " ".join(f for f, on in (("sarcastic", label.sarcastic), ("unsure", label.unsure)) if on)
        confidence = "-" if label.confidence is None else f"{label.confidence:.2f}"
        table.add_row(label.source, label.labeler or "-", Text(label.label, style=LABEL_COLOR.get(label.label, "")),
                      confidence, flags or "-", label.split)
    return table


def header(detail: PostDetail) -> Text:
    return Text.assemble(
        (f"/{detail.board}/ No.{detail.post_no}", "bold"),
        (f"  thread {detail.thread_no}  {format_time(detail.time)}  source {detail.source}", "dim"),
    )


class PostDetailView(VerticalScroll):
    """Text, labels and notes of one post; `show(None)` clears it."""

    def compose(self) -> ComposeResult:
        yield Static(id="detail-header")
        yield Static(id="detail-text", classes="post-text")
        yield Static(id="detail-labels")
        yield Static(id="detail-notes")

    def show(self, detail: PostDetail | None) -> None:
        if detail is None:
            self.query_one("#detail-header", Static).update(Text("no post selected", style="dim"))
            for part in ("#detail-text", "#detail-labels", "#detail-notes"):
                self.query_one(part, Static).update("")
            return
        self.query_one("#detail-header", Static).update(header(detail))
        self.query_one("#detail-text", Static).update(post_text(detail.text, detail.subject))
        self.query_one("#detail-labels", Static).update(labels_table(detail))
        notes = Text("\n".join(f"note: {n}" for n in detail.notes), style="italic") if detail.notes else ""
        self.query_one("#detail-notes", Static).update(notes)
        self.scroll_home(animate=False)
