import sqlite3
import threading

import pytest

from core.errors import StoreError
from core.migrations import MIGRATIONS, SCHEMA_VERSION
from core.posts import add_note, add_skip, delete_label, save_posts, set_label
from core.records import ImageRef, NewLabel, NewPost
from core.store import open_db, schema_version, transaction

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
    set_label(db, 1, NewLabel(label="bullish", source="openai", labeler="gpt@v1", confidence=0.9))
    assert first == second
    rows = db.execute("SELECT source, label, sarcastic FROM labels ORDER BY source").fetchall()
    assert rows == [("human", "bearish", 1), ("openai", "bullish", 0)]
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
