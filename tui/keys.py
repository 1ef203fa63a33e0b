"""The console's keys in one place: the moving keys every list and pane shares, an id for every binding so the
user's keymap (`[tui.keymap]` in config.toml, Textual's `App.set_keymap`, as the posting app does) can rebind any
of them, and the lines help (`?`) and the footers draw from them.

A binding's id is `SCOPE.ACTION` (`jobs.cancel_job`, `label.answer.bearish`); the moving keys share theirs
(`nav.down`, ...) on every screen, so one keymap line moves the cursor the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from textual.binding import Binding

# id -> (default keys, what it does): the same on every list (Posts, Jobs, Eval, Spot-check, Pods, Trends) and on
# every scrolling pane (a pane scrolls where a list moves its cursor).
NAV: dict[str, tuple[str, str]] = {
    "nav.down": ("down,j", "down"),
    "nav.up": ("up,k", "up"),
    "nav.page_down": ("pagedown", "page down"),
    "nav.page_up": ("pageup", "page up"),
    "nav.top": ("home,g", "first"),
    "nav.bottom": ("end,G", "last"),
}
PANE_KEYS = "tab, shift+tab"  # Textual's focus keys: the next / previous pane (list, detail, search)
NAMES = {"slash": "/", "question_mark": "?", "pagedown": "pgdn", "pageup": "pgup"}


def nav_bindings(actions: Mapping[str, str]) -> list[Binding]:
    """The moving keys for one widget or screen: `actions` maps each NAV id to that widget's own action."""
    return [Binding(NAV[nav_id][0], action, NAV[nav_id][1], show=False, id=nav_id)
            for nav_id, action in actions.items()]


def binding_id(scope: str, action: str) -> str:
    """`answer('bearish')` on the label screen -> `label.answer.bearish`."""
    return f"{scope}.{re.sub(r'[^a-z0-9_-]+', '.', action.lower()).strip('.')}"


def with_ids(scope: str, bindings: Iterable[Binding]) -> list[Binding]:
    """Give each binding without an id its `SCOPE.ACTION` id, so the user's keymap can rebind it."""
    return [binding if binding.id else replace(binding, id=binding_id(scope, binding.action))
            for binding in bindings]


def key_names(keys: str) -> str:
    """A binding's key string as a person reads it: `slash,question_mark` -> `/, ?`."""
    return ", ".join(NAMES.get(k.strip(), k.strip()) for k in keys.split(",") if k.strip())


def effective_keys(binding: Binding, keymap: Mapping[str, str]) -> str:
    """The keys that run `binding` now: the keymap's when it rebinds its id, else the binding's own."""
    return keymap.get(binding.id, binding.key) if binding.id else binding.key


@dataclass(frozen=True, slots=True)
class KeyLine:
    """One key of a screen as help and the footer list it."""

    keys: str  # as the user reads them: `j, down`
    description: str
    binding_id: str | None


def key_lines(bindings: Iterable[Binding], keymap: Mapping[str, str]) -> list[KeyLine]:
    return [KeyLine(key_names(effective_keys(b, keymap)), b.description or b.action, b.id) for b in bindings]
