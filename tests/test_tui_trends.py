"""The Trends screen through Textual's Pilot: coins with shares and intervals, the plot following the cursor,
shares moving as predictions land in the store, the drill-down to a coin's posts with image and prediction."""

from __future__ import annotations

import time

from bizsent.core.coins import catalog
from bizsent.core.coins.tags import tag_posts
from bizsent.core.demo import seed_demo
from bizsent.core.store import now as stamp
from bizsent.core.store.posts import save_posts
from bizsent.core.store.records import ImageRef, NewPost
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.trends import TrendsScreen
from bizsent.tui.screens.zoom import ZoomScreen
from bizsent.tui.widgets.ansi_strips import ansi_strips
from bizsent.tui.widgets.image_preview import ImagePreview
from bizsent.tui.widgets.trend_plot import TrendPlot
from fakes.tui import open_screen, png, until
from rich.color import Color
from rich.style import Style
from textual.widgets import DataTable, Static

DAY_S = 86_400


def predict(db, post_no: int, label: str) -> None:
    pid = db.execute("SELECT id FROM posts WHERE post_no = ?", [post_no]).fetchone()[0]
    db.execute("INSERT INTO predictions (run_id, post_id, label, probs, created_at) VALUES (1, ?, ?, ?, ?)",
               [pid, label, '{"bullish": 0.7, "neutral": 0.2, "bearish": 0.1}', stamp()])


def seed(db, settings) -> None:
    """LINK: 6 posts a day for 3 days, bearish before and bullish in the last 24 h; ETH: 2 unscored posts today,
    the newest with an image on disk."""
    now = int(time.time())
    db.execute("INSERT INTO runs (id, kind, name, state, created_at) VALUES (1, 'endpoint', 'endpoint:x', 'done', ?)",
               [stamp()])
    posts = [NewPost("biz", 100, 100 + 10 * ago + k, f"sell your link {k}", time=now - ago * DAY_S - 60 * k - 5)
             for ago in range(3) for k in range(6)]
    settings.image_dir.mkdir(parents=True, exist_ok=True)
    (settings.image_dir / "eth.png").write_bytes(png((20, 200, 20)))
    posts += [NewPost("biz", 900, 901, "eth looks fine", time=now - 30),
              NewPost("biz", 900, 902, "eth to 10k", time=now - 20,
                      image=ImageRef(url="local:eth", local_path="eth.png"))]
    save_posts(db, posts)
    db.execute("UPDATE images SET status = 'ok'")
    for ago in range(3):
        for k in range(6):
            predict(db, 100 + 10 * ago + k, "bullish" if ago == 0 else "bearish")
    tag_posts(db, catalog(settings.coins))


def cell(table: DataTable, row: str, column: int) -> str:
    return str(table.get_row(row)[column])


