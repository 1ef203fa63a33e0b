"""Keys of every screen where digits write labels (Label, Spot-check): there the digits never switch screens,
the F-keys do, and `q` asks first. A stray key must never land the user on a screen where 1-3 mean something else
(tui.app binds 1-7 to the screens everywhere else)."""

from __future__ import annotations

from bizsent.tui.screens import SCREENS
from bizsent.tui.screens.confirm import ConfirmModal
from textual.binding import Binding

# Every digit the app uses to switch screens: bound here too, so a labeling screen's own binding wins.
SCREEN_DIGITS = "".join(str(n) for n in range(1, len(SCREENS) + 1))


def digit_guard(label_digits: str) -> Binding:
    """The binding that keeps the digits a screen does not use for labels from switching screens."""
    rest = ",".join(d for d in SCREEN_DIGITS if d not in label_digits)
    return Binding(rest, "screen_keys_hint", "F-keys switch screens", show=False)


class LabelingKeys:
    """Mixin of a labeling screen: the digit hint and the quit confirmation."""

    F_KEYS_ONLY = True  # the status bar offers F1.. here, not the digits

    def action_screen_keys_hint(self) -> None:
        self.notify(f"while labeling, F1-F{len(SCREEN_DIGITS)} switch screens (digits do not)", timeout=4)

    def action_quit_confirm(self) -> None:
        def answer(yes: bool | None) -> None:
            if yes:
                self.app.exit()

        self.app.push_screen(ConfirmModal("Quit bizsent? Everything answered is saved.", yes="Quit"), answer)
