"""The store read-only, as a second pair of eyes beside a console a test drives: rows, waits on rows, and the
rules every human label obeys (one current human label per post)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import sqlite_utils


@contextmanager
def store(db_path: Path) -> Iterator[sqlite_utils.Database]:
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as con:
        yield sqlite_utils.Database(con)


def rows(db_path: Path, sql: str, *args: object) -> list[tuple]:
    with store(db_path) as db:
        return db.execute(sql, list(args)).fetchall()


def wait_rows(db_path: Path, sql: str, *args: object, until: Callable[[list[tuple]], bool],
              timeout: float = 60.0) -> list[tuple]:
    deadline = time.monotonic() + timeout
    found = rows(db_path, sql, *args)
    while not until(found):
        if time.monotonic() > deadline:
            raise AssertionError(f"the store never held what was expected for {sql} {args}: {found}")
        time.sleep(0.1)
        found = rows(db_path, sql, *args)
    return found


def human(db_path: Path, pid: int) -> list[tuple]:
    """The post's human labels: (label, split, sampling, labeler)."""
    return rows(db_path, "SELECT label, split, sampling, labeler FROM labels WHERE post_id = ? AND source = 'human'",
                pid)


def wait_human(db_path: Path, pid: int, until: Callable[[list[tuple]], bool]) -> list[tuple]:
    return wait_rows(db_path, "SELECT label, split, sampling, labeler FROM labels WHERE post_id = ? AND "
                     "source = 'human'", pid, until=until)


def one_human_label_per_post(db_path: Path) -> None:
    assert rows(db_path, "SELECT post_id FROM labels WHERE source = 'human' GROUP BY post_id HAVING count(*) > 1") == []
