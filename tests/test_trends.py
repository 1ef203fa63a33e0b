"""Per-coin sentiment over time (core.coins.trends) and `bizsent trends --json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from bizsent.core.coins import catalog
from bizsent.core.coins.tags import tag_posts
from bizsent.core.coins.trends import coin_posts, trends, wilson
from bizsent.core.store import now as stamp
from bizsent.core.store.posts import save_posts
from bizsent.core.store.records import NewPost

NOW = 1_800_000_000
DAY_S = 86_400


def seed(db, run_id: int = 1) -> None:
    """LINK: 10 posts a day for 3 days, bearish before, bullish in the last 24 h; ETH: 2 posts today, unscored."""
    db.execute("INSERT INTO runs (id, kind, name, state, created_at) VALUES (?, 'endpoint', 'endpoint:x', 'done', ?)",
               [run_id, stamp()])
    posts, labels = [], {}
    no = 100
    for ago in range(3):
        for k in range(10):
            no += 1
            posts.append(NewPost("biz", no, no, f"sell your link {k}", time=NOW - ago * DAY_S - 60 * k - 1))
            labels[no] = "bullish" if ago == 0 else "bearish"
    posts += [NewPost("biz", 900, 900 + k, "eth looks fine", time=NOW - 10 - k) for k in range(2)]
    save_posts(db, posts)
    for post_no, label in labels.items():
        pid = db.execute("SELECT id FROM posts WHERE post_no = ?", [post_no]).fetchone()[0]
        db.execute("INSERT INTO predictions (run_id, post_id, label, probs, created_at) VALUES (?, ?, ?, '{}', ?)",
                   [run_id, pid, label, stamp()])


def test_wilson_intervals_widen_for_small_counts() -> None:
    small, large = wilson(2, 3), wilson(200, 300)
    assert small.value == large.value == pytest.approx(2 / 3)
    assert small.low < large.low < large.high < small.high
    assert wilson(0, 0).value is None and wilson(0, 5).low == 0.0


def test_series_volume_shares_and_movers(db, settings) -> None:
    seed(db)
    cat = catalog(settings.coins)
    tag_posts(db, cat)
    result = trends(db, cat.display, now=NOW, days=7, min_scored=5)
    assert [t.coin for t in result.coins] == ["LINK", "ETH"] and result.run_id == 1
    link = result.coins[0]
    assert [(p.days_ago, p.posts, p.bullish, p.bearish) for p in link.series] == [
        (2, 10, 0, 10), (1, 10, 0, 10), (0, 10, 10, 0)]
    assert link.change(5) == pytest.approx(2.0)  # from all bearish to all bullish
    assert [t.coin for t in result.movers] == ["LINK"]  # ETH: nothing scored, no change to rank
    eth = result.coins[1]
    assert eth.window(True) == (2, 0, 0, 0) and eth.change(5) is None
    posts = coin_posts(db, "LINK", 1, limit=3)
    assert [p.label for p in posts] == ["bullish"] * 3 and posts[0].time == NOW - 1


def test_trends_json_is_what_scripts_read(tmp_path) -> None:
    db_file = tmp_path / "x.db"
    from bizsent.core.store import open_db

    db = open_db(db_file)
    seed(db)
    db.close()
    out = subprocess.run([sys.executable, "-m", "bizsent", "--db", str(db_file), "trends", "--json", "--days", "7"],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    link = data["coins"][0]
    assert link["coin"] == "LINK" and link["posts_24h"] == 10 and link["bullish_24h"]["share"] == 1.0
    assert link["bullish_24h"]["low"] < 1.0 and data["movers"] == [{"coin": "LINK", "change": 2.0}]
