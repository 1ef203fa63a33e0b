"""Migration 9: a version-7 database with API labels from each built-in provider keeps every label, id and
history row; API labels become source 'api' with the provider in the labeler name, and a new provider after it
needs no table change."""

from __future__ import annotations

import sqlite3

import pytest
from bizsent.core.label.agreement import agreement
from bizsent.core.labels import origin
from bizsent.core.store import open_db, schema_version
from bizsent.core.store.history import label_history
from bizsent.core.store.migrations import MIGRATIONS, SCHEMA_VERSION
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel

OLD = [  # (post, label, source, labeler, split, confidence)
    (1, "bearish", "human", "human", "test", None),
    (1, "bearish", "openai", "gpt-5-mini@p3", "test", 0.9),
    (1, "bullish", "gemini", "gemini-2.5-flash-lite@p3", "test", 0.7),
    (2, "neutral", "openai", "gpt-5-mini@p3", "unassigned", 0.8),
    (2, "neutral", "compatible", "qwen2.5vl:7b@p3", "unassigned", 0.6),
    (2, "bullish", "pseudo", "combined:majority", "unassigned", 0.5),
    (3, "bullish", "model", "run4", "unassigned", 0.99),
]


@pytest.fixture
def version_7(tmp_path):
    path = tmp_path / "v7.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:7]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 7")
    for no in (1, 2, 3):
        conn.execute("INSERT INTO posts (board, thread_no, post_no, text, scraped_at) VALUES ('biz', 1, ?, 't', 'x')",
                     [no])
    for post, label, source, labeler, split, confidence in OLD:
        conn.execute("INSERT INTO labels (post_id, label, source, labeler, split, confidence, created_at,"
                     " changed_by) VALUES (?, ?, ?, ?, ?, ?, '2025-01-01', 'me via bizsent label')",
                     [post, label, source, labeler, split, confidence])
    conn.execute("UPDATE labels SET label = 'bearish' WHERE source = 'openai' AND post_id = 2")  # a history row
    conn.commit()
    conn.close()
    return path


def test_api_labels_become_source_api_with_their_provider_in_the_labeler(version_7):
    before = sqlite3.connect(version_7).execute("SELECT id, post_id, label, split, confidence, created_at,"
                                                " changed_by FROM labels ORDER BY id").fetchall()
    db = open_db(version_7)
    assert schema_version(db) == SCHEMA_VERSION >= 9
    rows = db.execute("SELECT id, post_id, label, split, confidence, created_at, changed_by, source, labeler"
                      " FROM labels ORDER BY id").fetchall()
    assert [r[:7] for r in rows] == before  # same ids, labels, splits, confidences, stamps and writers
    assert [(r[7], r[8]) for r in rows] == [
        ("human", "human"), ("api", "openai:gpt-5-mini@p3"), ("api", "gemini:gemini-2.5-flash-lite@p3"),
        ("api", "openai:gpt-5-mini@p3"), ("api", "compatible:qwen2.5vl:7b@p3"), ("pseudo", "combined:majority"),
        ("model", "run4")]
    assert [origin(r[7], r[8]) for r in rows] == ["human", "openai", "gemini", "openai", "compatible", "pseudo",
                                                  "model"]
    # the history says the same about the same rows, and records nothing for the rebuild itself
    history = label_history(db, 2)
    assert [(c.source, c.labeler, c.change) for c in history] == [
        ("api", "openai:gpt-5-mini@p3", "insert"), ("api", "compatible:qwen2.5vl:7b@p3", "insert"),
        ("pseudo", "combined:majority", "insert"), ("api", "openai:gpt-5-mini@p3", "update")]
    assert (history[-1].old.label, history[-1].new.label) == ("neutral", "bearish")
    assert db.execute("SELECT count(*) FROM label_history").fetchone()[0] == len(OLD) + 1
    # agreement still tells the labelers apart by provider
    names = {(r["source"], r["labeler"]) for r in agreement(db).against_human}
    assert names == {("api", "openai:gpt-5-mini@p3"), ("api", "gemini:gemini-2.5-flash-lite@p3"),
                     ("api", "compatible:qwen2.5vl:7b@p3"), ("model", "run4")}


def test_the_rebuilt_table_keeps_its_rules_indexes_and_history_triggers(version_7):
    db = open_db(version_7)
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'labels'")}
    assert {"labels_post", "labels_source_split"} <= indexes
    triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                         " AND tbl_name = 'labels'")}
    assert triggers == {"label_history_insert", "label_history_update", "label_history_delete"}
    # a provider no migration ever heard of is just data
    label_id = set_label(db, 3, NewLabel(label="bearish", source="api", labeler="echo:echo-1@p3"))
    set_label(db, 3, NewLabel(label="neutral", source="api", labeler="echo:echo-1@p3"))
    assert [c.change for c in label_history(db, 3, "api")] == ["insert", "update"]
    assert db.execute("SELECT label FROM labels WHERE id = ?", [label_id]).fetchone()[0] == "neutral"
    with pytest.raises(sqlite3.IntegrityError):  # one label per post, source and labeler, as before
        db.execute("INSERT INTO labels (post_id, label, source, labeler, created_at) VALUES"
                   " (3, 'bullish', 'api', 'echo:echo-1@p3', 'x')")
    with pytest.raises(sqlite3.IntegrityError):  # the source is still checked; providers are not sources
        db.execute("INSERT INTO labels (post_id, label, source, labeler, created_at) VALUES"
                   " (3, 'bullish', 'openai', 'gpt@p3', 'x')")
    db.execute("DELETE FROM posts WHERE id = 3")  # and labels still go with their post
    assert db.execute("SELECT count(*) FROM labels WHERE post_id = 3").fetchone()[0] == 0
