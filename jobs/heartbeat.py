"""Running a job row in this process: take it over, beat its heartbeat from a thread, write how it ended.

The heartbeat thread has its own database connection and beats every liveness.HEARTBEAT_S seconds whatever
the work is doing (a long training step, a request waiting on a slow server), so readers anywhere see the job
alive while it runs and dead within liveness.DEAD_AFTER_S of a kill. It also notices a cancel (the row's
state turned 'cancelled') and tells the work: kinds that check between steps read `Beat.cancelled`; kinds
that cannot stop in between ask for the main thread to be interrupted instead. A beat refused because another
process took the job over (jobs.rows fencing) sets `Beat.lost`, and `cancelled` with it, so the work stops
the same way; the row is then the new owner's, and this process writes nothing more as its owner.
"""

from __future__ import annotations

import _thread
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager

import sqlite_utils
from bizsent.core.errors import BizsentError, Cancelled
from bizsent.core.store import DatabaseReplaced, db_path, open_db
from bizsent.core.store.liveness import HEARTBEAT_S
from bizsent.jobs import rows

log = logging.getLogger(__name__)


class Beat:
    """A job's heartbeat thread (a context manager). `cancelled` is set once the row says 'cancelled', `lost`
    (and `cancelled`) once the row's epoch is no longer `epoch` (another process took the job over)."""

    def __init__(self, db: sqlite_utils.Database, job_id: int, *, interrupt_on_cancel: bool = False,
                 interval_s: float = HEARTBEAT_S, epoch: int | None = None) -> None:
        self.job_id = job_id
        self.epoch = epoch
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._path = db_path(db)
        self._shared = db if self._path == ":memory:" else None  # no second connection to a memory database
        self._interrupt = interrupt_on_cancel
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-job-{job_id}", daemon=True)

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        if self._shared is not None:
            self._loop(self._shared)
            return
        with closing(open_db(self._path, create=False)) as db:
            self._loop(db)

    def _loop(self, db: sqlite_utils.Database) -> None:
        while not self._stop.wait(self._interval):
            try:
                state = rows.beat(db, self.job_id, self.epoch)
            except sqlite3.Error as exc:  # a locked or busy moment: the next beat tries again, well before death
                log.warning("heartbeat of job %s failed: %s", self.job_id, exc)
                continue
            if state is None and self.epoch is not None and not self.lost.is_set():
                self.lost.set()
                log.warning("job %s was taken over by another process; stopping", self.job_id)
            if (state == "cancelled" or self.lost.is_set()) and not self.cancelled.is_set():
                self.cancelled.set()
                if self._interrupt:
                    _thread.interrupt_main()


@contextmanager
def running(db: sqlite_utils.Database, job_id: int, total: int = 0, *,
            interrupt_on_cancel: bool = False) -> Iterator[Beat]:
    """Run job row `job_id` here: take it over (refused while another live process runs it), beat its heartbeat,
    and write how it ended. The work may finish the row itself; if it does not, leaving the block is 'done'.
    A cancel ends the row 'cancelled' (and raises Cancelled), Ctrl-C puts it back to 'queued' for a resume,
    anything else ends it 'failed' with the reason. Every write is fenced by the epoch taken here: a process
    whose job was taken over ends with Superseded (one line) and leaves the row alone."""
    epoch = rows.take_over(db, job_id, total)
    try:
        with Beat(db, job_id, interrupt_on_cancel=interrupt_on_cancel, epoch=epoch) as beat:
            yield beat
    except Cancelled:
        rows.finish(db, job_id, "cancelled", "cancelled by the user", epoch)
        raise
    except KeyboardInterrupt:
        if _state(db, job_id) == "cancelled":  # the heartbeat interrupted the work for a cancel
            rows.finish(db, job_id, "cancelled", "cancelled by the user", epoch)
            raise Cancelled(f"job {job_id} cancelled") from None
        rows.requeue(db, job_id, f"interrupted (Ctrl-C); resume with `bizsent jobs resume {job_id}`", epoch)
        raise
    except (rows.Superseded, DatabaseReplaced):
        raise  # the row is another process's now, or the file is not the one this process opened
    except BizsentError as exc:
        rows.finish(db, job_id, "failed", str(exc), epoch)
        raise
    except BaseException as exc:
        rows.finish(db, job_id, "failed", f"{type(exc).__name__}: {exc}"[:300], epoch)
        raise
    if _state(db, job_id) == "running":
        rows.finish(db, job_id, "done", None, epoch)


def _state(db: sqlite_utils.Database, job_id: int) -> str | None:
    row = db.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()
    return row[0] if row else None


def progress_until_cancelled(db: sqlite_utils.Database, job_id: int, beat: Beat) -> Callable[[int, int], bool]:
    """A `(done, total)` callback that writes the job's progress under its epoch and says whether to go on: not
    once the row is cancelled or this process lost it."""

    def go_on(done: int, total: int) -> bool:
        state = rows.progress(db, job_id, done=done, failed=0, total=total, counts={}, epoch=beat.epoch)
        return state != "cancelled" and not beat.cancelled.is_set()

    return go_on
