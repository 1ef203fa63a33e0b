"""The SQLite store: the single source of truth that jobs write and the console reads.

Opened through sqlite-utils in WAL mode with a busy timeout, so one writer and many readers
(the console, CLI calls, detached jobs) share it safely. Functions, not an ORM.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from core.errors import StoreError
from core.migrations import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 10_000


def now() -> str:
    """UTC timestamp as stored everywhere (ISO 8601, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending migrations in one transaction each; return the resulting version."""
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database {db_path(db)} has schema version {version}, newer than this bizsent "
            f"({SCHEMA_VERSION}); upgrade bizsent to open it"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[target - 1]
        db.conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {target};\nCOMMIT;")
    return schema_version(db)


def db_path(db: sqlite_utils.Database) -> str:
    row = db.execute("PRAGMA database_list").fetchone()
    return row[2] or ":memory:"


def open_db(path: Path | str, *, create: bool = True) -> sqlite_utils.Database:
    """Open (and migrate) the database at `path`. Raises StoreError with a one-line message on failure."""
    path = Path(path)
    if not create and not path.exists():
        raise StoreError(f"database {path} does not exist; run `bizsent init` or `bizsent demo` first")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                               isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        db = sqlite_utils.Database(conn)
        migrate(db)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreError(
                f"database {path} is locked by another process; wait for it to finish and retry"
            ) from None
        raise StoreError(f"cannot open database {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a bizsent database ({exc}); pass another file with --db") from None
    return db


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A write transaction taken up front (BEGIN IMMEDIATE), so concurrent writers wait instead of failing."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    else:
        db.execute("COMMIT")
