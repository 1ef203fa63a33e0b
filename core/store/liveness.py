"""The one rule for whether a job's process is alive: its row's heartbeat.

Every job writes `jobs.heartbeat_at` every HEARTBEAT_S seconds from a thread of its own (jobs.heartbeat), so a
reader on any machine knows a 'running' job is dead once its heartbeat is older than DEAD_AFTER_S. On the
machine the job runs on (`jobs.host`), a vanished pid says the same at once: a faster hint, never the only
one (a pid means nothing on another machine, and a reused pid must not keep a dead job alive). The console,
`bizsent jobs`, resuming and the cost ledger's claims (core.label.ledger) all ask this module.

A heartbeat can be late without its process being gone: its write waits behind another writer's transaction
(a long import, a demo seed). So on the job's own machine a stale heartbeat whose process still runs (not
stopped: a Ctrl-Z'd or SIGSTOP'd process is as good as dead until it continues, and jobs.rows fences it off if
it does) counts as blocked, not dead, for up to BLOCKED_GRACE_S: longer than any heartbeat write can wait
(core.store.BUSY_TIMEOUT_MS) plus the usual window.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

HEARTBEAT_S = 2.0
DEAD_AFTER_S = 5 * HEARTBEAT_S  # five beats missed: a busy database or a slow step never looks like a death
# A launched job's row is 'queued' with the child's pid until the child takes it over (after its imports):
# it counts as starting, and as dead only once its pid is gone here or nothing has beaten for this long.
START_GRACE_S = 120.0
BLOCKED_GRACE_S = 30.0 + DEAD_AFTER_S + 20.0  # the busy timeout, the usual window, and a margin
HOST = socket.gethostname()


def age_s(stamp: str | None) -> float:
    """Seconds since a stored timestamp (infinite when there is none)."""
    if not stamp:
        return float("inf")
    return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()


def pid_alive(pid: int | None) -> bool:
    """True while the process runs on THIS machine; an exited child nobody reaped yet (a zombie) counts as dead."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we can know
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_running(pid: int | None) -> bool:
    """Alive on this machine and not stopped (Ctrl-Z, SIGSTOP): a process that could be beating right now."""
    if not pid_alive(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("T", "t")


def local(host: str | None) -> bool:
    """Does a row's pid belong to this machine? Rows from before hosts were recorded were all local."""
    return host is None or host == HOST


def is_dead(state: str, heartbeat_at: str | None, pid: int | None, host: str | None) -> bool:
    """Is the process behind a job row gone? Only 'running' rows (and launched 'queued' rows, which carry the
    child's pid) have a process; every other row is settled or waiting and is never dead."""
    if state == "running":
        limit = DEAD_AFTER_S
    elif state == "queued" and pid:
        limit = START_GRACE_S
    else:
        return False
    age = age_s(heartbeat_at)
    if age <= limit:
        return bool(pid) and local(host) and not pid_alive(pid)
    # Stale: dead, unless its process runs here and the beat may only be waiting for the write lock.
    blocked = state == "running" and bool(pid) and local(host) and age <= BLOCKED_GRACE_S and pid_running(pid)
    return not blocked
