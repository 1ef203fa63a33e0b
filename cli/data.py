"""Commands over the store: init, the console, demo data, scrape, import, export, status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from bizsent.cli.app import app, ctx_of, open_console


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the data folder and an empty, migrated database."""
    c = ctx_of(ctx)
    c.db()
    c.settings.image_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(f"database ready: {c.db_path}")


@app.command()
def tui(ctx: typer.Context) -> None:
    """Open the console (also what `bizsent` alone does)."""
    open_console(ctx_of(ctx))


@app.command()
def demo(
    ctx: typer.Context,
    no_tui: Annotated[bool, typer.Option("--no-tui", help="only seed the demo data")] = False,
    posts: Annotated[int, typer.Option(help="number of synthetic posts")] = 300,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data)")] = 7,
) -> None:
    """Seed built-in synthetic /biz/ posts (no keys, no network), then open the console."""
    from bizsent.core.demo import seed_demo

    c = ctx_of(ctx)
    report = seed_demo(c.db(), c.settings.image_dir, n_posts=posts, seed=seed)
    typer.echo(report.summary())
    if not no_tui:
        open_console(c)


@app.command()
def scrape(
    ctx: typer.Context,
    max_threads: Annotated[int | None, typer.Option(help="threads to fetch (default: config)")] = None,
    archive: Annotated[bool | None, typer.Option("--archive/--no-archive", help="also walk archived threads")] = None,
    images: Annotated[bool | None, typer.Option("--images/--no-images", help="download images")] = None,
    images_only: Annotated[bool, typer.Option("--images-only", help="only fetch pending/retryable images")] = False,
) -> None:
    """Pull /biz/ threads from 4chan's read-only JSON API into the database (resumable, incremental)."""
    from bizsent.core.collect.ingest import scrape as run_scrape

    c = ctx_of(ctx)
    report = run_scrape(
        c.db(), c.settings, max_threads=max_threads, include_archive=archive, download_images=images,
        images_only=images_only, progress=lambda line: typer.echo(line, err=True),
    )
    typer.echo(report.summary())


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSONL, CSV or the old scraper's SQLite database")],
    split: Annotated[str, typer.Option(help="split for imported human labels: test | train | unassigned")] = "test",
    scale: Annotated[str, typer.Option(help="rating scale of the old scraper's labels: auto | 3 | 5 | 10")] = "auto",
) -> None:
    """Import posts and labels; the format is detected from the file."""
    from bizsent.core.collect.transfer import import_file

    c = ctx_of(ctx)
    report = import_file(c.db(), file, split=split, scale=scale, image_dir=c.settings.image_dir)
    for problem in report.problems:
        typer.echo(problem, err=True)
    typer.echo(report.summary())


@app.command()
def export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="output file, .jsonl or .csv")],
    what: Annotated[str, typer.Option(help="posts | labels")] = "labels",
    source: Annotated[str | None, typer.Option(
        help="only labels from this source or provider: human, openai, …, or api (every provider)")] = None,
    split: Annotated[str | None, typer.Option(help="only labels in this split")] = None,
) -> None:
    """Export posts or labels as JSONL or CSV."""
    from bizsent.core.collect.transfer import export_file

    c = ctx_of(ctx)
    count = export_file(c.db(create=False), file, what=what, source=source, split=split)
    typer.echo(f"exported {count} {what} to {file}")


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Counts by source, split and label; image states; disk use; spend so far."""
    from bizsent.core.store.summary import render_summary, summarize

    c = ctx_of(ctx)
    summary = summarize(c.db(create=False), c.settings.image_dir)
    typer.echo(json.dumps(summary) if as_json else render_summary(summary))


