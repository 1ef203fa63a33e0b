"""The console's "score the pool" action, shared by the Spot-check and Label screens: start `bizsent score-pool`
as a detached job (it keeps running after the console quits) and say in one line what happened."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from bizsent.core.errors import BizsentError
from bizsent.core.store import open_db


def start_pool_scoring(app: Any) -> tuple[str, bool]:
    """(message, is_error). Runs in a worker thread, on a connection of its own: spawning takes a moment and
    must not hold up the console's writer thread."""
    from bizsent.jobs.pool import launch

    # Anything else that fails is reported by the calling `background` worker: one line, the trace in the log.
    try:
        with closing(open_db(app.db_path, create=False)) as db:
            job_id, pid, run_id = launch(db, app.db_path, app.config_path(), app.settings.data_dir / "logs")
    except BizsentError as exc:
        return str(exc), True
    return (f"scoring the pool with run {run_id} in the background (job {job_id}, pid {pid}); Spot-check shows "
            "its progress and the predictions as they land"), False
