"""The console's one writer: a single thread with its own connection, so writes never block the event loop
and always land in the order the user made them (label, then undo of that label).

The connection follows the path, not the file it first opened: a database moved or deleted under the console
makes writes fail (shown to the user) instead of landing in a file nobody will open again."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import sqlite_utils
from bizsent.core.store import open_db

T = TypeVar("T")


class StoreWriter:
    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path
        self._db: sqlite_utils.Database | None = None
        self._file: tuple[int, int] | None = None  # (device, inode) of the file the connection has open
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bizsent-writer")

    def _run(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        if self._db is not None and self._file != file_identity(self._db_path):
            self._close()  # moved, replaced or deleted since: reopen whatever is at the path now (or fail)
        if self._db is None:
            self._db = open_db(self._db_path, create=False)
            self._file = file_identity(self._db_path)
        return fn(self._db)

    def submit(self, fn: Callable[[sqlite_utils.Database], T]) -> Future[T]:
        """Run `fn(db)` on the writer thread after every write submitted before it."""
        return self._pool.submit(self._run, fn)

    async def drained(self) -> None:
        """Wait (without blocking the loop) until every write submitted so far is done."""
        await asyncio.wrap_future(self._pool.submit(lambda: None))  # not through _run: a missing file is no
        # reason for the wait itself to fail

    def close(self) -> None:
        """Finish pending writes (nothing the user answered is lost on quit), then close the connection."""
        self._pool.submit(self._close).result()
        self._pool.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino
