"""The job kinds: every long-running piece of work is a row in `jobs` run by `bizsent <command> --job ID`.

A kind says which command runs (or resumes) one of its rows, whether a stopped row can be resumed, how to
cancel it, whether a 'running' row waits on a remote service instead of a local process, and how to name
what it does in one line. Adding a kind is one `register(Kind(...))`; launching, cancelling, resuming and
listing (jobs.control, jobs.views, `bizsent jobs`, the console's Jobs screen) then work for it unchanged.

A job's shown status is its stored state, except that a 'running' row whose process is dead by the one
liveness rule (core.store.liveness) shows 'dead', a launched row its child has not taken over yet shows
'starting', and a 'running' row waiting on a remote service shows 'waiting'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError
from bizsent.core.store.liveness import is_dead

Job = dict[str, Any]  # a row as jobs.rows.get returns it (params and counts unpacked)
ACTIVE = ("queued", "starting", "running", "waiting")  # a status that cancel can stop
RESUMABLE_FROM = ("dead", "queued", "failed")  # a status that resume can pick up


def _never(job: Job) -> bool:
    return False


def _always(job: Job) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    command: Callable[[int], list[str]]  # the `bizsent` arguments that run (or resume) job row ID
    describe: Callable[[Job], str]  # what the job does, in a few words, from its params
    resumable: Callable[[Job], bool] = _never  # can a stopped row continue where it stopped?
    # Cancel at a remote service first (None: the row's state flag alone, which the work checks between steps).
    cancel: Callable[[sqlite_utils.Database, Any, Job], str] | None = None
    waits_remotely: Callable[[Job], bool] = _never  # 'running' with no local process (a submitted batch)
    # The work cannot check the flag between steps: the heartbeat interrupts it when the row is cancelled.
    interrupt_on_cancel: bool = False
    # What a cancel does to a running job of this kind, from its params: the cancel confirmation says it.
    cancel_says: Callable[[dict[str, Any]], str] = lambda params: "it stops within seconds, at its next step"


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise BizsentError(f"unknown job kind {name!r}; known: {', '.join(sorted(KINDS))}") from None


def status(job: Job) -> str:
    """What a job is now: its stored state, or dead / starting / waiting (see the module docstring)."""
    kind = KINDS.get(job["kind"])
    if job["state"] == "running" and kind is not None and kind.waits_remotely(job):
        return "waiting"
    if is_dead(job["state"], job["heartbeat_at"], job["pid"], job.get("host")):
        return "dead"
    if job["state"] == "queued" and job["pid"]:
        return "starting"
    return job["state"]


# ---- the kinds of this checkout (a `pod` kind registers here the same way) ----

def _label_batch(job: Job) -> bool:
    return job["params"].get("mode") == "batch"


def _cancel_label(db: sqlite_utils.Database, settings: Any, job: Job) -> str:
    from bizsent.jobs import batches

    return batches.cancel(db, settings, job["id"])


def _run_of(job: Job) -> str:
    run = job["params"].get("run_id") or job["params"].get("run")
    return f"run {run}" if run is not None else "newest run"


register(Kind(
    "label", lambda i: ["label", "--job", str(i), "--yes"],
    lambda j: f"{j['params'].get('provider', '?')}/{j['params'].get('model', '?')} {j['params'].get('mode', 'live')}",
    resumable=lambda j: not _label_batch(j), cancel=_cancel_label, waits_remotely=_label_batch,
    cancel_says=lambda p: "its remote batches are cancelled at the provider" if p.get("mode") == "batch"
    else "it stops before its next request"))
register(Kind(
    "batch-collect", lambda i: ["batches", "collect", "--wait", "--job", str(i)],
    lambda j: f"collect label job {j['params']['label_job']}" if j["params"].get("label_job")
    else "collect every open batch", resumable=_always))
register(Kind("train", lambda i: ["train", "--local", "--job", str(i)],
              lambda j: f"{j['params'].get('name', '?')} ({j['params'].get('max_steps') or 'all'} steps)",
              resumable=_always))
register(Kind("eval", lambda i: ["eval", "--job", str(i)], _run_of, resumable=_always, interrupt_on_cancel=True))
register(Kind("score-pool", lambda i: ["score-pool", "--job", str(i)], _run_of, resumable=_always))


def _cancel_pod(db: sqlite_utils.Database, settings: Any, job: Job) -> str:
    from bizsent.jobs import pod_task

    return pod_task.cancel(db, settings, job)


register(Kind("pod", lambda i: ["train", "--pod", "--job", str(i), "--yes"],
              lambda j: f"{j['params'].get('name', '?')} on RunPod ({j['params'].get('max_steps') or 'all'} steps)",
              resumable=_always, cancel=_cancel_pod,
              cancel_says=lambda p: "its pod is terminated within seconds, in any phase (RunPod confirms it is gone),"
              " and its run ends cancelled; no adapter is collected"))


# The other pod work (jobs.pod_task): the same cancel, resume and money rules as the `pod` kind.
def _pod_kind(name: str, command: list[str], describe: Callable[[Job], str]) -> None:
    register(Kind(name, lambda i: [*command, "--pod", "--job", str(i), "--yes"], describe, resumable=_always,
                  cancel=_cancel_pod, cancel_says=lambda p: "its pod is terminated within seconds, in any phase"
                  " (RunPod confirms it is gone); nothing it scored so far is stored"))


_pod_kind("pod-eval", ["eval"], lambda j: f"{_run_of(j)} on its {j['params'].get('split', 'dev')} split on RunPod")
_pod_kind("pod-pool", ["score-pool"], lambda j: f"pool with {_run_of(j)} on RunPod")
_pod_kind("pod-selftrain", ["selftrain"], lambda j: f"{j['params'].get('rounds', '?')} self-training rounds on RunPod")
