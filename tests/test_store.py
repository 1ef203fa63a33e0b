import hashlib
import multiprocessing
import os
import sqlite3
import threading
from contextlib import closing

import pytest
from bizsent.core.errors import StoreError
from bizsent.core.store import APPLICATION_ID, open_db, schema_version, transaction
from bizsent.core.store.migrations import MIGRATIONS, SCHEMA_VERSION
from bizsent.core.store.posts import add_note, add_skip, delete_label, save_posts, set_label
from bizsent.core.store.records import ImageRef, NewLabel, NewPost

TABLES = {"posts", "images", "labels", "api_calls", "jobs", "pods", "runs", "metrics", "predictions", "notes", "skips"}


def post(no: int, text: str = "wagmi", html: str | None = None) -> NewPost:
    return NewPost(board="biz", thread_no=1, post_no=no, text=text, html=html or text,
                   image=ImageRef(url=f"https://i.example/biz/{no}.jpg"))


def test_empty_database_is_migrated_to_the_latest_schema_in_wal_mode(tmp_path):
    db = open_db(tmp_path / "a.db")
    assert schema_version(db) == SCHEMA_VERSION
    assert set(db.table_names()) >= TABLES
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_previous_version_database_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.execute("INSERT INTO posts (board, thread_no, post_no, text, scraped_at) VALUES ('biz', 1, 1, 'ngmi', 'x')")
    conn.execute("INSERT INTO labels (post_id, label, source, created_at) VALUES (1, 'bearish', 'human', 'x')")
    conn.commit()
    conn.close()
    db = open_db(path)
    assert schema_version(db) == SCHEMA_VERSION
    assert db.execute("SELECT label, unsure FROM labels").fetchall() == [("bearish", 0)]
    add_note(db, 1, "pink wojak")
    assert db.execute("SELECT text FROM notes WHERE post_id = 1").fetchone()[0] == "pink wojak"


