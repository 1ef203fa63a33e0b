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
