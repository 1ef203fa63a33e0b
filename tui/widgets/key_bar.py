"""The footer of every screen: the screen's keys as they are bound now (the user's keymap included), fitted to the
width. Help (`?`) and quit are always on it, whatever the width; the screen's own keys come next in their order,
then ctrl+p's palette; what does not fit is dropped from the end, and then `?` says it lists every key."""

from __future__ import annotations

from dataclasses import dataclass

from bizsent.tui.keys import key_names
from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget

QUIT_ACTIONS = {"quit", "quit_confirm", "app.quit"}
HELP_ACTIONS = {"help", "app.help"}


@dataclass(frozen=True, slots=True)
class Hint:
    keys: str
    description: str

    @property
    def text(self) -> Text:
        # The key itself marked, one space to its word, two to the next hint: 80 columns hold more of them.
        return Text.assemble((self.keys, "bold reverse"), f" {self.description}  ")


def short_keys(keys: str) -> str:
    return key_names(keys).replace("ctrl+", "^")


def fit_hints(screen_hints: list[Hint], help_hint: Hint | None, quit_hint: Hint | None, palette: Hint | None,
              width: int) -> Text:
    """Help and quit first in priority, then the screen's keys in order, then the palette; drawn in the order
    screen keys, palette, help, quit. When keys are dropped, help reads "all keys" and is fitted as such."""
    wanted = [*screen_hints, *([palette] if palette else [])]
    kept = _fit(wanted, [h for h in (help_hint, quit_hint) if h is not None], width)
    if len(kept) < len(wanted) and help_hint is not None:
        help_hint = Hint(help_hint.keys, "all keys")
        kept = _fit(wanted, [h for h in (help_hint, quit_hint) if h is not None], width)
    out = Text(no_wrap=True, overflow="crop")
    for hint in [*kept, *(h for h in (help_hint, quit_hint) if h is not None)]:
        out.append_text(hint.text)
    out.rstrip()
    return out


def _fit(hints: list[Hint], fixed: list[Hint], width: int) -> list[Hint]:
    """The leading hints that fit beside the `fixed` ones."""
    room = width + 2 - sum(h.text.cell_len for h in fixed)  # the last hint's two trailing spaces are not drawn
    kept: list[Hint] = []
    for hint in hints:
        if hint.text.cell_len > room:
            break
        kept.append(hint)
        room -= hint.text.cell_len
    return kept


class KeyBar(Widget):
    DEFAULT_CSS = """
    KeyBar {
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.refresh())

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _current_bindings(self) -> list[Binding]:
        # One per action, in the order the focus chain gives them (the focused widget's, the screen's, the
        # app's), with the keys they really have now.
        seen: dict[str, Binding] = {}
        keys: dict[str, list[str]] = {}
        for key, active in self.screen.active_bindings.items():
            if not active.enabled:
                continue
            action = active.binding.action
            seen.setdefault(action, active.binding)
            keys.setdefault(action, []).append(key)
        return [Binding(",".join(keys[action]), action, b.description, show=b.show) for action, b in seen.items()]

    def render(self) -> Text:
        hints: list[Hint] = []
        help_hint = None
        quit_keys: list[str] = []
        for binding in self._current_bindings():
            if binding.action in HELP_ACTIONS:
                help_hint = Hint(short_keys(binding.key), "keys")
            elif binding.action in QUIT_ACTIONS:  # q (asking first where digits label) and ctrl+q
                quit_keys.append(binding.key)
            elif binding.show:
                hints.append(Hint(short_keys(binding.key), binding.description))
        quit_hint = Hint(short_keys(",".join(quit_keys)), "quit") if quit_keys else None
        palette = (Hint(short_keys(self.app.COMMAND_PALETTE_BINDING), "actions")
                   if self.app.ENABLE_COMMAND_PALETTE else None)
        return fit_hints(hints, help_hint, quit_hint, palette, self.size.width)
