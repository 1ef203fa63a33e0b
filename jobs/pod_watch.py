"""Watching a training pod from the laptop: the pod's log stream into data/runs/<run>/pod.log, its metric events
into the store, its cost into its row, and the job's progress and heartbeat into the job row, until training
ends on the pod.

Metric events are stored exactly once: the agent numbers them (the line count of its events.jsonl), the next
number to ask for is written to the job row (counts.metrics_next) in the same transaction as the events, and an
event of a step the run already holds is skipped (core.model.events.record_new). A reconnect, a dropped log
stream or a restarted laptop process therefore never duplicates a row. The log stream resumes after the last
event id it wrote (kept next to the log), so the log file holds each line once as well.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError, Cancelled
from bizsent.core.log import redact
from bizsent.core.model.events import MetricEvent, record_new
from bizsent.core.pods import api, launch, records
from bizsent.core.pods.brake import BrakeApplied, LaptopBrake
from bizsent.core.pods.channel import AgentChannel, AgentHealth
from bizsent.core.pods.launch import PodHandle
from bizsent.core.store import transaction
from bizsent.jobs import rows
from bizsent.jobs.heartbeat import Beat

log = logging.getLogger("bizsent.pods")

COST_EVERY_S = 15.0


@dataclass(slots=True)
class Progress:
    """What the job row's counts hold for a pod run, and what the CLI's progress line shows."""

    state: str  # planning | booting | connecting | uploading | installing | training | running | downloading | done
    step: int = 0
    total_steps: int = 0
    usd: float = 0.0
    pod_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # metrics_next, gpu, usd_per_hour

    def line(self) -> str:
        steps = (f" step {self.step}/{self.total_steps}" if self.state == "training" else
                 f" {self.step}/{self.total_steps} posts scored" if self.state == "running" else "")
        pod = f"pod {self.pod_id} " if self.pod_id else ""
        return f"{pod}{self.state}{steps}, ${self.usd:.3f} so far"


class JobWriter:
    """Writes a pod run's progress to its job row (which also beats the heartbeat) and notices a cancel."""

    def __init__(self, db: sqlite_utils.Database, job_id: int, beat: Beat, progress: Progress,
                 report: Callable[[Progress], None]) -> None:
        self.db, self.job_id, self.beat, self.progress, self.report = db, job_id, beat, progress, report

    def counts(self) -> dict[str, Any]:
        p = self.progress
        return {**p.extra, "state": p.state, "step": p.step, "usd": round(p.usd, 6), "pod_id": p.pod_id}

    def save(self, state: str | None = None) -> None:
        if state is not None:
            self.progress.state = state
        self._write()
        self.report(self.progress)

    def check(self) -> None:
        """Raise Cancelled once the job is cancelled (its heartbeat reads the row every few seconds): what a wait
        with nothing to write (a pod booting, its agent not answering yet) calls on each poll."""
        if self.beat.cancelled.is_set():
            raise Cancelled(f"job {self.job_id} cancelled")

    def _write(self) -> None:
        p = self.progress
        now_state = rows.progress(self.db, self.job_id, done=p.step, failed=0, total=p.total_steps,
                                  counts=self.counts())
        if now_state == "cancelled" or self.beat.cancelled.is_set():
            raise Cancelled(f"job {self.job_id} cancelled")

    def store_events(self, run_of: Callable[[MetricEvent], int | None], events: list[MetricEvent],
                     next_cursor: int) -> int:
        """The events, each into the run `run_of` names, and the cursor after them, in one transaction: all are
        written, or none. A live evaluation event (core.evaluate.live) also moves the progress: posts scored."""
        by_run: dict[int, list[MetricEvent]] = {}
        for event in events:
            run_id = run_of(event)
            if run_id is not None:
                by_run.setdefault(run_id, []).append(event)
            if event.data.get("live"):
                scored = self.progress.extra.setdefault("scored", {})
                scored[str(event.data.get("target") or "model")] = int(event.data.get("n") or 0)
                self.progress.step = sum(scored.values())
        with transaction(self.db):
            added = sum(record_new(self.db, run_id, batch) for run_id, batch in by_run.items())
            self.progress.extra["metrics_next"] = next_cursor
            self._write()
        return added


