"""Trends: what /biz/ feels about each coin, now and over time (the numbers of core.coins.trends).

Coins by posts in the 24 hours up to the newest post (core.coins.trends: not the clock) with their bullish and
bearish shares and 95% intervals; the selected coin's shares and volume per day as a plot; the top movers;
`enter` drills down to the coin's newest posts with their images and predictions, `escape` goes back. The screen
reads the store on a timer, so shares move as the live endpoint scores new posts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bizsent.core.coins.trends import CoinPost, Trends, coin_posts, trends, wilson
from bizsent.tui.keys import with_ids
from bizsent.tui.screens.zoom import ZoomKeys
from bizsent.tui.widgets.image_preview import ImagePreview, load_picture
from bizsent.tui.widgets.key_bar import KeyBar
from bizsent.tui.widgets.nav_table import NavTable
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.widgets.trend_plot import TrendPlot, load_plotext, plotext_loaded
from bizsent.tui.workers import background, reading
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

COIN_COLUMNS = ("coin", "posts 24h", "scored", "bullish [95%]", "bearish [95%]", "move")
POST_COLUMNS = ("time (UTC)", "model", "p(bull)", "text")
MIN_SCORED = 5  # scored posts a window needs before its change counts (core.coins.trends movers)
DAYS = 30
POLL_FACTOR = 10  # the screen reads the store every tui.refresh_s x this
LABEL_STYLE = {"bullish": "green", "bearish": "red", "neutral": "yellow"}


def share_cell(hits: int, n: int) -> Text:
    s = wilson(hits, n)
    if s.value is None:
        return Text("-", style="dim")
    return Text.assemble(f"{s.value:4.0%} ", (f"[{s.low:.0%}-{s.high:.0%}]", "dim"))


class CoinTable(NavTable):
    """The coins list. `enter` is the screen's drill-down here: a plain DataTable keeps enter to itself (as
    select_cursor, hidden), so the footer left out the key that opens a coin's posts."""

    BINDINGS = [Binding("enter", "screen.drill", "posts", id="trends.drill")]


