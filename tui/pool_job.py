"""The console's "score the pool" action, shared by the Spot-check and Label screens: start `bizsent score-pool`
as a detached job (it keeps running after the console quits) and say in one line what happened."""

from __future__ import annotations

import logging
from contextlib import closing
from typing import Any

from bizsent.core.errors import BizsentError
from bizsent.core.store import open_db

log = logging.getLogger("bizsent")


def start_pool_scoring(app: Any) -> tuple[str, bool]:
    """(message, is_error). Runs in a worker thread, on a connection of its own: spawning takes a moment and
    must not hold up the console's writer thread."""
    from bizsent.jobs.pool import launch

    source = app.settings.source
    config = source if source is not None and source.exists() else None
    try:
        with closing(open_db(app.db_path, create=False)) as db:
            job_id, pid, run_id = launch(db, app.db_path, config, app.settings.data_dir / "logs")
    except BizsentError as exc:
        return str(exc), True
    except Exception as exc:  # a failed spawn must not take the console down; the log keeps the trace
        log.exception("starting pool scoring failed")
        return f"could not start pool scoring: {type(exc).__name__}: {exc}", True
    return (f"scoring the pool with run {run_id} in the background (job {job_id}, pid {pid}); Spot-check shows "
            "its progress and the predictions as they land"), False
