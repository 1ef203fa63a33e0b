"""The `?` modal: what the current screen is for, its keys, the app's keys, and any screen-specific text
(the Label screen ships the user's labeling rules) rendered as Markdown."""

from __future__ import annotations

from importlib.resources import files

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Markdown, Static


def keys_list(bindings: list[Binding]) -> list[str]:
    rows = []
    for binding in bindings:
        keys = ", ".join(k.strip() for k in binding.key.split(","))
        keys = keys.replace("slash", "/").replace("question_mark", "?")
        rows.append(f"- `{keys}` {binding.description or binding.action}")
    return rows


def _not_taken(app_bindings: list[Binding], screen_bindings: list) -> list[Binding]:
    """The app's bindings minus the keys the screen binds itself (those win): on Label `4` and `q` are not
    "everywhere" keys, only `F4` and a confirmed quit are."""
    taken = {k.strip() for b in screen_bindings if isinstance(b, Binding) for k in b.key.split(",")}
    kept = []
    for binding in app_bindings:
        keys = [k.strip() for k in binding.key.split(",") if k.strip() not in taken]
        if keys:
            kept.append(Binding(",".join(keys), binding.action, binding.description, show=binding.show))
    return kept


def help_markdown(screen: Screen, app_bindings: list[Binding]) -> str:
    title = getattr(screen, "TITLE", None) or type(screen).__name__
    parts = [f"# {title}", getattr(screen, "HELP", ""), "## Keys", *keys_list(list(screen.BINDINGS))]
    parts += ["", "## Everywhere", *keys_list(_not_taken(app_bindings, screen.BINDINGS))]
    extra = getattr(screen, "HELP_FILE", None)
    if extra:
        parts += ["", files("bizsent.tui").joinpath(extra).read_text(encoding="utf-8")]
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
