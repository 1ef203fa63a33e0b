"""Pods: every RunPod pod bizsent knows (and, with RUNPOD_API_KEY, every pod of the account), with GPU, state,
uptime, $/h and cost so far, orphans flagged; the selected pod's run below: its log tail and its loss curve,
moving as the run writes them.

The database's rows are re-read every tick; the account is surveyed in a worker every SURVEY_S seconds and on
`r` (core.pods.views: no key or RunPod down is one line at the top, never a traceback). Stop and terminate ask
first and run in a worker (terminate waits for RunPod's confirmation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bizsent.core.errors import BizsentError
from bizsent.core.model.events import MetricEvent
from bizsent.core.pods import views
from bizsent.core.pods.views import Account, PodView
from bizsent.core.store import open_db
from bizsent.tui.app import BizsentNode
from bizsent.tui.keys import with_ids
from bizsent.tui.screens.confirm import ConfirmModal
from bizsent.tui.screens.pod_format import (
    COLUMNS,
    HEADERS,
    NARROW,
    NARROW_BELOW,
    detail_title,
    pod_cells,
    stop_question,
    terminate_question,
)
from bizsent.tui.screens.prompt import PromptModal
from bizsent.tui.widgets.key_bar import KeyBar
from bizsent.tui.widgets.keyed_rows import sync_rows
from bizsent.tui.widgets.log_tail import LogTail
from bizsent.tui.widgets.loss_plot import EvalPoint, LossPlot
from bizsent.tui.widgets.nav_table import NavTable
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.workers import background, reading, store_action
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

if TYPE_CHECKING:  # the pod run's chain (payload, channel, dataset) loads when a run is planned, not with the screen
    from bizsent.jobs.pod_run import PodRunPlan

log = logging.getLogger(__name__)

SURVEY_S = 15.0  # how often the account is read while the screen is open (one GET /v2/pods)
LOG_LINES = 200


@dataclass(frozen=True, slots=True)
class RunTail:
    """The selected pod's run as one poll read it: metric rows after `after_id` (0: all of them) and its log."""

    run_name: str
    run_id: int | None
    after_id: int
    events: list[tuple[int, MetricEvent]]
    log: list[str]


