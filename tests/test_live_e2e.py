"""Issue 23's "done when", end to end on demo data: hourly collection from the fake 4chan on an injectable clock,
a week backfilled from the fake archive while the loop waits, every new candidate scored through the fake
serverless endpoint (the real worker handler on the tiny model) within the daily budget, and the Trends screen
(Textual's Pilot) moving from the demo's day to the backfilled week as the scores land."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from bizsent.core.coins import catalog
from bizsent.core.coins.tags import tag_posts
from bizsent.core.coins.trends import trends
from bizsent.core.collect.archive import backfill
from bizsent.core.config import Settings
from bizsent.core.demo import seed_demo
from bizsent.core.serve.handler import ADAPTER_ENV
from bizsent.jobs.live_predict import PROVIDER, WORKER_START, today_usd
from bizsent.jobs.schedule import run_every, scrape_round
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.trends import TrendsScreen
from fakes.archive import FakeArchive
from fakes.fourchan import FakeClock, FakeFourChan, biz_scenario
from fakes.openai_server import Server
from fakes.serverless_server import FakeServerless, make_handler
from fakes.tui import open_screen, until
from textual.widgets import DataTable, Static

HOUR = 3600.0
WEEK = [date.today() - timedelta(days=n) for n in range(7, 0, -1)]
CANDIDATES = ("SELECT count(*) FROM posts p JOIN images i ON i.id = p.image_id WHERE i.status = 'ok'"
              " AND trim(p.text) != ''")


class BackfillWhileWaiting(FakeClock):
    """The loop's clock: during its first wait the user runs `bizsent backfill` for the last week."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings, self.backfilled = settings, None

    def sleep(self, seconds: float) -> None:
        if self.backfilled is None:
            from bizsent.core.store import open_db

            db = open_db(self.settings.db_path)
            try:
                self.backfilled = backfill(db, self.settings, WEEK, clock=FakeClock())
            finally:
                db.close()
        super().sleep(seconds)


@pytest.fixture
def world(run, settings: Settings, monkeypatch):
    """The fake 4chan, archive (one thread a day over the week) and serverless endpoint, with settings aimed at
    them: what a new user configures."""
    monkeypatch.setenv(ADAPTER_ENV, str(run["result"].adapter_dir))
    monkeypatch.setenv("RUNPOD_API_KEY", "rp-test-key")
    endpoint = FakeServerless()
    with FakeFourChan() as board, FakeArchive() as archive, Server(endpoint, make_handler, suffix="") as server:
        biz_scenario(board)
        for k, day in enumerate(WEEK):
            archive.add_thread(7000 + 10 * k, datetime(day.year, day.month, day.day, 3, tzinfo=UTC))
        settings.scrape.api_base = settings.scrape.image_base = board.url
        settings.archive.base_url = archive.url
        settings.runpod.serverless_base = server.url
        settings.live.endpoint = endpoint.endpoint
        settings.tui.refresh_s = 0.05
        yield endpoint


async def test_hourly_collection_backfill_and_live_scores_move_the_trends_screen(world, settings: Settings,
                                                                                db) -> None:
    seed_demo(db, settings.image_dir, n_posts=12, seed=3)
    tag_posts(db, catalog(settings.coins))
    clock = BackfillWhileWaiting(settings)
    lines: list[str] = []
    loop = threading.Thread(target=run_every, args=(lambda: scrape_round(settings.db_path, settings, clock=clock),
                                                    HOUR, clock), kwargs={"rounds": 2, "say": lines.append})
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_screen(app, pilot, "trends", TrendsScreen)
        coins = screen.query_one("#trends-coins", DataTable)
        movers = screen.query_one("#trends-movers", Static)
        await until(pilot, lambda: coins.row_count > 0)
        assert "2025-01-" in str(movers.render())  # the demo's day, before anything is collected
        loop.start()
        await until(pilot, lambda: not loop.is_alive(), timeout=600)
        now = trends(db, catalog(settings.coins).display, days=30, min_scored=5)
        # the screen catches up on its own timer: the backfilled week, scored, as the store says
        await until(pilot, lambda: screen.data is not None and screen.data.as_json(5) == now.as_json(5))
        assert WEEK[-1].isoformat() in str(movers.render()) and now.run_id is not None
        top = now.coins[0]
        assert coins.get_row(top.coin)[2] == str(top.window(True)[1]) and top.window(True)[1] > 0
    assert clock.sleeps and sum(clock.sleeps) == HOUR  # the second round came an hour after the first
    assert clock.backfilled is not None and clock.backfilled.days_done == len(WEEK)
    assert len(lines) == 3 and all("round done" in line and " 0 waiting" in line for line in lines[::2]), lines
    # every candidate (demo, 4chan, archive) scored once through the endpoint, within the day's budget
    scored = db.execute("SELECT count(*) FROM predictions").fetchone()[0]
    assert scored == db.execute(CANDIDATES).fetchone()[0] == len(world.inputs)
    assert db.execute("SELECT count(*) FROM posts WHERE source = 'archive'").fetchone()[0] == 3 * len(WEEK)
    calls = db.execute("SELECT count(*), sum(usd) FROM api_calls WHERE provider = ? AND status = 'ok'"
                       " AND mode = 'live'", [PROVIDER]).fetchone()
    starts = db.execute("SELECT count(*), sum(usd) FROM api_calls WHERE provider = ? AND mode = ?",
                        [PROVIDER, WORKER_START]).fetchone()
    assert calls[0] == scored and starts[0] >= 1 and today_usd(db) == pytest.approx(calls[1] + starts[1])
    assert 0 < today_usd(db) <= settings.live.daily_budget_usd
    assert datetime.fromtimestamp(now.now, UTC).date() == WEEK[-1] and len(now.coins[0].series) == len(WEEK)
