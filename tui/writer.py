"""The console's one writer: a single thread with its own connection, so writes never block the event loop
and always land in the order the user made them (label, then undo of that label)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from core.store import open_db

T = TypeVar("T")


class StoreWriter:
    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path
        self._db: sqlite_utils.Database | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bizsent-writer")

    def _run(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        if self._db is None:
            self._db = open_db(self._db_path, create=False)
        return fn(self._db)

    def submit(self, fn: Callable[[sqlite_utils.Database], T]) -> Future[T]:
        """Run `fn(db)` on the writer thread after every write submitted before it."""
        return self._pool.submit(self._run, fn)

    async def drained(self) -> None:
        """Wait (without blocking the loop) until every write submitted so far is done."""
        await asyncio.wrap_future(self.submit(lambda db: None))

    def close(self) -> None:
        """Finish pending writes (nothing the user answered is lost on quit), then close the connection."""
        self._pool.submit(self._close).result()
        self._pool.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
