"""Reading the words on images (OCR) as a job: `bizsent read-images --job ID` reads every fetched image not read
yet, oldest first, one commit per image, so a cancel, a crash or a quit loses at most the image in hand and a
rerun (or `bizsent jobs resume ID`) goes on with the rest. Images that arrive while it runs are read too: it
asks the store again until none is left.

`ensure_reading` starts one in the background when images wait and none runs: the console calls it at start
and the demo and scrape commands after they fetch images, so text appears as images arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.collect.ocr import engine_name, missing, read_text
from bizsent.core.errors import BizsentError, Cancelled
from bizsent.core.store.image_text import save_image_text, unread_images
from bizsent.jobs import rows
from bizsent.jobs.states import status

KIND = "read-images"
BATCH = 20  # images asked for at a time: new arrivals are picked up between batches


@dataclass
class ReadReport:
    read: int = 0
    with_text: int = 0

    def summary(self) -> str:
        return f"read {self.read} image(s), {self.with_text} with text on them"


def running_job(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """The read-images job whose process is alive, if any (one at a time: two would read the same images)."""
    for job in reversed(rows.listing(db, KIND)):
        if status(job) in ("starting", "running"):
            return job
    return None


def read_all(db: sqlite_utils.Database, keep_going=lambda done, total: True, limit: int | None = None) -> ReadReport:
    """Read every unread image (at most `limit`); `keep_going(done, total)` is asked after each image."""
    reason = missing()
    if reason:
        raise BizsentError(reason)
    engine, report = engine_name(), ReadReport()
    while limit is None or report.read < limit:
        batch = unread_images(db, engine, BATCH if limit is None else min(BATCH, limit - report.read))
        if not batch:
            break
        for image_id, path in batch:
            text = read_text(path) if Path(path).exists() else ""
            save_image_text(db, image_id, text, engine)
            report.read += 1
            report.with_text += bool(text)
            if not keep_going(report.read, report.read + len(unread_images(db, engine))):
                raise Cancelled(f"stopped after {report.summary()}")
    return report


def run_job(db: sqlite_utils.Database, job_id: int) -> ReadReport:
    from bizsent.jobs.heartbeat import progress_until_cancelled, running

    job = rows.of_kind(db, job_id, KIND)
    with running(db, job_id) as beat:
        return read_all(db, progress_until_cancelled(db, job_id, beat), job["params"].get("limit"))


def ensure_reading(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None,
                   log_dir: Path | str) -> str | None:
    """Start a read-images job in the background if images wait, OCR is installed and none runs: one line
    saying what was started, else None."""
    if missing() or running_job(db) is not None or not unread_images(db, engine_name(), 1):
        return None
    from bizsent.jobs.control import launch

    job_id, pid = launch(db, db_path, config_path, KIND, {}, log_dir)
    return f"reading the text on new images in the background (job {job_id}, pid {pid})"
