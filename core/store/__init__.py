"""The SQLite store (floor 3): the single source of truth that jobs write and the console reads. May import
floors 0-2 (errors, labels, config) only.

Opened through sqlite-utils in WAL mode with a busy timeout, so one writer and many readers
(the console, CLI calls, detached jobs) share it safely. Functions, not an ORM.

Opening never changes a file it then refuses: the file is inspected first (read only), and only an empty file
or one of bizsent's own is switched to WAL and migrated. Migrations run under the write lock, so several
processes opening a new database at once apply them exactly once.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import sqlite_utils
from bizsent.core.errors import StoreError
from bizsent.core.store.migrations import MIGRATIONS, SCHEMA_VERSION

# Every writer keeps its transactions to a fraction of a second (slow work happens before BEGIN), so a writer
# that waits this long is behind something wrong; jobs wait it out rather than die at the first busy moment.
BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")
# Rows a bulk writer (import, demo seed) writes per transaction (chunks): a fraction of a second of write lock,
# so a job's heartbeat and claims never wait long behind it (bench/faults.py measures the longest wait). Between
# chunks the bulk writer pauses a little longer than SQLite's busy handler sleeps between its tries (at most
# 100 ms): SQLite does not queue waiting writers, and a writer that took the lock again at once would starve a
# waiting heartbeat for the whole import.
WRITE_CHUNK = 1000
WRITE_PAUSE_S = 0.11
APPLICATION_ID = 0x62697A73  # "bizs" in PRAGMA application_id: this file is bizsent's
# Tables every bizsent schema has had since version 1: how a database made before APPLICATION_ID is recognised.
CORE_TABLES = {"posts", "images", "labels", "jobs"}


_fixed_now: datetime | None = None  # set by use_fixed_clock


def now() -> str:
    """UTC timestamp as stored everywhere (ISO 8601, seconds)."""
    return (_fixed_now or datetime.now(UTC)).isoformat(timespec="seconds")


def use_fixed_clock(at: datetime | None) -> None:
    """Stamp the rows this process writes with `at` (None: the wall clock again); the label history keeps SQLite's
    own clock (its triggers stamp it). For screenshots that must read the same any day (tests/test_tui_snapshots.py):
    the times a screen shows come from the rows it reads."""
    global _fixed_now
    _fixed_now = at


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def _header(conn: sqlite3.Connection) -> tuple[int, int, list[str]]:
    """(user_version, application_id, table names), read in ONE statement so they come from one snapshot:
    separate reads could see a version from before another process's migration and tables from after it."""
    version, app_id, names = conn.execute(
        "SELECT (SELECT user_version FROM pragma_user_version), (SELECT application_id FROM pragma_application_id),"
        " (SELECT group_concat(name, char(9)) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%')"
    ).fetchone()
    return version, app_id, sorted(names.split("\t")) if names else []


def check_ours(conn: sqlite3.Connection, path: Path | str) -> int:
    """The file's schema version if it is empty or bizsent's and not newer; else StoreError. Reads only."""
    version, app_id, tables = _header(conn)
    ours = app_id == APPLICATION_ID or (app_id == 0 and (not tables or set(tables) >= CORE_TABLES))
    if not ours or (tables and version == 0):
        listed = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
        what = f"it has tables {listed}" if tables else f"its application id is {app_id:#x}"
        raise StoreError(f"{path} is not a bizsent database ({what}); pass another file with --db")
    if version > SCHEMA_VERSION:
        raise StoreError(f"database {path} has schema version {version}, newer than this bizsent "
                         f"({SCHEMA_VERSION}); upgrade bizsent to open it")
    return version


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script, one by one (executescript would commit the open transaction)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending migrations in one transaction under the write lock; return the resulting version.

    The version is read again after BEGIN IMMEDIATE: another process may have migrated while we waited.
    """
    path = db_path(db)
    if check_ours(db.conn, path) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    with transaction(db):
        version = check_ours(db.conn, path)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[target - 1]):
                db.conn.execute(statement)
        db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    return schema_version(db)


def db_path(db: sqlite_utils.Database) -> str:
    row = db.execute("PRAGMA database_list").fetchone()
    return row[2] or ":memory:"


def _missing(path: Path) -> StoreError:
    return StoreError(f"database {path} does not exist; run `bizsent init` or `bizsent demo` first")


def _check_location(path: Path, create: bool) -> None:
    """One-line refusals for a path that cannot hold the database, before SQLite gives a vaguer error."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"data folder {folder} is a file, not a folder; move it away or choose another data "
                         "folder (--db PATH or data.dir in config.toml)")
    if path.is_dir():
        raise StoreError(f"database {path} is a folder, not a file; pass a database file with --db")
    if not create and not path.exists():
        raise _missing(path)
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreError(f"database {path} is read-only; make it writable (chmod u+w {path}) or copy it "
                         "somewhere writable and pass that with --db")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the data folder {folder} ({exc.strerror}); make its parent writable or "
                         "choose another data folder (--db PATH or data.dir in config.toml)") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"data folder {folder} is read-only (the database needs to write its journal there); "
                         f"make it writable (chmod u+w {folder}) or choose another data folder with --db")


