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
