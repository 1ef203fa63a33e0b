"""A one-line text prompt over the current screen (notes, queue filters). Dismisses with the text or None."""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class PromptModal(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, value: str = "", keep: Callable[[str], None] | None = None) -> None:
        """`keep`: what to do with the typed text when the console quits with the prompt open (a note is saved,
        not dropped); None: nothing typed here is worth keeping."""
        super().__init__()
        self._title = title
        self._value = value
        self._keep = keep

    def keep_typed(self) -> None:
        """The console is quitting (ctrl+q): hand the typed text to `keep`, at once (the writer saves it before
        the console closes)."""
        text = self.query_one("#prompt-input", Input).value
        if self._keep is not None and text.strip():
            self._keep(text)

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box", classes="modal-box"):
            yield Static(self._title, classes="modal-title")
            yield Input(value=self._value, id="prompt-input")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