def open_db(path: Path | str, *, create: bool = True) -> sqlite_utils.Database:
    """Open (and migrate) the database at `path`. Raises StoreError with a one-line message on failure."""
    path = Path(path)
    _check_location(path, create)
    conn = None
    # Without create, open read-write but never create: the file can go between the check above and the connect
    # (a user moving it while the console polls), and a plain connect would leave a new, empty database there.
    target, uri = (str(path), False) if create else (path.resolve().as_uri() + "?mode=rw", True)
    try:
        conn = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                               isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        check_ours(conn, path)  # before the first PRAGMA that writes: a refused file stays as it was
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        db = sqlite_utils.Database(conn)
        migrate(db)
        _remember_identity(db, path)
    except StoreError:
        _close(conn)
        raise
    except sqlite3.DatabaseError as exc:
        _close(conn)
        if not create and not path.exists():
            raise _missing(path) from None
        raise store_error(exc, path) from None
    return db


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. The switch needs an exclusive lock, and SQLite answers "locked" at once, without the busy
    handler, while another process is opening the same new file: so wait here, as the busy timeout would."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _close(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        conn.close()


def disk_full(path: Path | str) -> StoreError:
    """The one line for a full disk under `path` (a file or folder): where, and how much is free."""
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:,.1f} MB free"
    except OSError:
        free = "free space unknown"
    return StoreError(f"the disk holding {folder} is full ({free}); free some space and run the command again"
                      " (what was being written was rolled back, nothing is half-written)")


def is_disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)) or (
        isinstance(exc, OSError) and exc.errno == errno.ENOSPC)


def usage_error(exc: sqlite3.DatabaseError, path: Path | str) -> StoreError | None:
    """The one line for an SQLite failure the user can fix (busy, read-only, damaged file, full disk); None for a
    bug."""
    if is_disk_full(exc):
        return disk_full(path)
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(f"database {path} stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s; "
                          "wait for it to finish and retry")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"database {path} cannot be written ({text}); make it and its folder writable")
    if "malformed" in text:
        return StoreError(f"database {path} is damaged ({text}); restore it from a backup or pass another file "
                          "with --db")
    return None


def store_error(exc: sqlite3.DatabaseError, path: Path | str) -> StoreError:
    """The one line a user sees for an SQLite failure while opening the database at `path`."""
    text = str(exc)
    known = usage_error(exc, path)
    if known is not None:
        return known
    if isinstance(exc, sqlite3.OperationalError):
        return StoreError(f"cannot open database {path} ({text}); check that the file and its folder are "
                          "readable and writable")
    return StoreError(f"{path} is not a bizsent database ({text}: damaged or not SQLite); restore it from a "
                      "backup or pass another file with --db")


# The file a connection opened: (path, device, inode). A database moved away and replaced at its path (a user
# restoring a backup, a sync tool) while a job runs would take the job's writes into the wrong file and lose
# them from the real one; every write transaction first checks that the path still holds the file it opened.
# Only by stat: opening the database file a second time in this process and closing it would cancel SQLite's
# POSIX locks on it ("How To Corrupt An SQLite Database File", 2.2), and the header's application_id was
# checked when the file was opened (check_ours): a file at the path with the same device and inode is that file.
_IDENTITY = "_bizsent_identity"  # the attribute of the sqlite_utils.Database that holds it


def _remember_identity(db: sqlite_utils.Database, path: Path) -> None:
    try:
        stat = path.stat()
    except OSError:  # no file behind it (":memory:"): nothing can replace it
        return
    setattr(db, _IDENTITY, (path.absolute(), stat.st_dev, stat.st_ino))


class DatabaseReplaced(StoreError):
    """The file at the database's path is not the one this process opened: write nothing more."""


def check_identity(db: sqlite_utils.Database) -> None:
    """DatabaseReplaced (one line) unless the file at the database's path is the one this connection opened
    (same device and inode)."""
    known = getattr(db, _IDENTITY, None)
    if known is None:  # opened elsewhere (a test's memory database)
        return
    path, dev, ino = known
    try:
        stat = path.stat()
    except OSError:
        stat = None
    if stat is None or (stat.st_dev, stat.st_ino) != (dev, ino):
        raise DatabaseReplaced(f"database {path} was moved or replaced while this process was using it; stopped"
                               " before writing into the wrong file. Put the database back (or open the one now"
                               " there), then `bizsent recover` restores answers paid for but not stored")


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """`items` in WRITE_CHUNK pieces, for one write transaction each, pausing between them (WRITE_PAUSE_S) so
    every writer waiting for the lock gets it in between."""
    for start in range(0, len(items), WRITE_CHUNK):
        if start:
            time.sleep(WRITE_PAUSE_S)
        yield items[start:start + WRITE_CHUNK]


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A write transaction taken up front (BEGIN IMMEDIATE), so concurrent writers wait instead of failing.
    Refused (StoreError) when the file at the database's path is no longer the one opened (check_identity).

    Keep it short: no network, image decoding or file writing inside; every other writer waits for it.
    """
    check_identity(db)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        # SQLite has already rolled back after some errors (a full disk, an I/O error): a second ROLLBACK would
        # replace the real error with "cannot rollback - no transaction is active".
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    else:
        db.execute("COMMIT")
