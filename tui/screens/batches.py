"""Batches: labeling jobs (live and Batch API) with progress, rate, ETA and cost against the estimate; a job's
failures with their reasons; every labeler against the human test set, with its confusion matrix.

Jobs run in processes of their own (jobs.launch), so this screen only ever reads their rows, on a timer, in a
worker. Starting a job goes through NewJobModal (the dry-run estimate first, nothing spent until Start);
cancel asks first; collect fetches finished Batch API results in a worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from bizsent.core.errors import BizsentError
from bizsent.core.label.planning import Params
from bizsent.core.labels import LABELS
from bizsent.core.store import open_db
from bizsent.jobs import labeling
from bizsent.tui.job_queries import Agreement, JobDetail, JobRow, LabelerScore, agreement_scores, job_detail, job_rows
from bizsent.tui.screens.confirm import ConfirmModal, NewJobModal
from bizsent.tui.widgets.confusion import ConfusionMatrix
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.workers import background, reading
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

log = logging.getLogger(__name__)

HEADERS = {"id": "id", "labeler": "provider/model", "mode": "mode", "state": "state", "progress": "progress",
           "count": "done", "failed": "fail", "rate": "rate", "eta": "ETA", "usd": "$ / est"}
WIDE = ("id", "labeler", "mode", "state", "progress", "count", "failed", "rate", "eta", "usd")
NARROW = ("id", "labeler", "state", "progress", "count", "eta", "usd")  # fits 80 columns
NARROW_BELOW = 100  # screen columns
BAR_WIDTH = 8
LABELER_WIDTH = 20
STATE_STYLE = {"queued": "cyan", "running": "bold yellow", "done": "green", "failed": "bold red",
               "cancelled": "dim", "stalled": "bold magenta"}


# -- formatting (pure: tested directly) ------------------------------------------------------------------------

def money(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 10 else f"${usd:.3f}"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def state_text(job: JobRow) -> Text:
    state = "stalled" if job.stalled else job.state
    return Text(state, style=STATE_STYLE.get(state, ""))


def progress_bar(job: JobRow, width: int = BAR_WIDTH) -> Text:
    share = (job.done + job.failed) / job.total if job.total else (1.0 if job.state == "done" else 0.0)
    filled = round(max(0.0, min(1.0, share)) * width)
    colour = "red" if job.state == "failed" else "green" if job.state == "done" else "yellow"
    return Text.assemble(("━" * filled, colour), ("─" * (width - filled), "grey35"), f" {share:>4.0%}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def job_cells(job: JobRow, columns: tuple[str, ...] = WIDE) -> list[Text]:
    """The job list's cells for `columns`. The table has no cell padding (80 columns are tight): each cell
    brings its own leading space. The narrow list names the model only."""
    live_running = job.state == "running" and job.mode == "live" and not job.stalled
    cost_style = "bold red" if job.estimate_usd and job.usd > job.estimate_usd * 1.2 else ""
    labeler = f"{job.provider}/{job.model}" if "mode" in columns else job.model
    # A queued job's row has no estimate until its process has planned the run.
    estimate = money(job.estimate_usd) if job.estimate_usd or not job.active else "?"
    every: dict[str, Text] = {
        "id": Text(str(job.id)),
        "labeler": Text(_clip(labeler, LABELER_WIDTH if "mode" in columns else 14)),
        "mode": Text(job.mode),
        "state": state_text(job),
        "progress": progress_bar(job),
        "count": Text(f"{job.done}/{job.total}"),
        "failed": Text(str(job.failed), style="red" if job.failed else "dim"),
        "rate": Text(f"{job.rate_per_min:.0f}/m" if live_running and job.rate_per_min else "–"),
        "eta": Text(duration(job.eta_s) if live_running else "–"),
        "usd": Text(f"{money(job.usd)}/{estimate}", style=cost_style),
    }
    return [Text(" ") + every[column] for column in columns]


def job_text(detail: JobDetail) -> RenderableType:
    """The selected job: what, how far, what it cost, and why posts failed."""
    job = detail.job
    head = Text.assemble((f"job {job.id} ", "bold"), f"{job.provider}/{job.model} ", (job.mode, "bold"), " · ",
                         state_text(job))
    if job.pid and job.active:
        head.append(f" (pid {job.pid})", style="dim")
    lines: list[RenderableType] = [head]
    finished = job.done + job.failed
    line = f"labeled {job.done} of {job.total}, failed {job.failed}"
    if job.total:
        line += f" ({finished / job.total:.0%} finished)"
    if job.state == "running" and job.mode == "live" and not job.stalled:
        line += f" · {job.rate_per_min or 0:.0f}/min · ETA {duration(job.eta_s)}"
    lines.append(Text(line))
    calls = ", ".join(f"{status} {n}" for status, n in sorted(detail.calls.items())) or "no requests yet"
    lines.append(Text(f"cost {money(job.usd)} so far, estimate {money(job.estimate_usd)} · ledger: {calls}"))
    when = f"created {job.created_at[:19]}"
    if job.finished_at:
        when += f" · finished {job.finished_at[:19]}"
    elif job.heartbeat_at:
        when += f" · last heartbeat {job.heartbeat_at[11:19]}"
    if job.remote_id:
        when += f" · remote {job.remote_id[:40]}"
    lines.append(Text(when, style="dim"))
    if job.stalled:
        lines.append(Text(f"its process is gone: press r to resume it (or `bizsent label --job {job.id}`)",
                          style="bold magenta"))
    if job.error:
        lines.append(Text(f"error: {job.error}", style="bold red" if job.state == "failed" else "yellow"))
    if job.interrupted:
        lines.append(Text(f"{job.interrupted} request(s) in flight at an earlier kill may have been paid twice",
                          style="yellow"))
    for title, reasons in (("skipped, not sent", job.skipped), ("gave up on", job.gave_up)):
        if reasons:
            lines.append(Text(f"{title}: " + ", ".join(f"{n} ({r})" for r, n in sorted(reasons.items()))))
    if detail.failures:
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False)
        table.add_column("attempts", justify="right")
        table.add_column("posts", justify="right")
        table.add_column("status")
        table.add_column("reason", overflow="fold")
        for f in detail.failures:
            table.add_row(str(f.attempts), str(f.posts), f.status, f.reason)
        lines += [Text(""), Text("failed attempts, by reason (retried per policy)", style="bold"), table]
    else:
        lines.append(Text("no failed requests", style="dim"))
    return Group(*lines)


def agreement_table(agreement: Agreement, selected: str | None, width: int = 80) -> RenderableType:
    """Every labeler against the human test set; the one whose confusion matrix is shown is marked ▶."""
    if not agreement.labelers:
        return Text("no API labels yet: start a job with n; its labels are compared with the human test set"
                    f" ({agreement.test_posts} posts)", style="dim")
    table = Table(box=None, padding=(0, 1), collapse_padding=True, pad_edge=False, show_edge=False,
                  header_style="bold")
    # The figures need 43 columns; the labeler's name gets the rest, so the figures are never squeezed.
    table.add_column("labeler", no_wrap=True, max_width=max(14, width - 45), overflow="ellipsis")
    for name in ("n", "acc", "F1", "kappa", *(label[:4] for label in LABELS), "sarc"):
        table.add_column(name, justify="right", no_wrap=True)
    for s in agreement.labelers:
        mark = s.name == selected
        sarcastic = f"{s.sarcastic_accuracy:.2f}" if s.sarcastic_n else "–"
        table.add_row(("▶ " if mark else "  ") + s.name, str(s.n), f"{s.accuracy:.3f}", f"{s.macro_f1:.3f}",
                      f"{s.kappa:.3f}", *(f"{s.recall[label]:.2f}" for label in LABELS), sarcastic,
                      style="bold" if mark else "")
    return Group(Text(f"labelers vs the human test set ({agreement.test_posts} posts)", style="bold"), table,
                 Text("bear neut bull: recall per class · sarc: accuracy on sarcastic posts", style="dim"))


class BatchesScreen(Screen):
    TITLE = "Batches"
    CSS_PATH = Path(__file__).parent.parent / "styles" / "batches.tcss"
    BINDINGS = [
        Binding("n", "new_job", "new job"),
        Binding("c", "cancel_job", "cancel"),
        Binding("g", "collect", "collect"),
        Binding("a", "toggle_agreement", "agreement"),
        Binding("l", "next_labeler", "labeler"),
        Binding("r", "resume", "resume", show=False),
    ]
    HELP = (
        "Labeling jobs, newest first, re-read from the database every second: a job runs in a process of its "
        "own, so it keeps going after the console exits and shows up here again on the next start. Each row: "
        "state, progress, done/total, failed posts, rate and ETA (live runs), and the cost so far against the "
        "estimate. The pane below shows the selected job: the ledger's request counts and its failures grouped "
        "by reason.\n\n"
        "`n` starts a job: choose provider, model, live or batch (the Batch API is about half the price, results "
        "within a day) and a limit; the dialog shows the dry-run estimate and the budget caps, and nothing is "
        "sent until you press Start. `c` cancels the selected job (after asking). `g` collects finished Batch "
        "API results (all open batch jobs, or the selected one). `r` resumes a queued job or one whose process "
        "died. `a` switches the pane to the agreement table: every labeler against the human test set "
        "(accuracy, macro-F1, Cohen's kappa, recall per class, accuracy on sarcastic posts) and the confusion "
        "matrix of one labeler; `l` picks the next labeler."
    )

    @dataclass
    class JobsLoaded(Message):
        """The job list, and the detail of the selected job (None: nothing selected); a newer poll replaces an
        older one still queued."""

        jobs: list[JobRow]
        detail: JobDetail | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, BatchesScreen.JobsLoaded)

    @dataclass
    class AgreementLoaded(Message):
        agreement: Agreement

    @dataclass
    class ActionDone(Message):
        """A job action (start, cancel, collect) finished in its worker: one line for the user."""

        text: str
        error: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[int, JobRow] = {}
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

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=True, cell_padding=0, id="jobs")
        with VerticalScroll(id="batch-detail"):
            yield Static(Text("loading jobs…", style="dim"), id="job-info")
            yield Static(id="agreement-table")
            yield ConfusionMatrix(id="confusion")
        yield StatusBar()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._show_view()
        self.refresh_jobs()
        self.set_interval(self.app.settings.tui.refresh_s, self._tick)

    def on_screen_resume(self) -> None:
        self._agreement_key = None  # human labels may have changed on another screen
        self.refresh_jobs()

    def _tick(self) -> None:
        if self.is_current:
            self.refresh_jobs()

    # -- reading the store -----------------------------------------------------------------------------------

    def refresh_jobs(self) -> None:
        self._load_jobs(self.selected)

    @background("reading the jobs", group="batches-jobs", exclusive=True)
    def _load_jobs(self, selected: int | None) -> None:
        with reading(self.app.db_path) as db:
            jobs = job_rows(db)
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
        key = tuple((j.id, j.done, j.state) for j in message.jobs)
        if self.view == "agreement" and key != self._agreement_key:
            self._agreement_key = key
            self._load_agreement()

    def on_resize(self) -> None:
        columns = NARROW if self.size.width < NARROW_BELOW else WIDE
        if columns != self.columns:
            self.columns = columns
            table = self.query_one("#jobs", DataTable)
            table.clear(columns=True)
            for column in columns:
                table.add_column(" " + HEADERS[column], key=column)
            self.order = []  # refill at once with the new columns
            self._fill_table(list(self.jobs.values()))

    def _fill_table(self, jobs: list[JobRow]) -> None:
        table = self.query_one("#jobs", DataTable)
        if not self.columns:
            self.on_resize()
        order = [j.id for j in jobs]
        if order != self.order:
            # A new job (they come newest first) or a first load: rebuild, keeping the cursor on its job.
            table.clear()
            for job in jobs:
                table.add_row(*job_cells(job, self.columns), key=str(job.id))
            self.order = order
            if self.selected in order:
                table.move_cursor(row=order.index(self.selected), animate=False)
        else:
            for job in jobs:
                if self.jobs.get(job.id) != job:
                    for column, cell in zip(self.columns, job_cells(job, self.columns), strict=True):
                        table.update_cell(str(job.id), column, cell, update_width=True)
        self.jobs = {j.id: j for j in jobs}
        self._show_view()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None:
            return
        job_id = int(event.row_key.value)
        if job_id != self.selected:
            self.selected = job_id
            self.labeler = None
            self.refresh_jobs()
            self._show_detail()

    @background("computing agreement with the human test set", group="batches-agreement", exclusive=True)
    def _load_agreement(self) -> None:
        with reading(self.app.db_path) as db:
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
            info.update(Text("no labeling jobs yet: press n to start one (the estimate comes first; nothing is"
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

    def selected_job(self) -> JobRow | None:
        return self.jobs.get(self.selected) if self.selected is not None else None

    def action_toggle_agreement(self) -> None:
        self._auto_agreement = False
        self.view = "agreement" if self.view == "job" else "job"
        self._show_view()
        if self.view == "agreement":
            self._agreement_key = tuple((j.id, j.done, j.state) for j in self.jobs.values())
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
        from bizsent.jobs.launch import launch_label

        job_id, pid = launch_label(db, self.app.db_path, self.app.config_path(), params,
                                   self.app.settings.data_dir / "logs")
        self.selected = job_id
        return f"job {job_id} started in the background (pid {pid}); it keeps running after you quit"

    def action_cancel_job(self) -> None:
        job = self.selected_job()
        if job is None:
            self.notify("no job selected", severity="warning")
            return
        if not job.active:
            self.notify(f"job {job.id} is already {job.state}", severity="warning")
            return
        what = "its remote batches are cancelled at the provider" if job.mode == "batch" else \
            "the run stops before its next request"
        question = (f"Cancel job {job.id} ({job.provider}/{job.model}, {job.mode}, {job.done}/{job.total} done)?\n"
                    f"{what}; labels already written stay.")
        self.app.push_screen(ConfirmModal(question, yes="Cancel job"), callback=lambda yes: yes and self._run_action(
            lambda db: labeling.cancel(db, job.id, self.app.settings)))

    def action_collect(self) -> None:
        from bizsent.jobs import batches

        job = self.selected_job()
        only = job.id if job is not None and job.mode == "batch" and job.state == "running" else None
        self.notify("collecting batch results…", timeout=2)
        self._run_action(lambda db: "\n".join(batches.collect(db, self.app.settings, only)), group="batches-collect")

    def action_resume(self) -> None:
        from bizsent.jobs import rows
        from bizsent.jobs.launch import start_detached

        job = self.selected_job()
        if job is None or not (job.state == "queued" or job.stalled):
            self.notify("only a queued job or one whose process died can be resumed", severity="warning")
            return

        def resume(db) -> str:
            pid = start_detached(self.app.db_path, self.app.config_path(), ["label", "--job", str(job.id), "--yes"],
                                 self.app.settings.data_dir / "logs" / f"label-job-{job.id}.log")
            rows.set_pid(db, job.id, pid)
            return f"job {job.id} resumed in the background (pid {pid})"

        self._run_action(resume)

    def _run_action(self, action: Callable[..., str], group: str = "batches-action") -> None:
        self.run_worker(lambda: self._action_worker(action), thread=True, group=group, exclusive=True)

    def _action_worker(self, action: Callable[..., str]) -> None:
        # Actions may wait on the network (cancel and collect talk to the provider): a connection of their own
        # keeps the console's writer thread free for labels.
        try:
            with closing(open_db(self.app.db_path, create=False)) as db:
                text, error = action(db), False
        except BizsentError as exc:
            text, error = str(exc), True
        except Exception as exc:  # a provider outage must not take the console down; the log keeps the trace
            log.exception("batches action failed")
            text, error = f"failed: {type(exc).__name__}: {exc}", True
        self.post_message(self.ActionDone(text, error))

    def on_batches_screen_action_done(self, message: BatchesScreen.ActionDone) -> None:
        self.notify(message.text, severity="error" if message.error else "information", timeout=8)
        self.refresh_jobs()
