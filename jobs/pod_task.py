"""One path for every piece of GPU work on a RunPod pod (train, eval, score-pool, selftrain): each is a job kind
whose process runs this chain with its own `PodTask`, the few things that differ between them.

The chain: plan (the task's work priced on the configured GPUs) -> confirm -> create the pod (its id stored the
moment RunPod answers) -> wait until it runs -> upload wheel, bundle and job.json -> start -> watch (jobs.pod_watch:
metric events into the task's runs, the pod's log into data/runs/<name>/pod.log, cost into the pod row, both
brakes) -> the task collects its result (an adapter, or scores) into the store -> terminate the pod and confirm
with RunPod that it is gone.

Whatever ends the chain (an error, a cancel, Ctrl-C) terminates the pod in `finally` and waits for RunPod's
confirmation; only a killed laptop process leaves it, to its own watchdog (core/pods/agent/watchdog.py), which stops
it, and to `bizsent pods reap`. A resumed job reattaches to the pod its row names instead of creating a second one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError, Cancelled
from bizsent.core.model.events import MetricEvent
from bizsent.core.pods import api, launch, plan, records
from bizsent.core.pods.channel import AgentChannel, AgentHealth
from bizsent.core.pods.launch import PodHandle
from bizsent.core.pods.payload import Payload
from bizsent.core.pods.views import run_log_path
from bizsent.jobs import rows
from bizsent.jobs.heartbeat import running
from bizsent.jobs.pod_watch import JobWriter, LogTail, Progress, watch


class PodInterrupted(Cancelled):
    """Ctrl-C stopped a pod job; its pod was terminated first (the message says so, with the cost)."""


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """What the user confirms: the task's own lines, then the pod's price, expected cost and kill switches."""

    lines: list[str]
    pod: plan.PodPlan
    total: int  # the job's progress total: optimiser steps, or posts to score

    def render(self) -> list[str]:
        return [*self.lines, *self.pod.render().splitlines()]


@dataclass(slots=True)
class TaskOutcome:
    job_id: int
    pod_id: str
    usd: float
    summary: str  # one line: what the task stored
    details: dict[str, Any] = field(default_factory=dict)


class PodTask(Protocol):
    """What one kind of pod work adds to the chain."""

    name: str  # the run folder on the pod and the pod's name (core.pods.agent.job.RUN_NAME)

    def plan(self, client: api.RunpodClient) -> TaskPlan: ...

    def payload(self) -> Payload: ...

    def open_runs(self, resumed: bool) -> None:
        """Create (or, on a resume, reopen) the laptop's run rows that the pod's events go to."""

    def started(self, handle: PodHandle) -> None:
        """The pod exists: record it on the runs."""

    def run_of(self, event: MetricEvent) -> int | None:
        """The run a metric event of the pod belongs to (None: drop it)."""

    def collect(self, channel: AgentChannel, writer: JobWriter, health: AgentHealth) -> str:
        """Download the pod's result, verify it, store it; return what was stored, in one line."""

    def end_runs(self, state: str) -> None:
        """The chain failed or was cancelled: end the task's runs `state` (unless the result is stored)."""


def plan_queued(db: sqlite_utils.Database, settings: Settings, kind: str, params: dict[str, Any],
                task_of: Callable[[dict], PodTask]) -> tuple[int, TaskPlan]:
    """A queued `kind` row and its task's plan, for the console to ask about; a plan that fails ends the row
    (nothing was started) and raises."""
    job_id = rows.queue(db, kind, params)
    try:
        with api.client(settings) as client:
            return job_id, task_of(rows.get(db, job_id) or {}).plan(client)
    except BaseException:
        rows.finish(db, job_id, "cancelled", "not planned; no pod was started")
        raise


def run_task(db: sqlite_utils.Database, settings: Settings, job_id: int, task_of: Callable[[dict], PodTask], *,
             kinds: tuple[str, ...], confirm: Callable[[TaskPlan], bool],
             report: Callable[[Progress], None] = lambda p: None) -> TaskOutcome | None:
    """Run (or resume) pod job `job_id` in this process; None when the plan was not confirmed."""
    job = rows.of_kind(db, job_id, *kinds)
    with running(db, job_id) as beat, api.client(settings) as client:
        progress = Progress("planning", extra={"metrics_next": int(job["counts"].get("metrics_next", 0))})
        writer = JobWriter(db, job_id, beat, progress, report)
        return _chain(db, settings, client, job, writer, task_of(job), confirm)


def _chain(db: sqlite_utils.Database, settings: Settings, client: api.RunpodClient, job: dict[str, Any],
           writer: JobWriter, task: PodTask, confirm: Callable[[TaskPlan], bool]) -> TaskOutcome | None:
    job_id = job["id"]
    handle = _reattach(db, settings, client, job_id)
    payload: Payload | None = None
    the_plan: TaskPlan | None = None
    if handle is None:
        the_plan = task.plan(client)
        writer.progress.total_steps = the_plan.total
        if not confirm(the_plan):
            rows.finish(db, job_id, "cancelled", "not confirmed; no pod was started")
            return None
        # Built before the pod exists: the wheel and the tar take a while, and a pod bills from its creation.
        payload = task.payload()
    else:
        writer.progress.total_steps = int(job["total"] or 0)
    task.open_runs(resumed=handle is not None)
    finished = False
    try:
        if handle is None:
            assert the_plan is not None
            handle = launch.start_pod(db, settings, client, the_plan.pod, job_id=job_id)
        writer.progress.pod_id = handle.pod_id
        writer.progress.extra.update(gpu=handle.gpu, usd_per_hour=handle.usd_per_hour)
        task.started(handle)
        outcome = _drive(db, settings, client, handle, writer, task, lambda: payload or task.payload())
        finished = True
        return outcome
    except KeyboardInterrupt:
        task.end_runs("cancelled")
        if handle is None:
            raise PodInterrupted("interrupted; no pod was running") from None
        usd = launch.terminate_and_confirm(db, client, handle.pod_id, error="interrupted (Ctrl-C)")
        finished = True
        raise PodInterrupted(f"interrupted; pod {handle.pod_id} terminated (RunPod confirms it is gone), cost"
                             f" ${usd:.2f}") from None
    except BaseException as exc:
        task.end_runs("cancelled" if isinstance(exc, Cancelled) else "failed")
        raise
    finally:
        if handle is not None and not finished:
            launch.terminate_and_confirm(db, client, handle.pod_id, error="the job ended early (see the job)")


