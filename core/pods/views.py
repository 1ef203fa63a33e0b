"""What the console's Pods screen and `bizsent pods tail` read: every pod with its GPU, state, uptime, price, cost
so far and orphan flag, and the recent log lines of a run's pod (kept in data/runs/<run>/pod.log by the process
that watches the run). The screen draws these; the rules stay here and in core.pods.orphans.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.pods import records
from bizsent.core.pods.api import RunpodClient
from bizsent.core.pods.api import client as api_client
from bizsent.core.pods.orphans import survey

LOG_NAME = "pod.log"


@dataclass(frozen=True, slots=True)
class PodView:
    pod_id: str
    name: str
    run_name: str | None
    gpu: str | None
    state: str  # RunPod's status when asked (RUNNING, EXITED, ...), else the database's (running, terminated, ...)
    uptime_s: int | None
    usd_per_hour: float
    usd_so_far: float
    orphan: bool
    note: str  # why it is (or is not) an orphan, or what the database says of a finished pod
    job_id: int | None


def run_log_path(settings: Settings, run_name: str) -> Path:
    """Where the container and system log of a run's pod is kept on this machine."""
    return settings.data_dir / "runs" / run_name / LOG_NAME


def recent_log(settings: Settings, run_name: str, lines: int = 50) -> list[str]:
    """The last `lines` log lines of the run's pod (empty before any arrived)."""
    path = run_log_path(settings, run_name)
    if not path.exists():
        return []
    with path.open(encoding="utf-8", errors="replace") as fh:
        return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]


def live_pods(db: sqlite_utils.Database, settings: Settings, client: RunpodClient | None = None) -> list[PodView]:
    """Every pod of the RunPod account (one API call), orphans flagged; refreshes the live rows' state and cost.
    Without `client`, one is opened with RUNPOD_API_KEY (one BizsentError line when it is unset)."""
    if client is None:
        with api_client(settings) as own:
            return live_pods(db, settings, own)
    out = []
    for a in survey(db, client, settings):
        row = a.row
        out.append(PodView(a.pod.id, a.pod.name, row.run_name if row else None, a.pod.gpu, a.pod.status,
                           a.pod.uptime_s, a.pod.usd_per_hour, a.usd_so_far, a.orphan, a.why,
                           row.job_id if row else None))
    return out


def stored_pods(db: sqlite_utils.Database, limit: int = 50) -> list[PodView]:
    """The pods bizsent started, newest first, as the database last saw them (no API call: cheap to redraw)."""
    rows = db.query("SELECT * FROM pods WHERE pod_id IS NOT NULL ORDER BY id DESC LIMIT ?", [limit])
    out = []
    for r in rows:
        row = records.PodRow.from_row(r)
        assert row.pod_id is not None
        out.append(PodView(row.pod_id, row.name, row.run_name, row.gpu, row.state, None,
                           (row.usd_per_hour or 0.0) if row.state in records.LIVE else 0.0, row.total_usd, False,
                           r.get("error") or row.state, row.job_id))
    return out
