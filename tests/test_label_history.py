"""Every write to a label keeps what it replaced (migration 5's triggers), with when and who, whatever wrote it."""

from __future__ import annotations

import re
import sqlite3

from bizsent.core.store import open_db
from bizsent.core.store.history import actor, label_history
from bizsent.core.store.migrations import MIGRATIONS
from bizsent.core.store.posts import delete_label, save_posts, set_label
from bizsent.core.store.records import ImageRef, NewLabel, NewPost

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


def one_post(db) -> int:
    save_posts(db, [NewPost(board="biz", thread_no=1, post_no=1, text="wagmi", html="wagmi",
                            image=ImageRef(url="https://i.example/biz/1.jpg"))])
    return db.execute("SELECT id FROM posts").fetchone()[0]


def human(label: str, split: str = "test") -> NewLabel:
    return NewLabel(label=label, source="human", split=split, labeler="human")


def test_changing_a_human_label_leaves_old_value_new_value_time_and_who(tmp_path):
    db = open_db(tmp_path / "a.db")
    pid = one_post(db)
    set_label(db, pid, human("neutral"), changed_by="alice via bizsent import")
    label_id = set_label(db, pid, human("bullish"), changed_by="bob via console Spot-check")
    set_label(db, pid, human("bullish"), changed_by="bob via console Spot-check")  # same answer: nothing new
    db.execute("UPDATE labels SET split = 'train' WHERE id = ?", [label_id])  # by hand, outside bizsent
    delete_label(db, label_id, changed_by="carol via console Label screen")

    history = label_history(db, pid)
    assert [c.change for c in history] == ["insert", "update", "update", "delete"]
    insert, relabel, by_hand, delete = history
    assert (insert.old, insert.new.label, insert.changed_by) == (None, "neutral", "alice via bizsent import")
    assert (relabel.old.label, relabel.old.split, relabel.new.label) == ("neutral", "test", "bullish")
    assert relabel.changed_by == "bob via console Spot-check"
    assert (by_hand.old.split, by_hand.new.split) == ("test", "train")
    assert (delete.old.label, delete.new, delete.changed_by) == ("bullish", None, "carol via console Label screen")
    assert all(ISO.match(c.changed_at) for c in history)
    assert {c.label_id for c in history} == {label_id}  # the history outlives the deleted row


def test_default_writer_is_the_user_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["/usr/bin/bizsent", "--db", "x.db", "import", "old.sqlite"])
    monkeypatch.setenv("USER", "dave")
    monkeypatch.setenv("LOGNAME", "dave")
    assert actor() == "dave via bizsent import"
    assert actor("console Label screen") == "dave via console Label screen"
    db = open_db(tmp_path / "a.db")
    pid = one_post(db)
    set_label(db, pid, human("bearish"))
    assert label_history(db, pid)[0].changed_by == "dave via bizsent import"


def test_labels_from_before_the_history_migrate_and_their_changes_are_kept(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("\n".join(MIGRATIONS[:3]) + "\nPRAGMA user_version = 3;")
    conn.execute("INSERT INTO posts (board, thread_no, post_no, text, scraped_at) VALUES ('biz', 1, 1, 'ngmi', 'x')")
    conn.execute("INSERT INTO labels (post_id, label, source, labeler, split, created_at)"
                 " VALUES (1, 'bearish', 'human', 'human', 'test', 'x')")
    conn.commit()
    conn.close()
    db = open_db(path)
    set_label(db, 1, human("bullish"), changed_by="erin via console Label screen")
    [change] = label_history(db, 1)
    assert (change.old.label, change.new.label, change.changed_by) == (
        "bearish", "bullish", "erin via console Label screen")