async def test_trends_screen_shows_coins_updates_live_and_drills_down(settings, db) -> None:
    settings.tui.image_renderer = "halfcell"
    settings.tui.refresh_s = 0.05
    seed(db, settings)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_screen(app, pilot, "trends", TrendsScreen)
        coins = screen.query_one("#trends-coins", DataTable)
        await until(pilot, lambda: coins.row_count == 2)
        assert cell(coins, "LINK", 1) == "6" and cell(coins, "LINK", 3).startswith("100%")
        assert cell(coins, "LINK", 5) == "+2.00" and cell(coins, "ETH", 2) == "0"
        plot = screen.query_one(TrendPlot)
        assert plot.coin == "LINK" and [p.days_ago for p in plot.series] == [2, 1, 0]
        await until(pilot, lambda: "LINK  ━ bullish" in plot.text)  # drawn once plotext is loaded
        assert "┤" in plot.text and any(s.style and s.style.color == Color.from_ansi(10)  # the bullish line
                                        for strip in plot.rendered for s in strip)
        eth = next(t for t in screen.data.coins if t.coin == "ETH")
        await until(pilot, lambda: plot.is_drawn("ETH", eth.series))  # the next coin is drawn ahead, off the loop
        assert "LINK +2.00" in str(screen.query_one("#trends-movers", Static).render())
        predict(db, 901, "bearish")  # the live endpoint scores a new post: the next poll shows it
        predict(db, 902, "bearish")
        await until(pilot, lambda: cell(coins, "ETH", 2) == "2")
        assert cell(coins, "ETH", 4).startswith("100%") and "[" in cell(coins, "ETH", 4)  # wide interval, 2 posts
        await pilot.press("down")
        await until(pilot, lambda: plot.coin == "ETH")
        await pilot.press("enter")
        posts = screen.query_one("#trends-posts", DataTable)
        await until(pilot, lambda: posts.row_count == 2)
        assert screen.query_one("#trends-drill").has_class("open")
        newest = [str(v) for v in posts.get_row_at(0)]
        assert newest[1] == "bearish" and newest[3] == "eth to 10k"  # newest first, with its prediction
        preview = screen.query_one("#trends-image", ImagePreview)
        await until(pilot, lambda: preview.picture.image is not None)
        await pilot.press("z")  # the drill-down's image, zoomed to the whole terminal (issue 21.3)
        await until(pilot, lambda: isinstance(app.screen, ZoomScreen) and app.screen.shown)
        assert app.screen.post_id == int(posts.coordinate_to_cell_key(posts.cursor_coordinate).row_key.value)
        assert app.screen.query_one(ImagePreview).picture.image is not None
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("down")  # the post without an image
        await until(pilot, lambda: preview.picture.image is None and "missing" in preview.placeholder_text)
        await pilot.press("escape")
        assert not screen.query_one("#trends-drill").has_class("open") and coins.has_focus


async def test_trends_on_demo_data_shows_the_demo_day_and_moves_as_posts_are_scored(settings, db) -> None:
    """The demo's posts are dated January 2025: the windows end at the newest post, so the screen is full."""
    settings.tui.refresh_s = 0.05
    seed_demo(db, settings.image_dir, n_posts=60, seed=3)
    tag_posts(db, catalog(settings.coins))
    top, mentions = db.execute("SELECT coin, count(*) FROM post_coins GROUP BY coin ORDER BY 2 DESC, 1").fetchone()
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_screen(app, pilot, "trends", TrendsScreen)
        coins = screen.query_one("#trends-coins", DataTable)
        await until(pilot, lambda: coins.row_count > 0)
        assert cell(coins, top, 1) == str(mentions) and cell(coins, top, 2) == "0"
        assert "2025-01-1" in str(screen.query_one("#trends-movers", Static).render())  # which day it shows
        db.execute("INSERT INTO runs (id, kind, name, state, created_at) VALUES (1, 'endpoint', 'endpoint:x',"
                   " 'done', ?)", [stamp()])
        for (post_id,) in db.execute("SELECT post_id FROM post_coins WHERE coin = ?", [top]).fetchall():
            db.execute("INSERT INTO predictions (run_id, post_id, label, probs, created_at) VALUES"
                       " (1, ?, 'bullish', '{}', ?)", [post_id, stamp()])
        await until(pilot, lambda: cell(coins, top, 2) == str(mentions))
        assert cell(coins, top, 3).startswith("100%")


def test_ansi_strips_keep_plotexts_text_and_colours() -> None:
    """plotext's escapes as a terminal reads them: a reset ends a run, codes before a reset add up."""
    first, second = ansi_strips("\x1b[0m1.0┤\x1b[0m\x1b[38;5;10m▄▄\x1b[0m ·\n\x1b[1m\x1b[38;5;9mX\x1b[0m")
    assert first.text == "1.0┤▄▄ ·" and second.text == "X"
    assert [(s.text, s.style) for s in first] == [("1.0┤", None), ("▄▄", Style(color=Color.from_ansi(10))),
                                                  (" ·", None)]
    assert list(second)[0].style == Style(bold=True, color=Color.from_ansi(9))
