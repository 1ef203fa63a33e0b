"""Command palette provider: every screen switch and every action of every screen, from any screen."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from bizsent.tui.screens import SCREENS
from textual.command import DiscoveryHit, Hit, Hits, Provider


def _entries(app) -> Iterator[tuple[str, str, object]]:
    """(text, help, callback) for each command."""
    for number, spec in enumerate(SCREENS, start=1):
        yield f"{spec.title}: open screen", f"key {number}", partial(app.switch_mode, spec.mode)
        for binding in spec.load().BINDINGS:
            if binding.action.startswith("app."):
                continue
            key = binding.key.split(",")[0].replace("slash", "/")
            yield (f"{spec.title}: {binding.description}", f"key {key} on {spec.title}",
                   partial(app.run_screen_action, spec.mode, binding.action))
    yield "Help: keys of this screen", "key ?", app.action_help


class ActionsProvider(Provider):
    async def discover(self) -> Hits:
        for text, help_text, callback in _entries(self.app):
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in _entries(self.app):
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, text=text, help=help_text)
