"""The jobs' vocabulary: states, what a `Kind` is, the registry of kinds, and a job's shown status.

Every long-running piece of work is a row in `jobs` run by `bizsent <command> --job ID`. A kind says which
command runs (or resumes) one of its rows, whether a stopped row can be resumed, how to cancel it, whether a
'running' row waits on a remote service instead of a local process, and how to name what it does in one line.
The kinds themselves are registered in jobs.kinds, which the jobs package loads first; the job modules import
this module, never jobs.kinds, so the arrows point one way (kinds -> job modules -> states).

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
    # What a finished (done) job of this kind offers next, from its params, in one line ('' for nothing).
    done_says: Callable[[dict[str, Any]], str] = lambda params: ""
    # What a job of this kind counts, shown alone ("8 rounds") when it has no total (a loop without end).
    unit: str = ""


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
