"""The `?` modal: what the current screen is for, its keys, the app's keys, and any screen-specific text
(the Label screen ships the user's labeling rules) rendered as Markdown."""

from __future__ import annotations

from importlib.resources import files

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Markdown, Static


def _keys_list(bindings: list[Binding]) -> list[str]:
    rows = []
    for binding in bindings:
        keys = ", ".join(k.strip() for k in binding.key.split(","))
        keys = keys.replace("slash", "/").replace("question_mark", "?")
        rows.append(f"- `{keys}` {binding.description or binding.action}")
    return rows


def help_markdown(screen: Screen, app_bindings: list[Binding]) -> str:
    title = getattr(screen, "TITLE", None) or type(screen).__name__
    parts = [f"# {title}", getattr(screen, "HELP", ""), "## Keys", *_keys_list(list(screen.BINDINGS))]
    parts += ["", "## Everywhere", *_keys_list(app_bindings)]
    extra = getattr(screen, "HELP_FILE", None)
    if extra:
        parts += ["", files("tui").joinpath(extra).read_text(encoding="utf-8")]
    return "\n".join(parts)


class HelpModal(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self._markdown = markdown

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="modal-box"):
            yield Markdown(self._markdown, id="help-text")
            yield Static("escape closes · arrows scroll", classes="modal-title")

    def on_mount(self) -> None:
        self.query_one("#help-box").focus()
