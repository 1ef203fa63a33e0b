"""The `?` modal: what the current screen is for, its keys, the app's keys, and any screen-specific text
(the Label screen ships the user's labeling rules) rendered as Markdown."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files

from bizsent.tui.keys import NAV, PANE_KEYS, effective_keys, key_lines, key_names
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Markdown, Static


def keys_list(bindings: list[Binding], keymap: Mapping[str, str] | None = None) -> list[str]:
    """One markdown line per binding as bound now (keymap applied): the `?` help and the docs' keys page."""
    return [f"- `{line.keys}` {line.description}" + (f" · id `{line.binding_id}`" if line.binding_id else "")
            for line in key_lines(bindings, keymap or {})]


def _not_taken(app_bindings: list[Binding], screen_bindings: list, keymap: Mapping[str, str]) -> list[Binding]:
    """The app's bindings minus the keys the screen binds itself (those win): on Label `4` and `q` are not
    "everywhere" keys, only `F4` and a confirmed quit are."""
    taken = {k.strip() for b in screen_bindings if isinstance(b, Binding)
             for k in effective_keys(b, keymap).split(",")}
    kept = []
    for binding in app_bindings:
        keys = [k.strip() for k in effective_keys(binding, keymap).split(",") if k.strip() not in taken]
        if keys:
            kept.append(Binding(",".join(keys), binding.action, binding.description, show=binding.show, id=binding.id))
    return kept


def _moving_keys(screen: Screen, keymap: Mapping[str, str]) -> list[str]:
    """The shared moving keys, where the screen has a list or a pane they move."""
    ids = {b.id for node in (screen, *screen.query("*")) for _, b in node._bindings if b.id in NAV}
    if not ids:
        return []
    nav = [Binding(keys, "move", description, id=nav_id) for nav_id, (keys, description) in NAV.items()
           if nav_id in ids]
    return ["", "## Moving (every list and pane)", *keys_list(nav, keymap),
            f"- `{PANE_KEYS}` next / previous pane (list, detail, search)"]


def help_markdown(screen: Screen, app_bindings: list[Binding], keymap: Mapping[str, str] | None = None) -> str:
    keymap = keymap or {}
    title = getattr(screen, "TITLE", None) or type(screen).__name__
    own = [b for b in screen.BINDINGS if isinstance(b, Binding) and b.id not in NAV]
    parts = [f"# {title}", getattr(screen, "HELP", ""), "## Keys", *keys_list(own, keymap)]
    parts += _moving_keys(screen, keymap)
    parts += ["", "## Everywhere", *keys_list(_not_taken(app_bindings, screen.BINDINGS, keymap), keymap),
              f"- `{key_names(screen.app.COMMAND_PALETTE_BINDING)}` command palette: every action of every screen",
              "", "Rebind any key in config.toml: `[tui.keymap]`, `\"ID\" = \"keys\"`."]
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
