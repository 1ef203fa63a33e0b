"""Coin mentions in the store: read the posts not yet read with the current list and rules, write post_coins."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils
from bizsent.core.coins import Catalog
from bizsent.core.coins.extract import mentions
from bizsent.core.store import transaction

BATCH = 2000  # posts per write transaction: short enough that other writers barely wait


@dataclass(slots=True)
class TagReport:
    posts: int = 0
    mentions: int = 0

    def summary(self) -> str:
        return f"coins: {self.posts} posts read, {self.mentions} coin mentions stored"


def tag_posts(db: sqlite_utils.Database, catalog: Catalog) -> TagReport:
    """Extract coin mentions for every post not read with `catalog.version` (new posts, or all after a change)."""
    report = TagReport()
    while True:
        rows = db.execute(
            "SELECT p.id, p.subject, p.text FROM posts p LEFT JOIN coin_scans c ON c.post_id = p.id"
            " WHERE c.version IS NULL OR c.version != ? ORDER BY p.id LIMIT ?", [catalog.version, BATCH]).fetchall()
        if not rows:
            return report
        found = [(pid, m) for pid, subject, text in rows for m in mentions(f"{subject}\n{text}", catalog)]
        with transaction(db):
            ids = [(pid,) for pid, _, _ in rows]
            db.conn.executemany("DELETE FROM post_coins WHERE post_id = ?", ids)
            db.conn.executemany("INSERT INTO post_coins (post_id, coin, how) VALUES (?, ?, ?)",
                                [(pid, m.coin, m.how) for pid, m in found])
            db.conn.executemany("INSERT INTO coin_scans (post_id, version) VALUES (?, ?) ON CONFLICT (post_id)"
                                " DO UPDATE SET version = excluded.version",
                                [(pid, catalog.version) for (pid,) in ids])
        report.posts += len(rows)
        report.mentions += len(found)


def coins_of(db: sqlite_utils.Database, post_id: int) -> dict[str, str]:
    """The stored mentions of one post: symbol -> the rule that found it."""
    return dict(db.execute("SELECT coin, how FROM post_coins WHERE post_id = ? ORDER BY coin", [post_id]))


def top_coins(db: sqlite_utils.Database, limit: int = 20) -> list[tuple[str, int]]:
    """The most mentioned coins, with their post counts."""
    return db.execute("SELECT coin, count(*) AS n FROM post_coins GROUP BY coin ORDER BY n DESC, coin LIMIT ?",
                      [limit]).fetchall()
