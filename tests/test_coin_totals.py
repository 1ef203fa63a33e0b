"""Migration 14: the per-coin, per-hour totals the Trends screen reads stay equal to a count over the posts
themselves through every write that changes them (tagging, scoring, a changed label, a coin-list change, a
deleted run, a deleted post), and a version-13 store gets them filled from what it holds."""

from __future__ import annotations

import sqlite3

from bizsent.core.coins import build, catalog
from bizsent.core.coins.tags import tag_posts
from bizsent.core.config import CoinEntry
from bizsent.core.store import now as stamp
from bizsent.core.store import open_db
from bizsent.core.store.migrations import MIGRATIONS
from bizsent.core.store.posts import save_posts
from bizsent.core.store.records import NewPost

T0 = 1_800_000_000


def from_posts(db) -> tuple[list, list]:
    """The totals counted from posts, post_coins and predictions directly (what the triggers must keep)."""
    hours = db.execute("SELECT c.coin, p.time / 3600, count(*) FROM post_coins c JOIN posts p ON p.id = c.post_id"
                       " GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    scores = db.execute(
        "SELECT r.run_id, c.coin, p.time / 3600, count(*), sum(r.label = 'bullish'), sum(r.label = 'bearish')"
        " FROM post_coins c JOIN posts p ON p.id = c.post_id JOIN predictions r ON r.post_id = p.id"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
    return hours, scores


def kept(db) -> tuple[list, list]:
    hours = db.execute("SELECT coin, hour, posts FROM coin_hours WHERE posts > 0 ORDER BY 1, 2").fetchall()
    scores = db.execute("SELECT run_id, coin, hour, scored, bullish, bearish FROM coin_hour_scores"
                        " WHERE scored > 0 ORDER BY 1, 2, 3").fetchall()
    return hours, scores


def run(db, run_id: int) -> None:
    db.execute("INSERT INTO runs (id, kind, name, state, created_at) VALUES (?, 'endpoint', 'e', 'done', ?)",
               [run_id, stamp()])


def predict(db, run_id: int, post_no: int, label: str) -> None:
    db.execute("INSERT INTO predictions (run_id, post_id, label, probs, created_at) SELECT ?, id, ?, '{}', ?"
               " FROM posts WHERE post_no = ? ON CONFLICT (run_id, post_id) DO UPDATE SET label = excluded.label",
               [run_id, label, stamp(), post_no])


def test_totals_follow_every_write(db, settings) -> None:
    texts = ["link to 100", "sell your eth and link", "btc is dead", "nothing here", "$PEPE moon", "eth flippening"]
    save_posts(db, [NewPost("biz", 1, 10 + k, texts[k % len(texts)], time=T0 + 1_700 * k) for k in range(30)])
    run(db, 1)
    run(db, 2)
    for k in range(0, 30, 2):  # scored before the coins are read: tagging must bring the scores along
        predict(db, 1, 10 + k, "bullish" if k % 4 else "bearish")
    tag_posts(db, catalog(settings.coins))
    assert kept(db) == from_posts(db) and kept(db)[1]
    for k in range(1, 30, 3):  # scored after
        predict(db, 2, 10 + k, "bearish")
        predict(db, 1, 10 + k, "neutral")
    predict(db, 1, 10, "bullish")  # a rescored post changes label
    predict(db, 1, 14, "bullish")
    assert kept(db) == from_posts(db)
    changed = build([CoinEntry(symbol="LINK", name="Chainlink", tickers=["link"]),
                     CoinEntry(symbol="ETH", name="Ethereum", names=["flippening"])],
                    unlisted_cashtags=False)
    tag_posts(db, changed)  # a coin-list change: every post read again, its mentions replaced
    assert kept(db) == from_posts(db)
    db.execute("DELETE FROM runs WHERE id = 2")
    db.execute("DELETE FROM posts WHERE post_no IN (11, 12, 13)")
    assert kept(db) == from_posts(db)
    assert {coin for coin, _, _ in kept(db)[0]} == {"LINK", "ETH"}


def test_version_13_store_gets_its_totals(tmp_path, settings) -> None:
    path = tmp_path / "v13.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:13]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 13")
    for no, at in ((1, T0), (2, T0 + 10), (3, T0 + 7_200)):
        conn.execute("INSERT INTO posts (id, board, thread_no, post_no, time, text, scraped_at)"
                     " VALUES (?, 'biz', 1, ?, ?, 't', 'x')", [no, no, at])
        conn.execute("INSERT INTO post_coins (post_id, coin, how) VALUES (?, 'LINK', 'ticker')", [no])
    conn.execute("INSERT INTO runs (id, kind, name, state, created_at) VALUES (1, 'endpoint', 'e', 'done', 'x')")
    conn.execute("INSERT INTO predictions (run_id, post_id, label, probs, created_at) VALUES (1, 1, 'bullish', '{}',"
                 " 'x'), (1, 3, 'bearish', '{}', 'x')")
    conn.commit()
    conn.close()
    db = open_db(path)
    hour = T0 // 3600
    assert kept(db) == ([("LINK", hour, 2), ("LINK", hour + 2, 1)],
                        [(1, "LINK", hour, 1, 1, 0), (1, "LINK", hour + 2, 1, 0, 1)])