class TrendsScreen(ZoomKeys, Screen):
    TITLE = "Trends"
    CSS_PATH = Path(__file__).parent.parent / "styles" / "trends.tcss"
    BINDINGS = with_ids("trends", [
        Binding("enter", "drill", "posts"),
        Binding("escape", "back", "coins"),
        Binding("r", "refresh", "refresh"),
        Binding("z", "zoom", "zoom", show=False),
        Binding("v", "viewer", "viewer", show=False),
    ])
    HELP = (
        "Per coin (mentions found by the coin rules, `bizsent coins`): posts in the last 24 hours, how many the "
        "model scored (the newest run with predictions, the live endpoint's as posts arrive), the bullish and "
        "bearish shares with Wilson 95% intervals, and the move of net sentiment against the 7 days before "
        f"(coins with {MIN_SCORED}+ scored posts in both). The plot shows the selected coin's shares and posts "
        f"per day over {DAYS} days. `enter` lists the coin's newest posts with image and prediction (arrows move, "
        "`escape` goes back); `r` reads again. `bizsent trends --json` prints the same numbers."
    )

    @dataclass
    class Polled(Message):
        trends: Trends

    @dataclass
    class PostsLoaded(Message):
        coin: str
        posts: list[CoinPost]

    def __init__(self) -> None:
        super().__init__()
        self.data: Trends | None = None
        self.coin: str | None = None
        self.posts: list[CoinPost] = []
        self.shown_post: int | None = None  # the drill-down's post whose image is shown (z zooms it)

    def compose(self) -> ComposeResult:
        with Horizontal(id="trends-top"):
            yield CoinTable(id="trends-coins", cursor_type="row", zebra_stripes=True)
            yield TrendPlot(id="trends-plot")
        yield Static(Text("reading the coins…", style="dim"), id="trends-movers")
        with Horizontal(id="trends-drill"):
            yield NavTable(id="trends-posts", cursor_type="row", zebra_stripes=True)
            yield ImagePreview(self.bizsent.settings.tui.image_renderer, id="trends-image")
        yield StatusBar()
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#trends-coins", DataTable).add_columns(*COIN_COLUMNS)
        self.query_one("#trends-posts", DataTable).add_columns(*POST_COLUMNS)
        self.query_one("#trends-coins", DataTable).focus()
        # Counts move with collection rounds (hourly) and scoring, and one read of a big store takes a second:
        # read every POLL_FACTOR refresh intervals, not every one.
        self.set_interval(self.bizsent.settings.tui.refresh_s * POLL_FACTOR,
                          lambda: self.action_refresh() if self.is_current else None)

    def on_screen_resume(self) -> None:
        self.action_refresh()  # also the first time it is shown: the one read it starts with

    def action_refresh(self) -> None:
        self._poll()

    @background("reading the trends", group="trends-poll", exclusive=True)
    def _poll(self) -> None:
        from bizsent.core.coins import catalog

        names = catalog(self.bizsent.settings.coins).display
        with reading(self.bizsent.db_path) as db:
            # Anchored on the newest post, not the clock (core.coins.trends). Read from the hourly totals, the
            # whole history costs little more than the week the table needs, so it is one read.
            self.post_message(self.Polled(trends(db, names, days=DAYS, min_scored=MIN_SCORED)))
        if not plotext_loaded():  # a quarter second: here, after the table's data, not on the event loop
            load_plotext()
            self.app.call_from_thread(self.query_one(TrendPlot).redraw)

    def on_trends_screen_polled(self, message: TrendsScreen.Polled) -> None:
        if self.data is not None and message.trends.as_json(MIN_SCORED) == self.data.as_json(MIN_SCORED):
            return
        self.data = message.trends
        table = self.query_one("#trends-coins", DataTable)
        table.clear()
        for t in self.data.coins:
            posts, scored, bull, bear = t.window(True)
            change = t.change(MIN_SCORED)
            move = Text("-", style="dim") if change is None else Text(
                f"{change:+.2f}", style="green" if change > 0 else "red" if change < 0 else "")
            table.add_row(Text(t.coin, style="bold"), str(posts), str(scored), share_cell(bull, scored),
                          share_cell(bear, scored), move, key=t.coin)
        coins = [t.coin for t in self.data.coins]
        if coins:
            table.move_cursor(row=coins.index(self.coin) if self.coin in coins else 0)
            self._select(self.coin if self.coin in coins else coins[0])
            at = coins.index(self.coin)
            ahead = self.data.coins[at + 1:] + self.data.coins[:at]  # the cursor's next coins first
            self.call_after_refresh(self._predraw, [(t.coin, t.series) for t in ahead])
        self._show_movers()

    @background("drawing the coins' plots", group="trends-predraw", exclusive=True)
    def _predraw(self, plots: list) -> None:
        """Draw the other coins' plots ahead (off the event loop), once the table is on screen: a key press
        then shows a plot already drawn."""
        load_plotext()  # here too: this worker may start before the poll's import ends
        self.query_one(TrendPlot).predraw(plots)

    def _show_movers(self) -> None:
        assert self.data is not None
        note = self.query_one("#trends-movers", Static)
        if not self.data.coins:
            note.update(Text("no coin mentions yet: collect posts (`bizsent scrape`, `bizsent backfill`)",
                             style="dim"))
            return
        movers = "  ".join(f"{t.coin} {t.change(MIN_SCORED):+.2f}" for t in self.data.movers) or "none yet"
        run = f"run {self.data.run_id}" if self.data.run_id is not None else "no predictions yet"
        until = _utc(self.data.now, "%Y-%m-%d %H:%M")
        note.update(Text.assemble((f"top movers, 24 h to {until} UTC (newest post): ", "bold"), movers,
                                  (f"   ({run})", "dim")))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is None:
            return
        if event.data_table.id == "trends-coins":
            self._select(key)
        elif event.data_table.id == "trends-posts":
            self._show_post(int(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "trends-coins":  # a click on the selected coin
            self.action_drill()

    def _select(self, coin: str) -> None:
        self.coin = coin
        trend = next((t for t in self.data.coins if t.coin == coin), None) if self.data else None
        self.query_one(TrendPlot).show(coin, trend.series if trend else [])

    # -- drill-down ----------------------------------------------------------------------------------------

    def action_drill(self) -> None:
        if self.coin is None or self.data is None:
            return
        self.query_one("#trends-drill").add_class("open")
        self._load_posts(self.coin, self.data.run_id)

    def action_back(self) -> None:
        self.query_one("#trends-drill").remove_class("open")
        self.query_one("#trends-coins", DataTable).focus()

    @background("reading the coin's posts", group="trends-posts", exclusive=True)
    def _load_posts(self, coin: str, run_id: int | None) -> None:
        with reading(self.bizsent.db_path) as db:
            posts = coin_posts(db, coin, run_id)
        self.post_message(self.PostsLoaded(coin, posts))

    def on_trends_screen_posts_loaded(self, message: TrendsScreen.PostsLoaded) -> None:
        self.posts = message.posts
        table = self.query_one("#trends-posts", DataTable)
        table.clear()
        for p in message.posts:
            bull = json.loads(p.probs).get("bullish") if p.probs else None
            when = Text("-") if p.time is None else Text(_utc(p.time))
            table.add_row(when, Text(p.label or "-", style=LABEL_STYLE.get(p.label or "", "dim")),
                          "-" if bull is None else f"{bull:.2f}", p.text.replace("\n", " ")[:120], key=str(p.post_id))
        table.focus()
        if message.posts:
            self._show_post(message.posts[0].post_id)

    def zoom_post(self) -> int | None:
        return self.shown_post

    def _show_post(self, post_id: int) -> None:
        post = next((p for p in self.posts if p.post_id == post_id), None)
        self.shown_post = post.post_id if post is not None else None
        if post is not None:
            self._load_image(post.image_path)

    @background("drawing the image", group="trends-image", exclusive=True)
    def _load_image(self, path: str | None) -> None:
        preview = self.query_one("#trends-image", ImagePreview)
        full = str(self.bizsent.settings.image_dir / path) if path else None
        picture = load_picture(full, renderer=preview.renderer, size=preview.target_size)
        self.app.call_from_thread(preview.show, picture)


def _utc(unix: int, form: str = "%m-%d %H:%M") -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix, UTC).strftime(form)
