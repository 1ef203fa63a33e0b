"""Is it really better? Two runs side by side on the same posts of one human split (`c` twice on the Eval screen):
both confusion matrices, the paired difference in accuracy and macro-F1 with its 95% interval, McNemar's test,
and the posts where they disagree, one key (`s`) away from Spot-check.

The screen asks the engine (core.evaluate.compare, the same as `bizsent compare`) in a worker and draws; every
figure names its split and its number of posts (core.evaluate.compare_text).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bizsent.core.evaluate.compare_text import matrix_title, summary_lines
from bizsent.tui.app import BizsentNode
from bizsent.tui.screens.spotcheck import SpotCheckScreen, SpotItem
from bizsent.tui.widgets.confusion import ConfusionMatrix
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.workers import background, reading
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

if TYPE_CHECKING:  # numpy loads with the first comparison, in its worker
    from bizsent.core.evaluate.compare import Comparison

SPLIT_ORDER = ("dev", "test")  # `v` cycles; dev first, as `bizsent compare` and `bizsent eval` default to it
POST_COLUMNS = ("post", "truth", "A", "B")
TEST_NOT_SPOT_CHECKED = ("test posts are not spot-checked: a test label corrected after seeing a model's answer "
                         "moves the test set towards the model (correct it blind: Posts, enter); press v for dev")


class DisagreementCheck(SpotCheckScreen):
    """Spot-check narrowed to the posts two runs disagree on; `r` switches between the two runs' answers."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, runs: tuple[int, int], posts: frozenset[int]) -> None:
        super().__init__(run_id=runs[1])
        self.runs_shown = runs
        self.posts = posts

    def narrow(self, items: list[SpotItem]) -> list[SpotItem]:
        return [it for it in items if it.post_id in self.posts]


class CompareScreen(BizsentNode, Screen):
    TITLE = "Compare"
    CSS_PATH = Path(__file__).parent.parent / "styles" / "compare.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("v", "next_split", "dev/test"),
        Binding("s", "spot_check", "spot-check disagreements"),
        Binding("n", "toggle_normalise", "counts/%"),
    ]
    HELP = (
        "Run A (marked first with `c` on the Eval screen) against run B on the posts of one human split that both "
        "have predictions for: dev (`bizsent eval RUN`) or test (`bizsent eval RUN --test`); posts only one run "
        "scored are counted and left out. Both confusion matrices; the difference B − A in accuracy and macro-F1 "
        "with a 95% paired-bootstrap interval (the same posts resampled for both runs, seeded); McNemar's test for "
        "accuracy (exact binomial under 25 discordant posts); and the posts where the two runs answer "
        "differently.\n\n`v` switches between dev and test, `n` between counts and row percentages, `s` opens "
        "Spot-check on the posts they disagree on (dev only: test posts are never spot-checked), `escape` goes "
        "back. The same figures: `bizsent compare A B --split dev|test`."
    )

    @dataclass
    class Loaded(Message):
        split: str
        comparison: Comparison | None
        error: str = ""

    def __init__(self, run_a: int, run_b: int, split: str = SPLIT_ORDER[0]) -> None:
        super().__init__()
        self.run_a, self.run_b, self.split = run_a, run_b, split
        self.comparison: Comparison | None = None
        self.normalise = False

    def compose(self) -> ComposeResult:
        yield Static(id="cmp-head")
        with Horizontal(id="cmp-matrices"):
            yield ConfusionMatrix(id="cmp-a")
            yield ConfusionMatrix(id="cmp-b")
        yield Static(id="cmp-summary")
        yield DataTable(id="cmp-posts", cursor_type="row", zebra_stripes=True)
        yield StatusBar()
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#cmp-posts", DataTable).add_columns(*POST_COLUMNS)
        self.load()

    def load(self) -> None:
        self.comparison = None
        self.query_one("#cmp-head", Static).update(
            Text(f"comparing run {self.run_a} (A) and run {self.run_b} (B) on {self.split}…", style="dim"))
        self._compare(self.run_a, self.run_b, self.split)

    @background("comparing the runs", group="compare", exclusive=True)
    def _compare(self, run_a: int, run_b: int, split: str) -> None:
        from bizsent.core.errors import BizsentError
        from bizsent.core.evaluate.compare import compare_runs

        with reading(self.bizsent.db_path) as db:
            try:
                comparison = compare_runs(db, run_a, run_b, split)
            except BizsentError as exc:  # no shared posts, no dev split here: one line, the screen stays
                self.post_message(self.Loaded(split, None, str(exc)))
                return
        self.post_message(self.Loaded(split, comparison))

    def on_compare_screen_loaded(self, message: CompareScreen.Loaded) -> None:
        if message.split != self.split:
            return  # an answer for the split the user already left
        table = self.query_one("#cmp-posts", DataTable)
        table.clear()
        head, summary = self.query_one("#cmp-head", Static), self.query_one("#cmp-summary", Static)
        if message.comparison is None:
            head.update(Text(f"{message.error} (v: dev/test)", style="bold yellow"))
            summary.update("")
            for matrix in self.query(ConfusionMatrix):
                matrix.matrix = []
                matrix.update(Text("nothing to compare", style="dim"))
            return
        c = self.comparison = message.comparison
        title, *lines = summary_lines(c)
        head.update(Text(title, style="bold"))
        summary.update(Text("\n".join(lines)))
        self._show_matrices()
        for p in c.disagreements:
            table.add_row(str(p.post_id), p.truth, p.label_a, p.label_b, key=str(p.post_id))

    def _show_matrices(self) -> None:
        c = self.comparison
        if c is None:
            return
        for which, cm in (("a", c.stats.confusion_a), ("b", c.stats.confusion_b)):
            self.query_one(f"#cmp-{which}", ConfusionMatrix).show(cm, normalise=self.normalise,
                                                                   title=matrix_title(c, which), recall=False)

    def action_toggle_normalise(self) -> None:
        self.normalise = not self.normalise
        self._show_matrices()

    def action_next_split(self) -> None:
        self.split = SPLIT_ORDER[(SPLIT_ORDER.index(self.split) + 1) % len(SPLIT_ORDER)]
        self.load()

    def action_spot_check(self) -> None:
        c = self.comparison
        if c is None:
            self.notify("nothing compared yet")
        elif c.split == "test":
            self.notify(TEST_NOT_SPOT_CHECKED, severity="warning", timeout=8)
        elif not c.disagreements:
            self.notify(f"runs {c.run_a.id} and {c.run_b.id} agree on all {c.stats.n} {c.split} posts")
        else:
            posts = frozenset(p.post_id for p in c.disagreements)
            self.app.push_screen(DisagreementCheck((c.run_a.id, c.run_b.id), posts))
            self.notify(f"Spot-check: the {len(posts)} {c.split} posts where run {c.run_a.id} and run "
                        f"{c.run_b.id} disagree; r switches run, escape comes back", timeout=6)
