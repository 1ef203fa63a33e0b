"""Commands of live sentiment: coin mentions (and, with them, the archive backfill)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from bizsent.cli.app import app, ctx_of


@app.command()
def coins(
    ctx: typer.Context,
    top: Annotated[int, typer.Option(help="how many coins to list")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Read coin mentions of the posts not yet read with the current coin list, then list the top coins."""
    from bizsent.core.coins import catalog
    from bizsent.core.coins.tags import tag_posts, top_coins

    c = ctx_of(ctx)
    db = c.db(create=False)
    report = tag_posts(db, catalog(c.settings.coins))
    ranked = top_coins(db, top)
    if as_json:
        typer.echo(json.dumps({"read": report.posts, "top": [{"coin": s, "posts": n} for s, n in ranked]}))
        return
    typer.echo(report.summary())
    for symbol, n in ranked:
        typer.echo(f"{symbol:<8} {n:>8} posts")


@app.command()
def backfill(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD (UTC)")],
    end: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD (UTC), included")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Fetch past /biz/ threads and their images from the archive mirror (archive.base_url), day by day,
    resumable; shows what it will take first."""
    from bizsent.core.coins import catalog
    from bizsent.core.coins.tags import tag_posts
    from bizsent.core.collect.archive import backfill as run_backfill
    from bizsent.core.collect.archive import parse_day, plan

    c = ctx_of(ctx)
    db = c.db()
    todo = plan(db, c.settings, parse_day(start, "--from"), parse_day(end, "--to"))
    typer.echo(todo.summary())
    if not todo.days:
        return
    if not yes and not typer.confirm(f"fetch {len(todo.days)} day(s) from {c.settings.archive.base_url}?"):
        typer.echo("cancelled; nothing was fetched")
        return
    report = run_backfill(db, c.settings, todo.days, progress=lambda line: typer.echo(line, err=True))
    typer.echo(report.summary())
    typer.echo(tag_posts(db, catalog(c.settings.coins)).summary())


@app.command("predict-new")
def predict_new_(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option(help="serverless endpoint ID (default: live.endpoint)")] = None,
) -> None:
    """Score the new posts not scored yet through the serverless endpoint, within live.daily_budget_usd (what
    every `scrape --every` round does after collecting)."""
    from bizsent.jobs.live_predict import live_round

    c = ctx_of(ctx)
    if endpoint is not None:
        c.settings.live.endpoint = endpoint
    typer.echo(live_round(c.db(create=False), c.settings))


@app.command()
def trends(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (what the Trends screen shows)")]
    = False,
    days: Annotated[int, typer.Option(help="days of history")] = 30,
    run: Annotated[int | None, typer.Option(help="predictions of this run id (default: the newest with any)")]
    = None,
) -> None:
    """Sentiment per coin over time: bullish and bearish shares with 95% intervals, volume, top movers."""
    from bizsent.core.coins import catalog
    from bizsent.core.coins.tags import tag_posts
    from bizsent.core.coins.trends import trends as compute

    c = ctx_of(ctx)
    db = c.db(create=False)
    cat = catalog(c.settings.coins)
    tag_posts(db, cat)
    result = compute(db, cat.display, days=days, run_id=run)  # up to the newest post
    if as_json:
        typer.echo(json.dumps(result.as_json(min_scored=5)))
        return
    typer.echo(f"24 h up to {_utc(result.now)} UTC (the newest post), predictions of run {result.run_id};"
               " share [95% interval]")
    for t in result.coins:
        posts, scored, bull, bear = t.window(True)
        typer.echo(f"{t.coin:<8} {posts:>6} posts {scored:>6} scored  bullish {_share(bull, scored)}  "
                   f"bearish {_share(bear, scored)}")
    for t in result.movers:
        typer.echo(f"mover: {t.coin} net sentiment {t.change(5):+.2f} against the 7 days before")


def _share(hits: int, n: int) -> str:
    from bizsent.core.coins.trends import wilson

    s = wilson(hits, n)
    return "   -" if s.value is None else f"{s.value:4.0%} [{s.low:.0%}-{s.high:.0%}]"


def _utc(unix: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M")
