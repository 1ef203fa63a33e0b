"""What the Jobs screen draws, as pure functions of the engine's JobView (jobs.views): the list's cells, the
selected job's pane and the agreement table. Tested directly; no rules here, only drawing."""

from __future__ import annotations

from bizsent.core.labels import LABELS
from bizsent.jobs.label_views import Agreement, JobDetail
from bizsent.jobs.views import JobView, age_text
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

HEADERS = {"id": "id", "kind": "kind", "labeler": "what", "state": "state", "progress": "progress",
           "count": "done", "failed": "fail", "rate": "rate", "eta": "ETA", "usd": "$ / est", "beat": "beat"}
WIDE = ("id", "kind", "labeler", "state", "progress", "count", "failed", "eta", "usd", "beat")
NARROW = ("id", "labeler", "state", "progress", "count", "eta", "usd")  # fits 80 columns
BAR_WIDTH = 8
# What every column but "what" usually takes, its leading space included: "what" gets the rest of the width.
WIDTHS = {"id": 4, "kind": 11, "state": 9, "progress": 14, "count": 10, "failed": 4, "rate": 6, "eta": 6,
          "usd": 14, "beat": 5}
MIN_WHAT = 14
KIND_WIDTH = 10
STATE_STYLE = {"queued": "cyan", "starting": "cyan", "running": "bold yellow", "waiting": "yellow",
               "done": "green", "failed": "bold red", "cancelled": "dim", "dead": "bold magenta"}


def money(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 10 else f"${usd:.3f}"


def duration(seconds: float | None) -> str:
    return "–" if seconds is None or seconds < 0 else age_text(seconds)


def state_text(job: JobView) -> Text:
    return Text(job.status, style=STATE_STYLE.get(job.status, ""))


def progress_bar(job: JobView, width: int = BAR_WIDTH) -> Text:
    filled = round(job.share * width)
    colour = "red" if job.status in ("failed", "dead") else "green" if job.status == "done" else "yellow"
    return Text.assemble(("━" * filled, colour), ("─" * (width - filled), "grey35"), f" {job.share:>4.0%}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _labeling(job: JobView) -> bool:
    return job.kind == "label"


def what_width(columns: tuple[str, ...], width: int) -> int:
    """The "what" column's width in a list `width` columns wide: the rest after the others (scrollbar included),
    at least MIN_WHAT."""
    return max(MIN_WHAT, width - 2 - sum(WIDTHS[c] for c in columns if c != "labeler"))


def job_cells(job: JobView, columns: tuple[str, ...] = WIDE, what_room: int = 20) -> list[Text]:
    """The job list's cells for `columns`, "what" cut to `what_room`. The table has no cell padding (80 columns
    are tight): each cell brings its own leading space. The narrow list names a labeling job's model only."""
    live_running = _labeling(job) and job.status == "running" and job.mode == "live"
    cost_style = "bold red" if job.estimate_usd and job.usd > job.estimate_usd * 1.2 else ""
    if _labeling(job):
        what = f"{job.provider}/{job.model} {job.mode}" if "kind" in columns else job.model
        # A queued job's row has no estimate until its process has planned the run.
        estimate = money(job.estimate_usd) if job.estimate_usd or not job.active else "?"
        usd = Text(f"{money(job.usd)}/{estimate}", style=cost_style)
    else:
        what, usd = job.what, Text("–", style="dim")
    beat = age_text(job.heartbeat_age_s) if job.status in ("starting", "running", "dead") else ""
    every: dict[str, Text] = {
        "id": Text(str(job.id)),
        "kind": Text(_clip(job.kind, KIND_WIDTH)),
        "labeler": Text(_clip(what, what_room)),
        "state": state_text(job),
        "progress": progress_bar(job),
        "count": Text(job.count_text),
        "failed": Text(str(job.failed), style="red" if job.failed else "dim"),
        "rate": Text(f"{job.rate_per_min:.0f}/m" if live_running and job.rate_per_min else "–"),
        "eta": Text(duration(job.eta_s) if live_running else "–"),
        "usd": usd,
        "beat": Text(beat, style="bold magenta" if job.status == "dead" else "dim"),
    }
    return [Text(" ") + every[column] for column in columns]


def _label_lines(detail: JobDetail) -> list[RenderableType]:
    job = detail.job
    finished = job.done + job.failed
    line = f"labeled {job.done} of {job.total}, failed {job.failed}"
    if job.total:
        line += f" ({finished / job.total:.0%} finished)"
    if job.status == "running" and job.mode == "live":
        line += f" · {job.rate_per_min or 0:.0f}/min · ETA {duration(job.eta_s)}"
    calls = ", ".join(f"{status} {n}" for status, n in sorted(detail.calls.items())) or "no requests yet"
    lines: list[RenderableType] = [
        Text(line), Text(f"cost {money(job.usd)} so far, estimate {money(job.estimate_usd)} · ledger: {calls}")]
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
    return lines


def job_text(detail: JobDetail) -> RenderableType:
    """The selected job: what, how far, whether its process lives, what it cost, and why posts failed."""
    job = detail.job
    head = Text.assemble((f"job {job.id} ", "bold"), (f"{job.kind} ", "bold"), f"{job.what} · ", state_text(job))
    if job.pid and job.status in ("starting", "running", "dead"):
        head.append(f" (pid {job.pid}" + (f" on {job.host})" if job.host else ")"), style="dim")
    lines: list[RenderableType] = [head]
    if job.error:
        lines.append(Text(f"error: {job.error}", style="bold red" if job.status == "failed" else "yellow"))
    if job.status == "dead":
        hint = "press r to resume it" if job.resumable else "press c to close it"
        lines.append(Text(f"its process is gone (no heartbeat for {duration(job.heartbeat_age_s)}): {hint}",
                          style="bold magenta"))
    when = f"created {job.created_at[:19]}"
    if job.finished_at:
        when += f" · finished {job.finished_at[:19]}"
    elif job.heartbeat_at:
        when += f" · last heartbeat {duration(job.heartbeat_age_s)} ago"
    if job.remote_id:
        when += f" · remote {job.remote_id[:40]}"
    lines.append(Text(when, style="dim"))
    if _labeling(job):
        lines += _label_lines(detail)
    else:
        lines.append(Text(job.done_text))
    if job.next_step:
        lines.append(Text(job.next_step, style="bold"))
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