def test_database_from_a_newer_bizsent_is_refused(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this bizsent"):
        open_db(path)


def test_garbage_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a bizsent database"):
        open_db(path)


def test_missing_database_without_create_says_what_to_run(tmp_path):
    with pytest.raises(StoreError, match="bizsent demo"):
        open_db(tmp_path / "none.db", create=False)


def test_save_posts_is_idempotent_and_detects_edits(db):
    first = save_posts(db, [post(1), post(2)])
    again = save_posts(db, [post(1), post(2, html="edited")])
    assert (first.new, again.new, again.updated, again.unchanged) == (2, 0, 1, 1)
    assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 2


def test_labels_upsert_per_source_and_labeler(db):
    save_posts(db, [post(1)])
    first = set_label(db, 1, NewLabel(label="bullish", source="human", split="test"))
    second = set_label(db, 1, NewLabel(label="bearish", source="human", split="test", sarcastic=True))
    set_label(db, 1, NewLabel(label="bullish", source="api", labeler="openai:gpt@v1", confidence=0.9))
    assert first == second
    rows = db.execute("SELECT source, label, sarcastic FROM labels ORDER BY source").fetchall()
    assert rows == [("api", "bullish", 0), ("human", "bearish", 1)]
    delete_label(db, first)
    assert db.execute("SELECT count(*) FROM labels WHERE source = 'human'").fetchone()[0] == 0
    add_skip(db, 1, "spam")
    assert db.execute("SELECT reason FROM skips").fetchone()[0] == "spam"


def test_a_second_writer_waits_for_the_first_instead_of_failing(settings):
    writer, other = open_db(settings.db_path), open_db(settings.db_path)
    save_posts(writer, [post(1)])
    released = threading.Event()

    def hold_lock():
        with transaction(writer):
            writer.execute("UPDATE posts SET text = 'held'")
            released.wait(0.3)

    thread = threading.Thread(target=hold_lock)
    thread.start()
    save_posts(other, [post(2)])  # blocks until the first transaction commits, then succeeds
    thread.join()
    assert other.execute("SELECT count(*) FROM posts").fetchone()[0] == 2
    assert other.execute("SELECT text FROM posts WHERE post_no = 1").fetchone()[0] == "held"


def _open_at_barrier(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        db = open_db(path)
        results.put(schema_version(db))
        db.close()
    except Exception as exc:  # reported to the parent, which asserts on it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_database_at_once_migrate_it_exactly_once(tmp_path):
    # fork: the children start in milliseconds, so all three race for the same empty file.
    mp = multiprocessing.get_context("fork")
    for trial in range(20):
        path = str(tmp_path / f"race{trial}.db")
        barrier, results = mp.Barrier(3), mp.Queue()
        procs = [mp.Process(target=_open_at_barrier, args=(path, barrier, results)) for _ in range(3)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(60)
        assert outcomes == [SCHEMA_VERSION] * 3, f"trial {trial}: {outcomes}"


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_untouched(path, digest: str) -> None:
    assert _digest(path) == digest
    assert not path.with_name(path.name + "-wal").exists() and not path.with_name(path.name + "-shm").exists()


def test_someone_elses_database_is_refused_and_left_byte_identical(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                       "CREATE TABLE orders (id INTEGER PRIMARY KEY); INSERT INTO customers VALUES (1, 'x');")
    conn.close()
    digest = _digest(path)
    with pytest.raises(StoreError, match=r"other.sqlite is not a bizsent database \(it has tables customers, "
                                         r"orders\); pass another file with --db"):
        open_db(path)
    _assert_untouched(path, digest)


def test_refused_newer_database_keeps_its_journal_mode(tmp_path):
    path = tmp_path / "newer.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + f"\nPRAGMA user_version = {SCHEMA_VERSION + 1};")
    conn.close()
    digest = _digest(path)
    with pytest.raises(StoreError, match="newer than this bizsent"):
        open_db(path)
    _assert_untouched(path, digest)
    with closing(sqlite3.connect(path)) as check:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_new_database_is_stamped_as_bizsents(tmp_path):
    db = open_db(tmp_path / "a.db")
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_unusable_locations_are_one_line_errors_naming_the_file(tmp_path):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")
    with pytest.raises(StoreError, match=f"data folder {not_a_folder} is a file"):
        open_db(not_a_folder / "bizsent.db")
    folder = tmp_path / "folder.db"
    folder.mkdir()
    with pytest.raises(StoreError, match=f"database {folder} is a folder"):
        open_db(folder)
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(os.urandom(8192))
    with pytest.raises(StoreError, match=f"{corrupt} is not a bizsent database .*restore it from a backup"):
        open_db(corrupt)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; the root-proof cases are above")
def test_read_only_database_and_folder_are_one_line_errors(tmp_path):
    path = tmp_path / "ro.db"
    open_db(path).close()
    path.chmod(0o444)
    with pytest.raises(StoreError, match="is read-only; make it writable"):
        open_db(path)
    path.chmod(0o644)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="data folder .* is read-only"):
            open_db(path)
    finally:
        tmp_path.chmod(0o755)


def test_a_reader_never_creates_a_database_where_one_vanished(tmp_path, monkeypatch):
    """The file can go between open_db's location check and its connect (a user moving it while the console
    polls): without `create`, the connect itself must not leave a new, empty database at the old path."""
    import bizsent.core.store

    # the file goes right after the location check
    monkeypatch.setattr(bizsent.core.store, "_check_location", lambda path, create: None)
    path = tmp_path / "moved-away.db"
    with pytest.raises(StoreError, match="does not exist"):
        open_db(path, create=False)
    assert not path.exists()


def test_a_fixed_clock_stamps_every_row_until_it_is_released(db):
    from datetime import UTC, datetime

    from bizsent.core.store import now, use_fixed_clock

    at = datetime(2025, 1, 15, 6, 0, tzinfo=UTC)
    save_posts(db, [NewPost(board="biz", thread_no=1, post_no=1, text="gm", time=1, source="live")])
    pid = db.execute("SELECT id FROM posts").fetchone()[0]
    use_fixed_clock(at)
    try:
        set_label(db, pid, NewLabel(label="bullish", source="human", split="train", labeler="human"))
        add_note(db, pid, "a note")
    finally:
        use_fixed_clock(None)
    stamps = db.execute("SELECT created_at FROM labels UNION ALL SELECT created_at FROM notes").fetchall()
    assert len(stamps) == 2 and {s[0] for s in stamps} == {"2025-01-15T06:00:00+00:00"}
    assert now() > "2026"  # the wall clock again
