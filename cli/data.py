"""Commands over the store: init, the console, demo data, scrape, import, export, status."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from bizsent.cli.app import app, ctx_of, open_console
from bizsent.core.errors import BizsentError

if TYPE_CHECKING:
    from bizsent.core.collect.transfer import HumanTestChange

TEST_CHANGE_EXAMPLES = 5  # changed test labels listed before asking


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
    from bizsent.core.coins import catalog
    from bizsent.core.coins.tags import tag_posts
    from bizsent.core.demo import seed_demo

    c = ctx_of(ctx)
    db = c.db()
    report = seed_demo(db, c.settings.image_dir, n_posts=posts, seed=seed)
    typer.echo(report.summary())
    typer.echo(tag_posts(db, catalog(c.settings.coins)).summary())
    _read_new_images(c, db)
    if not no_tui:
        open_console(c)


def _read_new_images(c, db) -> None:
    """Start the background job that reads the words on new images, when asked for and installed."""
    from bizsent.core.collect.ocr import missing
    from bizsent.jobs.read_images import ensure_reading

    if not c.settings.images.read_text:
        return
    said = missing() or ensure_reading(db, c.db_path, c.settings.source, c.settings.data_dir / "logs")
    if said:
        typer.echo(said, err=True)


@app.command("read-images")
def read_images(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(help="read at most this many images")] = None,
    job: Annotated[int | None, typer.Option("--job", help="run (or resume) this queued read-images job row")] = None,
) -> None:
    """Read the words on every fetched image not read yet (OCR, offline), so `/` finds them and Label shows them."""
    from bizsent.core.errors import BizsentError
    from bizsent.jobs.read_images import read_all, run_job

    c = ctx_of(ctx)
    db = c.db(create=False)
    if job is not None:
        typer.echo(run_job(db, job).summary())
        return
    if limit is not None and limit < 1:
        raise BizsentError("--limit must be at least 1")
    typer.echo(read_all(db, limit=limit).summary())


@app.command()
def scrape(
    ctx: typer.Context,
    max_threads: Annotated[int | None, typer.Option(help="threads to fetch (default: config)")] = None,
    archive: Annotated[bool | None, typer.Option("--archive/--no-archive", help="also walk archived threads")] = None,
    images: Annotated[bool | None, typer.Option("--images/--no-images", help="download images")] = None,
    images_only: Annotated[bool, typer.Option("--images-only", help="only fetch pending/retryable images")] = False,
    every: Annotated[str | None, typer.Option(help="keep collecting, one round every DURATION (60m, 1h)")] = None,
    retry: Annotated[str, typer.Option(help="with --every: after a network failure, try again after this")] = "5m",
    rounds: Annotated[int | None, typer.Option(help="with --every: stop after this many rounds")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="with --every: run as a background job (see `bizsent "
                                         "jobs`)")] = False,
    job: Annotated[int | None, typer.Option("--job", help="run (or resume) this scheduled collection job row")]
    = None,
) -> None:
    """Pull /biz/ threads from 4chan's read-only JSON API into the database (resumable, incremental); with
    --every, keep collecting as a job (heartbeat, `bizsent jobs cancel`, resume)."""
    from bizsent.core.coins import catalog
    from bizsent.core.coins.tags import tag_posts
    from bizsent.core.collect.ingest import scrape as run_scrape

    c = ctx_of(ctx)
    if every is not None or job is not None:
        scrape_args = dict(max_threads=max_threads, include_archive=archive, download_images=images)
        _scrape_every(c, every, retry, rounds, scrape_args, detach, job)
        return
    if detach:
        raise BizsentError("--detach needs --every: a single scrape runs here")
    args = dict(max_threads=max_threads, include_archive=archive, download_images=images, images_only=images_only,
                progress=lambda line: typer.echo(line, err=True))
    db = c.db()
    report = run_scrape(db, c.settings, **args)
    typer.echo(report.summary())
    typer.echo(tag_posts(db, catalog(c.settings.coins)).summary())
    _read_new_images(c, db)


def _scrape_every(c, every: str | None, retry: str, rounds: int | None, scrape_args: dict, detach: bool,
                  job: int | None) -> None:
    """The loop as a `collect` job (jobs.collect): a new row for --every, or the row --job names."""
    from bizsent.cli.app import detach_or_run
    from bizsent.core.collect.fourchan import RealClock
    from bizsent.jobs import collect, rows
    from bizsent.jobs.schedule import parse_every

    if rounds is not None and rounds < 1:
        raise BizsentError("--rounds must be at least 1")
    if c.settings.live.endpoint:
        from bizsent.core.config import secret

        secret("runpod")  # a missing key is one line now, not a failed round every hour
    db = c.db()  # created and migrated before the first round
    plan = None if job is not None else collect.Schedule(parse_every(every or ""), parse_every(retry), rounds,
                                                         scrape_args)
    if detach:
        if job is None:
            job = rows.queue(db, collect.KIND, plan.params())  # type: ignore[union-attr]
        detach_or_run(c, db, job, detach)
        return
    done = collect.run_job(db, c.db_path, c.settings, RealClock(), job_id=job, plan=plan, say=typer.echo)
    typer.echo(f"{done} round(s) run")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSONL, CSV or the old scraper's SQLite database")],
    split: Annotated[str, typer.Option(help="split for imported human labels: test | train | unassigned")] = "test",
    scale: Annotated[str, typer.Option(help="rating scale of the old scraper's labels: auto | 3 | 5 | 10")] = "auto",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="change existing human test labels the file disagrees"
                                                          " with, without asking")] = False,
) -> None:
    """Import posts and labels; the format is detected from the file. Existing human test labels change only
    when confirmed."""
    from bizsent.core.collect.transfer import import_file

    c = ctx_of(ctx)
    report = import_file(c.db(), file, split=split, scale=scale, image_dir=c.settings.image_dir,
                         confirm=lambda changes: _confirm_test_changes(changes, yes))
    for problem in report.problems:
        typer.echo(problem, err=True)
    typer.echo(report.summary())


def _confirm_test_changes(changes: list[HumanTestChange], yes: bool) -> bool:
    typer.echo(f"{len(changes)} human test label(s) would change (the test set every evaluation scores against):",
               err=True)
    for change in changes[:TEST_CHANGE_EXAMPLES]:
        typer.echo(f"  {change.describe()}", err=True)
    if len(changes) > TEST_CHANGE_EXAMPLES:
        typer.echo(f"  … and {len(changes) - TEST_CHANGE_EXAMPLES} more", err=True)
    if yes:
        return True
    if not sys.stdin.isatty():
        typer.echo("not changing them: nobody to ask; import again with --yes to change them (the rest imports now)",
                   err=True)
        return False
    return typer.confirm("change them?")


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
    from bizsent.core.collect.export import export_file

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
    from bizsent.jobs.views import status_counts

    c = ctx_of(ctx)
    db = c.db(create=False)
    summary = summarize(db, c.settings.image_dir, status_counts(db))
    typer.echo(json.dumps(summary) if as_json else render_summary(summary))


