"""The Label screen's two status lines: the flags line (sarcastic, unsure, split, order) and the tally (goal
bar, counts per label). Each is one fixed line updated without a relayout."""

from __future__ import annotations

from collections import Counter

from bizsent.core.labels import LABELS
from bizsent.tui.style import LABEL_COLORS
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static


def _flag(key: str, name: str, on: bool) -> str:
    return f"[reverse b] {key} {name} [/]" if on else f"[dim] {key} {name} [/]"


class LabelFlags(Static):
    DEFAULT_CSS = "LabelFlags { height: 1; padding: 0 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._line = ""

    def show(self, *, sarcastic: bool, unsure: bool, split: str, why: str, order: str) -> None:
        """`split`: where the next answer goes; `why`: the reason when that is not the session's choice (t);
        `order`: the order as the user should read it."""
        # ANSI colours: the theme's palette paints them (tui.style.LIGHT_ANSI), so they read in both themes. REPEAT
        # is blue, a violet in the dark palette, whose magenta is its red (4.47:1 on the dark background).
        shown = {"test": "[b ansi_green]TEST[/]", "repeat": "[b ansi_blue]REPEAT[/]"}.get(
            split, "[b ansi_yellow]TRAIN[/]")
        if why:
            shown += f" ({why})"
        line = (f"{_flag('s', 'sarcastic', sarcastic)} {_flag('w', 'unsure', unsure)}"
                f"  split {shown} (t)  order [b]{order}[/] (o)")
        if line != self._line:  # unchanged on most keys: repainting it would only cost time
            self._line = line
            self.update(line, layout=False)


class LabelTally(Horizontal):
    DEFAULT_CSS = """
    LabelTally {
        height: 1;
        padding: 0 1;
        & > ProgressBar { width: auto; margin-right: 2; }
        & > ProgressBar Bar { width: 20; }
        /* the theme draws the part still to do in the background colour: invisible; here it is a grey line */
        & > ProgressBar Bar > .bar--bar { color: $success; background: $foreground 35%; }
        & > ProgressBar Bar > .bar--complete { color: $success; background: $foreground 35%; }
        & > #label-counts { width: 1fr; }
    }
    """

    def __init__(self, goal: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._goal = goal
        self._shown: tuple[Counter[str], int] | None = None

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=self._goal, show_eta=False, id="goal")
        yield Static(id="label-counts")

    def show(self, counts: Counter[str], goal: int) -> None:
        labelled = sum(counts[name] for name in LABELS)
        self.query_one("#goal", ProgressBar).update(total=goal, progress=min(labelled, goal))
        self._shown = (Counter(counts), goal)
        field = self.query_one("#label-counts", Static)
        field.update(tally_line(counts, goal, field.size.width or 80), layout=False)

    def on_resize(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)


def tally_line(counts: Counter[str], goal: int, width: int) -> Text:
    """`12/50 bear 3 25% · neut 4 33% · bull 5 42% · skip 2`; where that is too wide the shares go first, then
    the separators: the counts and `skip N` always stay."""
    labelled = sum(counts[name] for name in LABELS)
    for shares, joint in ((True, " · "), (False, " · "), (False, " ")):
        out = Text(f"{labelled}/{goal} ", no_wrap=True)
        for k, name in enumerate(LABELS):
            if k:
                out.append(joint)
            out.append(name[:4], style=LABEL_COLORS[name])
            out.append(f" {counts[name]}" + (f" {counts[name] / labelled:.0%}" if shares and labelled else ""))
        out.append(f"{joint}skip {counts['skip']}")
        if out.cell_len <= width:
            break
    return out
