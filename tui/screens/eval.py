"""Eval: training and evaluation runs, and for the selected one the confusion matrix of its latest evaluation,
the loss curve and the metrics table next to the baselines and API labelers.

The screen watches the store, never a process: a timer-driven worker reads the metric rows after the last one
seen (one indexed range query), so the matrix and the curve redraw live while a run trains or is evaluated
anywhere whose events reach this database. The report (bootstrap intervals, VADER) is computed in a worker and
cached per run until its predictions or the human test labels change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bizsent.core.errors import NO_MODEL_YET
from bizsent.core.evaluate.live import read_on, read_on_from
from bizsent.core.evaluate.runs import (
    RunRow,
    metric_events,
    model_unavailable,
    report_key,
    run_report,
    runs_list,
    test_scoring_line,
)
from bizsent.core.evaluate.tables import DETAIL_HEADERS, baseline_rows, detail_rows
from bizsent.core.model.events import MetricEvent
from bizsent.tui.demo_model_key import DemoModelKey
from bizsent.tui.keys import with_ids
from bizsent.tui.pod_eval_key import PodEvalKey
from bizsent.tui.screens.confirm import ConfirmModal
from bizsent.tui.screens.eval_rows import METRIC_DROP, RUN_COLUMNS, RUN_DROP, SYSTEM_ROOM, metric_rows, run_cells
from bizsent.tui.widgets.confusion import ConfusionMatrix
from bizsent.tui.widgets.fitted_table import FittedTable
from bizsent.tui.widgets.key_bar import KeyBar
from bizsent.tui.widgets.loss_plot import EvalPoint, LossPlot
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.workers import background, reading
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

if TYPE_CHECKING:  # numpy and the metrics stack load with the first report, in its worker
    from bizsent.core.evaluate.baselines import Baseline
    from bizsent.core.evaluate.result import Report

RUN_ACTIONS = {"toggle_normalise", "evaluate", "evaluate_test", "compare"}  # the keys that act on a selected run


class EvalScreen(DemoModelKey, PodEvalKey, Screen):
    TITLE = "Eval"
    CSS_PATH = Path(__file__).parent.parent / "styles" / "eval.tcss"
    BINDINGS = with_ids("eval", [
        Binding("n", "toggle_normalise", "counts/%"),
        Binding("e", "evaluate", "evaluate (dev)"),
        Binding("T", "evaluate_test", "score test"),
        Binding("c", "compare", "compare two"),
        Binding("m", "demo_model", "demo model"),
        Binding("r", "refresh", "refresh"),
    ])
    HELP = (
        "Every training and evaluation run, newest first (arrows pick one). For the selected run: the confusion "
        "matrix of its latest evaluation (validation during training, the human test set after `bizsent eval`), "
        "redrawn live as new evaluation events land in the store; the loss curve with the evaluation points; and "
        "the metrics table: the run's predictions scored against the **current** human test labels (accuracy "
        "and macro-F1 with bootstrap 95% intervals, ECE, per-class precision/recall/F1, the sarcastic slice) "
        "next to VADER (computed live), the brief's published figures (CryptoBERT 39.3%, ensemble 41.1%, "
        "agree/confidence 45.8%) and the API labelers on the same posts.\n\n"
        "`n` switches the matrix between counts and row percentages; `e` evaluates the selected run on the human "
        "dev split in the background (`bizsent eval RUN`; a run whose base model is not on this machine goes to a "
        "RunPod pod, its plan and price asked first), the split for everyday model choice; `T` scores the human "
        "test split (`bizsent eval RUN "
        "--test`) after a confirmation that says how many times this test set has been scored already (each "
        "look at the test set makes it a little less of one); `c` marks the selected run as A, and `c` on a "
        "second run compares the two on the same posts (is B really better?); `r` recomputes everything.\n\n"
        "`m` builds the tiny demo model, trains it a few steps, evaluates it and scores the pool, as background "
        "jobs (about a minute on a CPU, free; `bizsent demo-model`): with no model yet, it gives this screen, "
        "Spot-check and Label's active-learning order live data. Before any run the table shows the baselines "
        "that need none. Every figure names its split and size (`val 18.2 (8 posts)`)."
    )

    @dataclass
    class Polled(Message):
        """One poll: the runs, and the selected run's metric rows after the cursor `after_id`. A newer poll for
        the same run and cursor holds everything an older one still queued does, and replaces it."""

        runs: list[RunRow]
        run_id: int | None
        after_id: int
        events: list[tuple[int, MetricEvent]]
        report_key: tuple | None

        def can_replace(self, message: Message) -> bool:
            return (isinstance(message, EvalScreen.Polled) and message.run_id == self.run_id
                    and message.after_id == self.after_id)

    @dataclass
    class BaselinesLoaded(Message):
        baselines: list[Baseline]
        n_test: int

    @dataclass
    class ReportLoaded(Message):
        key: tuple
        report: Report | None
        error: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRow] = []
        self.runs_loaded = False
        self.run_id: int | None = None
        self.events: list[tuple[int, MetricEvent]] = []
        self.last_id = 0
        self.normalise = False
        self.reports: dict[tuple, Report | None] = {}
        self.shown_key: tuple | None = None
        self._computing: set[tuple] = set()
        self.compare_a: int | None = None  # the run `c` marked as A
        self.baselines_asked = False
        self.standing: list[Baseline] | None = None  # the baselines that need no run (standing_baselines)

    def compose(self) -> ComposeResult:
        yield FittedTable(RUN_COLUMNS, "name", RUN_DROP, id="eval-runs", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="eval-mid"):
            yield ConfusionMatrix(id="eval-confusion")
            yield LossPlot(id="eval-plot")
        yield Static(id="eval-note")
        yield FittedTable(DETAIL_HEADERS, "system", METRIC_DROP, SYSTEM_ROOM, id="eval-metrics", cursor_type="none",
                          zebra_stripes=True)
        yield StatusBar()
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#eval-runs", DataTable).focus()
        left_at = self.bizsent.position("eval")  # the run selected when the console was last closed
        self.run_id = left_at if isinstance(left_at, int) else None
        self.query_one("#eval-note", Static).update(Text("loading runs…", style="dim"))
        self.poll()
        self.poll_while_shown(self.poll)

    # -- polling the store ---------------------------------------------------------------------------------

    def poll(self) -> None:
        self._poll(self.run_id, read_on_from(self.events, self.last_id))

    def on_screen_resume(self) -> None:
        self.poll()

    @background("reading the runs", group="eval-poll", exclusive=True)
    def _poll(self, run_id: int | None, after_id: int) -> None:
        with reading(self.bizsent.db_path) as db:
            runs = runs_list(db)
            events = metric_events(db, run_id, after_id) if run_id is not None else []
            key = report_key(db, run_id) if run_id is not None else None
        self.post_message(self.Polled(runs, run_id, after_id, events, key))

    def on_eval_screen_polled(self, message: EvalScreen.Polled) -> None:
        if not self.runs_loaded or message.runs != self.runs:
            self._show_runs(message.runs)
        if (message.run_id is None or message.run_id != self.run_id
                or message.after_id != read_on_from(self.events, self.last_id)):
            return  # the selection moved, or an earlier poll already took these rows
        events = read_on(self.events, message.after_id, message.events)
        if events != self.events:
            self.events, self.last_id = events, events[-1][0] if events else 0
            self._show_events()
        elif not self.events:
            self._show_events()
        if message.report_key is not None and message.report_key != self.shown_key:
            self._want_report(message.report_key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # With no run, the run keys do nothing: the footer leaves them out, so `m` (the next step) shows at 80 columns.
        if action in RUN_ACTIONS and self.runs_loaded and not self.runs:
            return None
        return True

    def _show_runs(self, runs: list[RunRow]) -> None:
        table = self.query_one("#eval-runs", FittedTable)
        if bool(runs) != bool(self.runs) or not self.runs_loaded:
            self.runs, self.runs_loaded = runs, True
            self.refresh_bindings()
        self.runs = runs
        table.show([(run_cells(run), str(run.id)) for run in runs])
        if not runs:  # the next step goes where the matrix will be: the note line is too short for it at 80 columns
            self.query_one(ConfusionMatrix).update(Text(f"No runs yet.\n\n{NO_MODEL_YET[0].upper()}{NO_MODEL_YET[1:]}.",
                                                        style="bold"))
            self.query_one("#eval-note", Static).update(Text("no runs yet: m builds the demo model", style="dim"))
            self._want_baselines()
            return
        ids = [run.id for run in runs]
        table.move_cursor(row=ids.index(self.run_id) if self.run_id in ids else 0)
        if self.run_id not in ids:
            self._select(ids[0])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "eval-runs" and event.row_key.value is not None:
            self._select(int(event.row_key.value))

    def _select(self, run_id: int) -> None:
        self.bizsent.note_position("eval", run_id)
        if run_id == self.run_id:
            return
        self.run_id, self.events, self.last_id, self.shown_key = run_id, [], 0, None
        self.query_one("#eval-metrics", FittedTable).show([])
        self.query_one("#eval-note", Static).update(Text(f"loading run {run_id}…", style="dim"))
        self.poll()

    @property
    def selected(self) -> RunRow | None:
        return next((run for run in self.runs if run.id == self.run_id), None)

    # -- confusion matrix and loss curve -------------------------------------------------------------------

    def _show_events(self) -> None:
        latest = next((e for _, e in reversed(self.events) if e.kind == "eval" and e.confusion), None)
        matrix = self.query_one(ConfusionMatrix)
        if latest is None:
            matrix.matrix = []
            matrix.update(Text("no evaluation with a confusion matrix yet for this run", style="dim"))
        else:
            where = latest.data.get("split", "eval")
            size = f" ({latest.data['n']} posts)" if latest.data.get("n") is not None else ""
            step = f" step {latest.step}" if latest.step is not None else ""
            if latest.data.get("live"):  # an evaluation in progress (core.evaluate.live): posts scored so far
                size, step = "", f" scoring {latest.data.get('n')}/{latest.data.get('of')}"
            matrix.show(latest.confusion, normalise=self.normalise, title=f"run {self.run_id} {where}{size}{step}")
        train = [(e.step or 0, e.loss) for _, e in self.events if e.kind == "train" and e.loss is not None]
        evals = [EvalPoint(e.step, e.accuracy, e.macro_f1) for _, e in self.events
                 if e.kind == "eval" and not e.data.get("live")]
        self.query_one(LossPlot).show(train, evals)

    def action_toggle_normalise(self) -> None:
        self.normalise = not self.normalise
        self._show_events()

    # -- the baselines before any run, or beside a run not scored on test ---------------------------------

    def _want_baselines(self) -> None:
        if not self.baselines_asked:
            self.baselines_asked = True
            self._compute_baselines()

    @background("computing the baselines", group="eval-report")
    def _compute_baselines(self) -> None:
        from bizsent.core.evaluate.baselines import standing_baselines

        with reading(self.bizsent.db_path) as db:
            baselines, n_test = standing_baselines(db)
        self.post_message(self.BaselinesLoaded(baselines, n_test))

    def on_eval_screen_baselines_loaded(self, message: EvalScreen.BaselinesLoaded) -> None:
        self.standing = message.baselines
        if self.runs:  # a run's report shows the same baselines on its posts; one with none shows these
            if self.shown_key is not None and self.reports.get(self.shown_key, False) is None:
                self.query_one("#eval-metrics", FittedTable).show(metric_rows(baseline_rows(self.standing)))
            return
        self.query_one("#eval-metrics", FittedTable).show(metric_rows(baseline_rows(message.baselines)))
        self.query_one("#eval-note", Static).update(Text.assemble(
            ("no runs yet · ", "dim"), (f"baselines on {message.n_test} human test posts", "bold"),
            (" · brief = published figures, the brief's 107 posts", "dim")))

    # -- the report ----------------------------------------------------------------------------------------

    def _want_report(self, key: tuple) -> None:
        if key in self.reports:
            self._show_report(key, self.reports[key])
        elif key not in self._computing:
            self._computing.add(key)
            self.query_one("#eval-note", Static).update(
                Text("computing metrics (bootstrap intervals, VADER)…", style="dim"))
            run = self.selected
            self._compute_report(key, run.id if run else key[0], run.name if run else str(key[0]))

    @background("computing the metrics", group="eval-report")
    def _compute_report(self, key: tuple, run_id: int, name: str) -> None:
        try:
            with reading(self.bizsent.db_path) as db:
                report = run_report(db, run_id, name)
        except Exception as exc:  # a report that fails must say so on screen; the console stays up
            self.post_message(self.ReportLoaded(key, None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.ReportLoaded(key, report))

    def on_eval_screen_report_loaded(self, message: EvalScreen.ReportLoaded) -> None:
        self._computing.discard(message.key)
        if message.error:
            self.query_one("#eval-note", Static).update(Text(f"metrics failed: {message.error}", style="bold red"))
            return
        self.reports[message.key] = message.report
        if self.run_id == message.key[0]:
            self._show_report(message.key, message.report)

    def _show_report(self, key: tuple, report: Report | None) -> None:
        self.shown_key = key
        note = self.query_one("#eval-note", Static)
        rows = (detail_rows(report) if report is not None else  # no test figures: what the run will be held to
                baseline_rows(self.standing) if self.standing is not None else [])
        self.query_one("#eval-metrics", FittedTable).show(metric_rows(rows))
        if report is None:
            self._want_baselines()
            run = self.selected
            # The key first: at 80 columns the line is cut after about 75 characters.
            hint = ("its evaluation events show above as they land" if run and run.state == "running"
                    else "T scores it, counted; the matrix shows its latest dev or validation evaluation (e)")
            note.update(Text(f"run {self.run_id} not scored on the human test split: {hint}", style="dim"))
            return
        note.update(Text.assemble((f"run {self.run_id} on {report.model.n} human test posts", "bold"),
                                  (" (current labels) · brief = published figures, the brief's 107 posts", "dim")))

    # -- actions -------------------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.reports.clear()
        run_id, self.run_id = self.run_id, None
        self.runs_loaded = False
        if run_id is not None:
            self._select(run_id)
        else:
            self.poll()

    def action_evaluate(self) -> None:
        run = self.selected
        if run is None:
            self.notify("no run selected")
            return
        self._start_eval(run, "dev")

    def action_evaluate_test(self) -> None:
        run = self.selected
        if run is None:
            self.notify("no run selected")
            return
        self._ask_test(run)

    def action_compare(self) -> None:
        run = self.selected
        if run is None:
            self.notify("no run selected")
        elif self.compare_a is None or self.compare_a == run.id:
            self.compare_a = run.id
            self.notify(f"run {run.id} is A: select run B and press c", timeout=6)
        else:
            from bizsent.tui.screens.compare import CompareScreen

            self.app.push_screen(CompareScreen(self.compare_a, run.id))
            self.compare_a = None

    @background("counting test evaluations", group="eval-launch")
    def _ask_test(self, run: RunRow) -> None:
        with reading(self.bizsent.db_path) as db:
            line = test_scoring_line(db, run.id)

        def answer(yes: bool | None) -> None:
            if yes:
                self._start_eval(run, "test")

        self.app.call_from_thread(self.app.push_screen, ConfirmModal(
            f"Score run {run.id} on the human test split? {line} Choose models on dev (e); score test once, at "
            "the end.", yes="Score test"), answer)

    @background("starting the evaluation", group="eval-launch")
    def _start_eval(self, run: RunRow, split: str) -> None:
        if self.pod_eval_planned(run.id, split):
            return
        reason = model_unavailable(run)
        if reason:
            self.app.call_from_thread(self.notify, reason, severity="warning")
            return
        from contextlib import closing

        from bizsent.core.errors import BizsentError
        from bizsent.core.store import open_db
        from bizsent.jobs.training import launch_eval

        settings = self.bizsent.settings
        # An eval job of its own (jobs.training): closing the console never loses it, the Jobs screen shows it.
        try:
            with closing(open_db(self.bizsent.db_path, create=False)) as db:
                job_id, pid = launch_eval(db, self.bizsent.db_path, self.bizsent.config_path(), run.id,
                                          settings.data_dir / "logs", split)
        except BizsentError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="warning")
            return
        self.app.call_from_thread(
            self.notify, f"evaluating run {run.id} on {split} in the background (job {job_id}, pid {pid}); the "
                         "matrix redraws"
                         " when it lands; the Jobs screen follows it", timeout=8)
