"""What /biz/ feels about each coin, now and over time: the numbers behind the Trends screen and `bizsent trends`.

A post counts for every coin it mentions (post_coins) and is scored by the model's prediction for it from one
run: the given one, else the newest run with predictions (the live endpoint's as posts arrive). Counts come from
per-coin, per-hour totals (coin_hours, coin_hour_scores: migration 14, kept by triggers), so a read costs the
same on a million posts as on a hundred. Time runs backwards from `now` in whole days of whole hours, so bucket 0
is the 24 hours up to the end of `now`'s hour. The screen and `bizsent trends` put `now` at the newest post with
a coin mention (newest_post_time), not the wall clock: a store whose collection stopped (or the demo's, dated
in the past) still shows its last day, and its header says which day that is. Shares come with a Wilson 95%
interval, which stays honest for the handful of posts a small coin gets in a day.
A mover is a coin whose net sentiment (bullish share minus bearish share) in the last 24 hours differs most from
that of the BASELINE_DAYS days before, among coins with at least `min_scored` scored posts in both; so the
movers and every coin's change need only the last BASELINE_DAYS + 1 days (the screen reads those first).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import sqlite_utils

HOUR_S = 3_600
Z95 = 1.96
BASELINE_DAYS = 7  # what the last 24 hours are compared with


@dataclass(frozen=True, slots=True)
class Share:
    value: float | None  # None: nothing scored
    low: float | None
    high: float | None


def wilson(hits: int, n: int) -> Share:
    """The share hits/n with its Wilson score 95% interval."""
    if n == 0:
        return Share(None, None, None)
    p = hits / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return Share(p, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class DayPoint:
    days_ago: int  # 0 = the last 24 hours
    posts: int
    scored: int
    bullish: int
    bearish: int

    @property
    def bullish_share(self) -> Share:
        return wilson(self.bullish, self.scored)

    @property
    def bearish_share(self) -> Share:
        return wilson(self.bearish, self.scored)


@dataclass
class CoinTrend:
    coin: str
    name: str
    series: list[DayPoint]  # oldest first; days without posts are left out

    def window(self, newest: bool) -> tuple[int, int, int, int]:
        """(posts, scored, bullish, bearish) of the last 24 hours (newest) or of the BASELINE_DAYS before."""
        points = [p for p in self.series if (p.days_ago == 0 if newest else 1 <= p.days_ago <= BASELINE_DAYS)]
        return (sum(p.posts for p in points), sum(p.scored for p in points), sum(p.bullish for p in points),
                sum(p.bearish for p in points))

    def net(self, newest: bool) -> float | None:
        _, scored, bull, bear = self.window(newest)
        return (bull - bear) / scored if scored else None

    def change(self, min_scored: int) -> float | None:
        """Net sentiment of the last 24 hours minus that of the 7 days before, when both have enough posts."""
        if self.window(True)[1] < min_scored or self.window(False)[1] < min_scored:
            return None
        return self.net(True) - self.net(False)  # type: ignore[operator]


@dataclass
class Trends:
    run_id: int | None
    days: int
    now: int  # where the windows end (unix seconds)
    coins: list[CoinTrend] = field(default_factory=list)  # by posts in the last 24 hours, then the 7 days before
    movers: list[CoinTrend] = field(default_factory=list)

    def as_json(self, min_scored: int) -> dict:
        def share(s: Share) -> dict:
            return {"share": s.value, "low": s.low, "high": s.high}

        def coin(t: CoinTrend) -> dict:
            posts, scored, bull, bear = t.window(True)
            return {"coin": t.coin, "name": t.name, "posts_24h": posts, "scored_24h": scored,
                    "bullish_24h": share(wilson(bull, scored)), "bearish_24h": share(wilson(bear, scored)),
                    "change": t.change(min_scored),
                    "series": [{"days_ago": p.days_ago, "posts": p.posts, "scored": p.scored,
                                "bullish": share(p.bullish_share), "bearish": share(p.bearish_share)}
                               for p in t.series]}

        return {"run_id": self.run_id, "days": self.days, "now": self.now, "coins": [coin(t) for t in self.coins],
                "movers": [{"coin": t.coin, "change": t.change(min_scored)} for t in self.movers]}


def newest_post_time(db: sqlite_utils.Database) -> int | None:
    """The end of the newest hour with a coin mention: where the screen anchors its windows (see the module doc)."""
    row = db.execute("SELECT max(hour) FROM coin_hours WHERE posts > 0").fetchone()
    return None if row is None or row[0] is None else row[0] * HOUR_S + HOUR_S - 1


def newest_scored_run(db: sqlite_utils.Database) -> int | None:
    row = db.execute("SELECT max(run_id) FROM predictions").fetchone()
    return row[0] if row else None


def trends(db: sqlite_utils.Database, names: dict[str, str], *, now: int | None = None, days: int = 30,
           run_id: int | None = None, top: int = 30, movers: int = 5, min_scored: int = 5) -> Trends:
    """Per-coin series over the last `days` days up to `now` (default: newest_post_time) and the top movers."""
    if now is None:
        now = newest_post_time(db) or int(time.time())
    run = run_id if run_id is not None else newest_scored_run(db)
    last = now // HOUR_S  # the hour `now` falls in counts whole: totals are per hour (coin_hours)
    rows = db.execute(
        "SELECT h.coin, (? - h.hour) / 24 AS ago, sum(h.posts), sum(coalesce(s.scored, 0)),"
        " sum(coalesce(s.bullish, 0)), sum(coalesce(s.bearish, 0)) FROM coin_hours h"
        " LEFT JOIN coin_hour_scores s ON s.run_id = ? AND s.hour = h.hour AND s.coin = h.coin"
        " WHERE h.hour > ? AND h.hour <= ? AND h.posts > 0 GROUP BY h.coin, ago",
        [last, run, last - days * 24, last]).fetchall()
    by_coin: dict[str, list[DayPoint]] = {}
    for coin, ago, posts, scored, bull, bear in rows:
        by_coin.setdefault(coin, []).append(DayPoint(int(ago), posts, scored, bull or 0, bear or 0))
    found = [CoinTrend(coin, names.get(coin, coin), sorted(points, key=lambda p: -p.days_ago))
             for coin, points in by_coin.items()]
    found.sort(key=lambda t: (-t.window(True)[0], -t.window(False)[0], t.coin))
    moving = sorted((t for t in found if t.change(min_scored) is not None),
                    key=lambda t: -abs(t.change(min_scored)))  # type: ignore[arg-type]
    return Trends(run, days, now, found[:top], moving[:movers])


@dataclass(frozen=True, slots=True)
class CoinPost:
    post_id: int
    time: int | None
    text: str
    image_path: str | None
    label: str | None
    probs: str | None  # JSON, as stored


def coin_posts(db: sqlite_utils.Database, coin: str, run_id: int | None, *, limit: int = 200) -> list[CoinPost]:
    """The newest posts mentioning `coin`, with their images and the run's predictions (drill-down)."""
    rows = db.execute(
        "SELECT p.id, p.time, p.text, i.path, r.label, r.probs FROM post_coins c JOIN posts p ON p.id = c.post_id"
        " LEFT JOIN images i ON i.id = p.image_id AND i.status = 'ok'"
        " LEFT JOIN predictions r ON r.post_id = p.id AND r.run_id = ?"
        " WHERE c.coin = ? ORDER BY p.time DESC, p.id DESC LIMIT ?", [run_id, coin, limit]).fetchall()
    return [CoinPost(*row) for row in rows]
