"""Jobs: every long-running job of every kind (labeling, batch collect, training, evaluation, pool scoring)
with its status, progress and heartbeat age; a labeling job's cost against the estimate and failures with
their reasons; every labeler against the human test set, with its confusion matrix.

Jobs run in processes of their own (jobs.control), so this screen only ever reads their rows, on a timer, in a
worker, and shows what the engine says of them (jobs.views): a job whose heartbeat stopped shows dead within
seconds. Starting a labeling job goes through NewJobModal (the dry-run estimate first, nothing spent until
Start); cancel asks first; resume restarts a dead, queued or failed job of a resumable kind; collect fetches
finished Batch API results in a worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bizsent.core.label.planning import Params
from bizsent.core.labels import LABELS
from bizsent.jobs.label_views import Agreement, JobDetail, LabelerScore, agreement_scores, job_detail
from bizsent.jobs.views import JobView, listing
from bizsent.tui.app import BizsentNode
from bizsent.tui.keys import with_ids
from bizsent.tui.screens.confirm import ConfirmModal, NewJobModal
from bizsent.tui.screens.job_format import (
    HEADERS,
    NARROW,
    WIDE,
    agreement_table,
    job_cells,
    job_text,
    what_width,
)
from bizsent.tui.widgets.confusion import ConfusionMatrix
from bizsent.tui.widgets.key_bar import KeyBar
from bizsent.tui.widgets.keyed_rows import sync_rows
from bizsent.tui.widgets.nav_table import NavScroll, NavTable
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.workers import background, reading, store_action
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

__all__ = ["NARROW", "WIDE", "BatchesScreen", "job_cells"]
NARROW_BELOW = 100  # screen columns


class BatchesScreen(BizsentNode, Screen):
    TITLE = "Jobs"
    # The new-job and yes/no dialogs' styles (tui.screens.confirm), loaded with the screen that opens them.
    CSS_PATH = Path(__file__).parent.parent / "styles" / "batches.tcss"
    DEFAULT_CSS = """
    BatchesScreen #jobs {
        height: 1fr;
        min-height: 4;
        scrollbar-size-vertical: 1;
    }
    BatchesScreen #batch-detail {
        height: 2fr;
        min-height: 8;
        border-top: solid $primary 50%;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    BatchesScreen #batch-detail > Static {
        height: auto;
    }
    BatchesScreen #agreement-table {
        margin-bottom: 1;
    }
    """
    BINDINGS = with_ids("jobs", [
        Binding("n", "new_job", "new job"),
        Binding("c", "cancel_job", "cancel"),
        Binding("b", "collect", "collect"),
        Binding("a", "toggle_agreement", "agreement"),
        Binding("l", "next_labeler", "labeler"),
        Binding("r", "resume", "resume"),
    ])
    HELP = (
        "Jobs of every kind (label, batch-collect, train, eval, score-pool), newest first, re-read from the "
        "database every second: a job runs in a process of its own, so it keeps going after the console exits "
        "and shows up here again on the next start. Each row: kind, what it does, status, progress, "
        "done/total, ETA (live labeling), the cost so far against the estimate (labeling) and the age of its "
        "heartbeat. A job beats every 2 s; one whose heartbeat stopped shows dead within about 10 s, from any "
        "machine. The pane below shows the selected job (for labeling: the ledger's request counts and its "
        "failures grouped by reason).\n\n"
        "`n` starts a labeling job: choose provider, model, live or batch (the Batch API is about half the "
        "price, results within a day) and a limit; the dialog shows the dry-run estimate and the budget caps, "
        "and nothing is sent until you press Start. `c` cancels the selected job of any kind (after asking). "
        "`b` collects finished Batch API results (all open batch jobs, or the selected one). `r` resumes a "
        "dead, queued or failed job of a resumable kind (live labeling, batch collect, training from its "
        "checkpoints, pool scoring, evaluation from the start) in the background. `a` switches the pane to "
        "the agreement table: every labeler against the human test set (accuracy, macro-F1, Cohen's kappa, "
        "recall per class, accuracy on sarcastic posts) and the confusion matrix of one labeler; `l` picks "
        "the next labeler."
    )

    @dataclass
    class JobsLoaded(Message):
        """The job list, and the detail of the selected job (None: nothing selected). A newer poll replaces an
        older one still waiting in the queue."""

        jobs: list[JobView]
        detail: JobDetail | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, BatchesScreen.JobsLoaded)

    @dataclass
    class AgreementLoaded(Message):
        agreement: Agreement

    @dataclass
    class JobActionDone(Message):
        """A job action (start, cancel, resume, collect) finished in its worker: one line for the user."""

        text: str
        error: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[int, JobView] = {}
        self.order: list[int] = []
        self.selected: int | None = None
        self.detail: JobDetail | None = None
        self.agreement: Agreement | None = None
        self.view = "job"  # job | agreement
        self.labeler: str | None = None  # the labeler whose confusion matrix is shown (None: the job's)
        self.loaded = False
        self._agreement_key: tuple | None = None
        self._auto_agreement = False  # the agreement view was chosen for lack of jobs, not by the user
        self.columns: tuple[str, ...] = ()
        self.what_room = 0  # the "what" column's width: the list's width less the other columns

    def compose(self) -> ComposeResult:
        yield NavTable(cursor_type="row", zebra_stripes=True, cell_padding=0, id="jobs")
        with NavScroll(id="batch-detail"):
            yield Static(Text("loading jobs…", style="dim"), id="job-info")
            yield Static(id="agreement-table")
            yield ConfusionMatrix(id="confusion")
        yield StatusBar()
        yield KeyBar()

    def on_mount(self) -> None:
        left_at = self.bizsent.position("batches")  # the job selected when the console was last closed
        self.selected = left_at if isinstance(left_at, int) else None
        self._show_view()
        self.refresh_jobs()
        self.poll_while_shown(self.refresh_jobs)

    def on_screen_resume(self) -> None:
        self._agreement_key = None  # human labels may have changed on another screen
        self.refresh_jobs()

    # -- reading the store -----------------------------------------------------------------------------------

    def refresh_jobs(self) -> None:
        self._load_jobs(self.selected)

    @background("reading the jobs", group="batches-jobs", exclusive=True)
    def _load_jobs(self, selected: int | None) -> None:
        with reading(self.bizsent.db_path) as db:
            jobs = listing(db)
            if selected is None and jobs:
                selected = jobs[0].id
            detail = job_detail(db, selected) if selected is not None else None
        self.post_message(self.JobsLoaded(jobs, detail))

    def on_batches_screen_jobs_loaded(self, message: BatchesScreen.JobsLoaded) -> None:
        first = not self.loaded
        self.loaded = True
        self._fill_table(message.jobs)
        if message.detail is not None and (self.selected is None or message.detail.job.id == self.selected):
            self.selected = message.detail.job.id
            self.detail = message.detail
        if first and not message.jobs:
            # Nothing to show about jobs yet: the labels already here are worth a look, until a job appears.
            self.view, self._auto_agreement = "agreement", True
            self._show_view()
        elif self._auto_agreement and message.jobs:
            self.view, self._auto_agreement = "job", False
            self._show_view()
        self._show_detail()
        key = tuple((j.id, j.done, j.status) for j in message.jobs)
        if self.view == "agreement" and key != self._agreement_key:
            self._agreement_key = key
            self._load_agreement()

    def on_resize(self) -> None:
        columns = NARROW if self.size.width < NARROW_BELOW else WIDE
        room = what_width(columns, self.size.width)
        if (columns, room) != (self.columns, self.what_room):
            self.columns, self.what_room = columns, room
            table = self.query_one("#jobs", DataTable)
            table.clear(columns=True)
            for column in columns:
                table.add_column(" " + HEADERS[column], key=column)
            self.order = []  # refill at once with the new columns
            self._fill_table(list(self.jobs.values()))

    def _fill_table(self, jobs: list[JobView]) -> None:
        if not self.columns:
            self.on_resize()
        self.order = sync_rows(self.query_one("#jobs", DataTable), self.jobs, self.order, jobs, lambda j: j.id,
                               lambda j: job_cells(j, self.columns, self.what_room), self.columns, self.selected)
        self.jobs = {j.id: j for j in jobs}
        self._show_view()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None:
            return
        job_id = int(event.row_key.value)
        self.bizsent.note_position("batches", job_id)
        if job_id != self.selected:
            self.selected = job_id
            self.labeler = None
            self.refresh_jobs()
            self._show_detail()

    @background("computing agreement with the human test set", group="batches-agreement", exclusive=True)
    def _load_agreement(self) -> None:
        with reading(self.bizsent.db_path) as db:
            scores = agreement_scores(db)
        self.post_message(self.AgreementLoaded(scores))

    def on_batches_screen_agreement_loaded(self, message: BatchesScreen.AgreementLoaded) -> None:
        self.agreement = message.agreement
        self._show_detail()

    # -- drawing ---------------------------------------------------------------------------------------------

    def _show_view(self) -> None:
        agreement = self.view == "agreement"
        # With no jobs the job pane holds the hint on how to start one, in either view.
        self.query_one("#job-info").display = not agreement or (self.loaded and not self.jobs)
        self.query_one("#agreement-table").display = agreement
        self.query_one("#confusion").display = agreement

    def shown_labeler(self) -> LabelerScore | None:
        """The labeler whose confusion matrix is on screen: the one picked with `l`, else the selected job's,
        else the first."""
        if not self.agreement or not self.agreement.labelers:
            return None
        by_name = {s.name: s for s in self.agreement.labelers}
        if self.labeler in by_name:
            return by_name[self.labeler]
        job = self.jobs.get(self.selected) if self.selected is not None else None
        if job is not None and job.labeler in by_name:
            return by_name[job.labeler]
        return self.agreement.labelers[0]

    def _show_detail(self) -> None:
        info = self.query_one("#job-info", Static)
        if self.loaded and not self.jobs:
            info.update(Text("no jobs yet: press n to start a labeling job (the estimate comes first; nothing is"
                             " spent until you confirm)", style="dim"))
        elif self.detail is not None and self.detail.job.id == self.selected:
            info.update(job_text(self.detail))
        if self.view == "job":
            return
        if self.agreement is None:
            self.query_one("#agreement-table", Static).update(Text("computing agreement…", style="dim"))
            return
        shown = self.shown_labeler()
        self.query_one("#agreement-table", Static).update(
            agreement_table(self.agreement, shown.name if shown else None,
                            self.query_one("#batch-detail").scrollable_content_region.width))
        confusion = self.query_one(ConfusionMatrix)
        confusion.display = shown is not None
        if shown is not None:
            confusion.show(shown.confusion, labels=LABELS, title=shown.name)

    # -- actions ---------------------------------------------------------------------------------------------

    def selected_job(self) -> JobView | None:
        return self.jobs.get(self.selected) if self.selected is not None else None

    def action_toggle_agreement(self) -> None:
        self._auto_agreement = False
        self.view = "agreement" if self.view == "job" else "job"
        self._show_view()
        if self.view == "agreement":
            self._agreement_key = tuple((j.id, j.done, j.status) for j in self.jobs.values())
            self._load_agreement()
        self._show_detail()

    def action_next_labeler(self) -> None:
        if self.view != "agreement":
            self.action_toggle_agreement()
            return
        shown = self.shown_labeler()
        if shown is None or self.agreement is None:
            return
        names = [s.name for s in self.agreement.labelers]
        self.labeler = names[(names.index(shown.name) + 1) % len(names)]
        self._show_detail()

    def action_new_job(self) -> None:
        self.app.push_screen(NewJobModal(), callback=self._confirmed)

    def _confirmed(self, params: Params | None) -> None:
        if params is not None:
            self._run_action(lambda db: self._launch(db, params))

    def _launch(self, db, params: Params) -> str:
        from bizsent.jobs.control import launch_label

        job_id, pid = launch_label(db, self.bizsent.db_path, self.bizsent.config_path(), params,
                                   self.bizsent.settings.data_dir / "logs")
        self.selected = job_id
        return f"job {job_id} started in the background (pid {pid}); it keeps running after you quit"

    def action_cancel_job(self) -> None:
        from bizsent.jobs.control import cancel
        from bizsent.jobs.states import kind_of

        job = self.selected_job()
        if job is None:
            self.notify("no job selected", severity="warning")
            return
        if not job.active and job.status != "dead":
            self.notify(f"job {job.id} is already {job.status}", severity="warning")
            return
        if job.status == "dead":
            what = "its process is gone already; the job is closed as cancelled"
        else:
            what = kind_of(job.kind).cancel_says(job.params)
        # The job goes on while the question is open: its count is dated, not presented as the final one.
        counting = "" if job.status == "dead" else ", still counting"
        question = (f"Cancel job {job.id} ({job.kind}: {job.what}; {job.done}/{job.total} done at "
                    f"{time.strftime('%H:%M:%S')}{counting})?\n{what}; what it already wrote stays.")
        self.app.push_screen(ConfirmModal(question, yes="Cancel job"), callback=lambda yes: yes and self._run_action(
            lambda db: cancel(db, self.bizsent.settings, job.id)))

    def action_collect(self) -> None:
        from bizsent.jobs import batches

        job = self.selected_job()
        only = job.id if job is not None and job.kind == "label" and job.status == "waiting" else None
        self.notify("collecting batch results…", timeout=2)
        settings = self.bizsent.settings
        self._run_action(lambda db: "\n".join(batches.collect(db, settings, only)), group="batches-collect")

    def action_resume(self) -> None:
        from bizsent.jobs.control import resume

        job = self.selected_job()
        if job is None or not job.resumable:
            self.notify("only a dead, queued or failed job of a resumable kind can be resumed", severity="warning")
            return

        def start(db) -> str:
            console = self.bizsent
            pid = resume(db, console.db_path, console.config_path(), job.id, console.settings.data_dir / "logs")
            return f"job {job.id} resumed in the background (pid {pid})"

        self._run_action(start)

    def _run_action(self, action: Callable[..., str], group: str = "batches-action") -> None:
        self.run_worker(lambda: self._action_worker(action), thread=True, group=group, exclusive=True)

    def _action_worker(self, action: Callable[..., str]) -> None:
        # Cancel and collect talk to the provider: the action waits in this worker, not in the writer.
        self.post_message(self.JobActionDone(*store_action(self.bizsent.db_path, action, "jobs action")))

    def on_batches_screen_job_action_done(self, message: BatchesScreen.JobActionDone) -> None:
        self.notify(message.text, severity="error" if message.error else "information", timeout=8)
        self.refresh_jobs()