def _reattach(db: sqlite_utils.Database, settings: Settings, client: api.RunpodClient, job_id: int
              ) -> PodHandle | None:
    """The pod an earlier process of this job started, when RunPod still has it running: never a second pod."""
    row = records.of_job(db, job_id)
    if row is None or row.state not in records.LIVE:
        return None
    if row.pod_id is None:  # killed while its create was in flight: the pod is found by its name, or never made
        found = launch.adopt_by_name(db, settings, client, row)
        if found is None:
            return None
        row = records.row_of(db, found.pod_id)
        assert row is not None and row.pod_id is not None
    pod_id = row.pod_id
    pod = client.get_pod(pod_id)
    if pod is None:
        records.finish(db, row.id, "gone", None, "not on RunPod any more")
        return None
    handle = launch.handle_of(db, settings, pod_id)
    if pod.status in ("EXITED", "ERROR"):
        usd = launch.terminate_and_confirm(db, client, pod_id, error=f"found {pod.status} on resume")
        raise BizsentError(f"pod {pod_id} of this job was stopped ({pod.status}, by its watchdog or by hand);"
                           f" it is now terminated (cost ${usd:.2f}). Start the job again")
    return handle


def _drive(db: sqlite_utils.Database, settings: Settings, client: api.RunpodClient, handle: PodHandle,
           writer: JobWriter, task: PodTask, payload: Callable[[], Payload]) -> TaskOutcome:
    conf = settings.runpod
    writer.save("booting")
    # Both waits poll the job's cancel: a cancel while the pod boots or its agent comes up stops the job within
    # seconds (the chain then terminates the pod), not after runpod.boot_timeout_min.
    launch.wait_running(db, client, handle, settings, poll_s=min(conf.poll_s, 2.0), on_status=lambda _: writer.check())
    writer.save("connecting")
    log_path = run_log_path(settings, handle.run_name)
    tail = LogTail(settings, handle.pod_id, log_path).start()
    try:
        with AgentChannel(handle.agent_url, handle.token, backoff_s=min(conf.poll_s, 1.0)) as channel:
            health = channel.wait_ready(conf.boot_timeout_min * 60, poll_s=min(conf.poll_s, 2.0), check=writer.check)
            if health.state == "waiting-upload":
                writer.save("uploading")
                channel.upload_payload(payload())
                channel.start()
            final = watch(writer, settings, client, handle, task.run_of, log_path)
            writer.save("downloading")
            summary = task.collect(channel, writer, final)
    finally:
        tail.close(wait_s=0.5)
    usd = launch.terminate_and_confirm(db, client, handle.pod_id)
    writer.progress.usd = usd
    writer.save("done")
    return TaskOutcome(writer.job_id, handle.pod_id, usd, summary, dict(writer.progress.extra))


def cancel(db: sqlite_utils.Database, settings: Settings, job: dict[str, Any]) -> str:
    """`jobs cancel` of a pod job: a live process sees the flag and terminates its pod; a dead one cannot, so the
    pod is terminated here."""
    from bizsent.jobs.states import status

    dead = status(job) == "dead"
    rows.finish(db, job["id"], "cancelled", "cancelled by the user")
    row = records.of_job(db, job["id"])
    if row is None or row.state not in records.LIVE:
        return f"job {job['id']} cancelled"
    if not dead:
        return (f"job {job['id']} cancelled; its process terminates pod {row.pod_id or row.name} within seconds"
                " and ends its run (`bizsent pods list` shows it gone)")
    with api.client(settings) as client:
        pod_id = row.pod_id
        if pod_id is None:  # killed while its create was in flight: RunPod may have made the pod all the same
            handle = launch.adopt_by_name(db, settings, client, row)
            if handle is None:
                return f"job {job['id']} cancelled; RunPod has no pod named {row.name}: nothing is billing"
            pod_id = handle.pod_id
        usd = launch.terminate_and_confirm(db, client, pod_id, error="job cancelled")
    return f"job {job['id']} cancelled; pod {pod_id} terminated (RunPod confirms it is gone), cost ${usd:.2f}"


def stop_or_terminate(db: sqlite_utils.Database, client: api.RunpodClient, pod_id: str, action: str) -> str:
    """`pods stop|terminate POD` (the CLI and the Pods screen). Terminating a pod that a pod job still runs
    cancels that job first: its process stops waiting on a pod that is gone and ends the job and its run as
    cancelled, not failed 13 minutes later."""
    from bizsent.core.pods import orphans
    from bizsent.jobs.states import ACTIVE, status

    row = records.row_of(db, pod_id)
    job = rows.get(db, row.job_id) if action == "terminate" and row and row.job_id else None
    owned = job is not None and status(job) in (*ACTIVE, "dead")
    if owned:
        rows.finish(db, job["id"], "cancelled", f"cancelled: its pod {pod_id} was terminated by the user")
    line = orphans.stop_or_terminate(db, client, pod_id, action)
    return f"{line}; its job {job['id']} is cancelled" if owned else line