class PodsScreen(BizsentNode, Screen):
    TITLE = "Pods"
    DEFAULT_CSS = """
    PodsScreen #pods-note { height: 1; padding: 0 1; color: $text-muted; }
    PodsScreen #pods { height: 1fr; min-height: 4; scrollbar-size-vertical: 1; }
    PodsScreen #pod-detail { height: 2fr; min-height: 8; border-top: solid $primary 50%; }
    PodsScreen #pod-title { height: 1; padding: 0 1; }
    PodsScreen #pod-panes { height: 1fr; }
    PodsScreen #pod-log { width: 1fr; padding: 0 1; border-right: solid $primary 30%; }
    PodsScreen #pod-plot { width: 1fr; padding: 0 1; }
    """
    BINDINGS = with_ids("pods", [
        Binding("n", "start_run", "start run"),
        Binding("s", "stop_pod", "stop"),
        Binding("t", "terminate_pod", "terminate"),
        Binding("r", "refresh", "refresh"),
    ])
    HELP = (
        "RunPod pods: each with its GPU, state, uptime, $/h and cost so far. The database's pods are re-read "
        "every second; with RUNPOD_API_KEY set the whole account is read too, every 15 s and on `r`, and every "
        "bizsent pod nobody will stop (unknown to the database, or whose run or job has finished) is flagged "
        "ORPHAN in red: it bills by the hour until terminated. Pods without the `bizsent-` prefix are shown "
        "dimmed and are someone else's. Without the key the screen shows the database's pods and says so in "
        "its top line.\n\n"
        "The pane below follows the selected pod's run: the last lines of its log (data/runs/<run>/pod.log) "
        "and its loss curve, both moving as the run writes them.\n\n"
        "`n` starts a training run on a RunPod GPU: name it, and the dialog shows the plan (the GPUs tried in "
        "order, the expected and worst cost, the pod's kill switches) before anything is created; yes starts it "
        "as a background job (see Jobs), which terminates the pod when the adapter is home. "
        "`s` stops the selected pod (its GPU stops billing, its disk is kept); `t` terminates it (deleted, "
        "confirmed with RunPod, its final cost recorded). Both ask first. `r` reads the account now. The "
        "status bar shows the pods billing and their total $/h on every screen."
    )

    @dataclass
    class Polled(Message):
        """One read of the database: the pods, and the selected pod's run. A newer poll replaces an older one."""

        pods: list[PodView]
        tail: RunTail | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, PodsScreen.Polled)

    @dataclass
    class Surveyed(Message):
        account: Account

    @dataclass
    class PlanReady(Message):
        """The plan of a pod run, for the user to confirm (bundle written, GPUs priced; no pod created yet)."""

        plan: PodRunPlan

    @dataclass
    class ActionDone(Message):
        """A pod action finished in its worker: one line for the user."""

        text: str
        error: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.pods: dict[str, PodView] = {}
        self.order: list[str] = []
        self.selected: str | None = None
        self.account: Account | None = None
        self.loaded = False
        self.run_id: int | None = None
        self.run_name: str | None = None
        self.events: list[tuple[int, MetricEvent]] = []
        self.columns: tuple[str, ...] = ()  # the list's columns for the width (pod_format.NARROW below 100)

    def compose(self) -> ComposeResult:
        yield Static(Text("reading the pods…", style="dim"), id="pods-note")
        yield NavTable(cursor_type="row", zebra_stripes=True, cell_padding=0, id="pods")
        with Vertical(id="pod-detail"):
            yield Static(id="pod-title")
            with Horizontal(id="pod-panes"):
                yield LogTail(id="pod-log")
                yield LossPlot(id="pod-plot")
        yield StatusBar()
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(LossPlot).show([], [], message="no pod selected")
        left_at = self.bizsent.position("pods")  # the pod selected when the console was last closed
        self.selected = left_at if isinstance(left_at, str) else None
        self.poll()
        self.survey()
        self.set_interval(self.bizsent.settings.tui.refresh_s, self._tick)

    def on_screen_resume(self) -> None:
        self.poll()

    def _tick(self) -> None:
        if not self.is_current:
            return
        self.poll()
        if self.account is not None and time.time() - self.account.at > SURVEY_S:
            self.survey()

    # -- reading ---------------------------------------------------------------------------------------------

    def poll(self) -> None:
        after = self.events[-1][0] if self.events else 0
        self._poll(self.selected, self.account, self.run_id, after)

    @background("reading the pods", group="pods-poll", exclusive=True)
    def _poll(self, selected: str | None, account: Account | None, run_id: int | None, after: int) -> None:
        settings = self.bizsent.settings
        with reading(self.bizsent.db_path) as db:
            pods = views.combined(views.stored_pods(db, settings=settings), account)
            pod = next((p for p in pods if p.pod_id == selected), pods[0] if pods else None)
            tail = None
            if pod is not None and pod.run_name:
                from bizsent.core.evaluate.runs import metric_events

                now_id = views.run_id_of(db, pod.run_name)
                after = after if now_id == run_id else 0
                events = metric_events(db, now_id, after) if now_id is not None else []
                tail = RunTail(pod.run_name, now_id, after, events, views.recent_log(settings, pod.run_name, LOG_LINES))
        self.post_message(self.Polled(pods, tail))

    @background("reading the RunPod account", group="pods-survey", exclusive=True)
    def survey(self) -> None:
        with closing(open_db(self.bizsent.db_path, create=False)) as db:  # a survey refreshes live rows' cost
            account = views.survey_account(db, self.bizsent.settings)
        self.post_message(self.Surveyed(account))

    def on_pods_screen_surveyed(self, message: PodsScreen.Surveyed) -> None:
        self.account = message.account
        self.poll()

    def on_pods_screen_polled(self, message: PodsScreen.Polled) -> None:
        self.loaded = True
        if self.account is not None:
            self.query_one("#pods-note", Static).update(Text(
                views.list_note(self.account, message.pods), style="yellow" if self.account.pods is None else "dim"))
        self._fill_table(message.pods)
        if self.selected not in self.pods:
            self.selected = message.pods[0].pod_id if message.pods else None
        self._show_tail(message.tail)

    # -- drawing ---------------------------------------------------------------------------------------------

    def on_resize(self) -> None:
        columns = NARROW if self.size.width < NARROW_BELOW else COLUMNS
        if columns != self.columns:
            self.columns = columns
            table = self.query_one("#pods", DataTable)
            table.clear(columns=True)
            for column in columns:
                table.add_column(" " + HEADERS[column], key=column)
            self.order = []  # refill at once with the new columns
            self._fill_table(list(self.pods.values()))

    def _fill_table(self, pods: list[PodView]) -> None:
        if not self.columns:
            self.on_resize()
        self.order = sync_rows(self.query_one("#pods", DataTable), self.pods, self.order, pods,
                               lambda p: p.pod_id, lambda p: pod_cells(p, self.columns), self.columns, self.selected)
        self.pods = {p.pod_id: p for p in pods}
        if not pods:
            self.query_one("#pod-title", Static).update(Text(
                "no pods yet: n starts a training run on a RunPod GPU (`bizsent train --pod`)", style="dim"))

    def _show_tail(self, tail: RunTail | None) -> None:
        pod = self.selected_pod()
        if pod is not None:
            self.query_one("#pod-title", Static).update(detail_title(pod))
        plot, log_view = self.query_one(LossPlot), self.query_one(LogTail)
        if tail is None or pod is None or pod.run_name != tail.run_name:
            if pod is not None and not pod.run_name:
                self.run_id, self.run_name, self.events = None, None, []
                plot.show([], [], message="this pod has no bizsent run")
                log_view.show([], message="this pod has no bizsent run, so no log here")
            return
        if tail.after_id == 0 or tail.run_id != self.run_id or tail.run_name != self.run_name:
            self.events = list(tail.events)
        elif self.events and tail.after_id == self.events[-1][0]:
            self.events.extend(tail.events)
        elif tail.events:  # a poll started before the last one landed: its rows are here already
            return
        changed = tail.events or tail.run_id != self.run_id or tail.run_name != self.run_name
        self.run_id, self.run_name = tail.run_id, tail.run_name
        log_view.show(tail.log, message=f"no log lines yet in {views.LOG_NAME} of run {tail.run_name}")
        if changed or not plot.train:
            train = [(e.step or 0, e.loss) for _, e in self.events if e.kind == "train" and e.loss is not None]
            evals = [EvalPoint(e.step, e.accuracy, e.macro_f1) for _, e in self.events
                 if e.kind == "eval" and not e.data.get("live")]
            plot.show(train, evals, message="" if self.events else f"run {tail.run_name} has logged no steps yet")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None or event.row_key.value == self.selected:
            return
        self.selected = event.row_key.value
        self.bizsent.note_position("pods", self.selected)
        self.query_one("#pod-title", Static).update(detail_title(self.selected_pod()))
        self.poll()

    def selected_pod(self) -> PodView | None:
        return self.pods.get(self.selected) if self.selected is not None else None

    # -- actions ---------------------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.notify("reading the RunPod account…" if views.key_is_set() else self._no_key(), timeout=3)
        self.survey()
        self.poll()

    @staticmethod
    def _no_key() -> str:
        return "RUNPOD_API_KEY is not set: export it to read the account and stop or terminate pods"

    def _actionable(self) -> PodView | None:
        pod = self.selected_pod()
        if pod is None:
            self.notify("no pod selected", severity="warning")
            return None
        if not views.key_is_set():
            self.notify(self._no_key(), severity="warning")
            return None
        return pod

    def action_start_run(self) -> None:
        if not views.key_is_set():
            self.notify(self._no_key(), severity="warning")
            return
        self.app.push_screen(PromptModal("Train on a RunPod GPU: the run's name (enter writes its dataset bundle and"
                                         " prices the GPUs; no pod before you confirm; escape cancels)",
                                         f"pod-{time.strftime('%Y%m%d-%H%M%S')}"),
                             callback=self._plan)

    def _plan(self, name: str | None) -> None:
        if name and name.strip():
            self.notify(f"planning run {name.strip()}: building its dataset bundle, pricing the GPUs…", timeout=4)
            self._plan_run(name.strip())

    @background("planning the pod run", group="pods-plan", exclusive=True)
    def _plan_run(self, name: str) -> None:
        from bizsent.jobs.pod_run import plan_run

        try:
            with closing(open_db(self.bizsent.db_path, create=False)) as db:
                plan = plan_run(db, self.bizsent.settings, name)
        except BizsentError as exc:  # no labels, no GPU under the price cap, RunPod down: one line
            self.post_message(self.ActionDone(str(exc), error=True))
            return
        self.post_message(self.PlanReady(plan))

    def on_pods_screen_plan_ready(self, message: PodsScreen.PlanReady) -> None:
        plan = message.plan
        question = "\n".join([*plan.render(), "", "Start this pod? It bills by the hour until the run ends or a kill"
                                                   " switch stops it."])

        def answered(yes: bool | None) -> None:
            if yes:
                self._run_action(lambda db: self._launch(db, plan))

        self.app.push_screen(ConfirmModal(question, yes="Start pod"), callback=answered)

    def _launch(self, db, plan: PodRunPlan) -> str:
        from bizsent.jobs.pod_run import launch_run

        console = self.bizsent
        job_id, pid = launch_run(db, console.db_path, console.config_path(), console.settings, plan.name,
                                 plan.max_steps)
        return (f"run {plan.name} started as job {job_id} in the background (pid {pid}); its pod appears here once"
                " RunPod creates it")

    def action_stop_pod(self) -> None:
        pod = self._actionable()
        if pod is None:
            return
        if pod.state not in views.BILLING:
            self.notify(f"pod {pod.pod_id} is {pod.state}: nothing to stop (`t` terminates it)", severity="warning")
            return
        self._ask(stop_question(pod), "Stop pod", pod, "stop")

    def action_terminate_pod(self) -> None:
        pod = self._actionable()
        if pod is not None and pod.state in views.ENDED:
            self.notify(f"pod {pod.pod_id} is {pod.state} already: nothing to terminate, it bills nothing more",
                        severity="warning")
        elif pod is not None:
            self._ask(terminate_question(pod), "Terminate pod", pod, "terminate")

    def _ask(self, question: str, yes: str, pod: PodView, what: str) -> None:
        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.notify(f"{what} pod {pod.pod_id}…", timeout=3)
                self._run_action(lambda db: self._pod_action(db, pod, what))

        self.app.push_screen(ConfirmModal(question, yes=yes), callback=answered)

    def _pod_action(self, db, pod: PodView, what: str) -> str:
        from bizsent.core.pods import api
        from bizsent.jobs.pod_run import stop_or_terminate

        with api.client(self.bizsent.settings) as client:
            return stop_or_terminate(db, client, pod.pod_id, what)

    def _run_action(self, action: Callable[..., str]) -> None:
        self.run_worker(lambda: self._action_worker(action), thread=True, group="pods-action")

    def _action_worker(self, action: Callable[..., str]) -> None:
        # RunPod may take a while to confirm a termination: the action waits in this worker, not in the writer.
        self.post_message(self.ActionDone(*store_action(self.bizsent.db_path, action, "pod action")))

    def on_pods_screen_action_done(self, message: PodsScreen.ActionDone) -> None:
        self.notify(message.text, severity="error" if message.error else "information", timeout=10)
        self.survey()
        self.poll()