class LogTail:
    """A thread that appends the pod's container and system log to a file, resuming after the last line written."""

    def __init__(self, settings: Settings, pod_id: str, path: Path) -> None:
        self.settings, self.pod_id, self.path = settings, pod_id, path
        self.cursor = path.with_name(path.name + ".last-id")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"pod-log-{pod_id}", daemon=True)

    def start(self) -> LogTail:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        return self

    def close(self, wait_s: float = 2.0) -> None:
        self.stop.set()
        self.thread.join(timeout=wait_s)

    def _run(self) -> None:
        after = self.cursor.read_text(encoding="utf-8").strip() if self.cursor.exists() else None
        try:
            with api.client(self.settings) as client, self.path.open("a", encoding="utf-8") as out:
                for line in client.follow_logs(self.pod_id, tail=api.MAX_LOG_TAIL, after=after or None,
                                               until=self.stop.is_set):
                    out.write(redact(f"{line.ts} [{line.source}] {line.line}") + "\n")
                    out.flush()
                    if line.id:
                        self.cursor.write_text(line.id, encoding="utf-8")
        except Exception as exc:  # the log is for reading along; losing it must never stop or fail the run
            log.info("log stream of pod %s ended: %s", self.pod_id, exc)
            self._note(f"RunPod's log stream of this pod stopped; the run goes on: {exc}")

    def _note(self, text: str) -> None:
        """One line of bizsent's own in the pod log, where the reader of the log looks for why it went quiet."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = " ".join(redact(text).split())
        with contextlib.suppress(OSError), self.path.open("a", encoding="utf-8") as out:
            out.write(f"{stamp} [bizsent] {line}\n")


def watch(writer: JobWriter, settings: Settings, client: api.RunpodClient, handle: PodHandle,
          run: int | Callable[[MetricEvent], int | None], log_path: Path) -> AgentHealth:
    """Poll the agent until the pod's task ends: metric events into the store (into run `run`, or the run
    `run(event)` names), cost into the pod row,
    progress into the job row. Returns the final health ('done'); raises one line when training failed, the
    pod stopped or vanished, its agent stayed unreachable for runpod.agent_lost_min, or the laptop's brake
    (core.pods.brake) stops it: a cap passed, or the pod's watchdog could not stop it."""
    conf = settings.runpod
    progress = writer.progress
    run_of = run if callable(run) else lambda _event: run
    row = records.row_of(writer.db, handle.pod_id)
    brake = LaptopBrake.of(settings, handle.usd_per_hour, row.created_at if row else None)
    lost_since: float | None = None
    cost_at = 0.0
    with AgentChannel(handle.agent_url, handle.token, retries=1, backoff_s=min(conf.poll_s, 1.0),
                      timeout_s=60) as quick:
        while True:
            try:
                health = quick.health()
                events, cursor = quick.metrics(int(progress.extra.get("metrics_next", 0)))
                last_line = quick.logs(tail=1)
            except BizsentError as exc:
                if "refused the run token" in str(exc):
                    raise
                lost_since = lost_since or time.monotonic()
                _check_pod(client, handle, exc)
                if time.monotonic() - lost_since > conf.agent_lost_min * 60:
                    raise BizsentError(f"the agent of pod {handle.pod_id} has not answered for "
                                       f"{conf.agent_lost_min:g} min ({exc}); the pod counts as crashed") from None
            else:
                lost_since = None
                progress.step = health.step or progress.step
                if health.state in ("installing", "training", "running"):
                    progress.state = health.state
                writer.store_events(run_of, events, cursor)
                brake.saw((health.state, health.step, cursor, last_line))
                if health.state == "failed":
                    what = "scoring" if progress.state == "running" else "training"
                    raise BizsentError(f"{what} on pod {handle.pod_id} failed: {health.error}; its log is in"
                                       f" {log_path}")
                if health.state == "done":
                    return health
                if health.stop_failed:
                    raise BrakeApplied(f"the watchdog of pod {handle.pod_id} could not stop it"
                                       f" ({health.stop_failed}); bizsent terminates it")
                if health.watchdog:
                    raise BizsentError(f"the watchdog of pod {handle.pod_id} acted ({health.watchdog})")
            if time.monotonic() - cost_at >= COST_EVERY_S:
                progress.usd = launch.cost_so_far(writer.db, client, handle.pod_id)
                cost_at = time.monotonic()
            progress.usd = brake.usd(progress.usd)
            why = brake.reason(progress.usd)
            if why:
                raise BrakeApplied(f"bizsent stopped pod {handle.pod_id} before training ended: {why}; it is"
                                   " terminated (raise the cap in config.toml, or train fewer steps)")
            writer.save()
            if writer.beat.cancelled.wait(conf.poll_s):
                raise Cancelled(f"job {writer.job_id} cancelled")


def _check_pod(client: api.RunpodClient, handle: PodHandle, why: Exception) -> None:
    pod = client.get_pod(handle.pod_id)
    if pod is None or pod.status != "RUNNING":
        status = pod.status if pod else "gone"
        raise BizsentError(f"pod {handle.pod_id} is {status} while training (its agent: {why})")
