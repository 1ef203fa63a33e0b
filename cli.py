"""The `bizsent` command line: a thin layer over core and jobs (the console calls the same functions).

Exit codes: 0 ok, 1 user error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from bizsent.core.config import Settings, load_settings
from bizsent.core.errors import BizsentError
from bizsent.core.log import RedactingStream, log_file, redact, setup_logging

app = typer.Typer(
    name="bizsent",
    help="Multimodal /biz/ sentiment: collect, label, train, evaluate. Run without a command to open the console.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_opened: list[Path] = []  # the database this command opened: what `main` names when SQLite fails later


@dataclass
class Context:
    settings: Settings
    db_path: Path

    def db(self, create: bool = True):
        from bizsent.core.store import open_db

        _opened.append(self.db_path)
        return open_db(self.db_path, create=create)


def ctx_of(ctx: typer.Context) -> Context:
    return ctx.obj


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    db: Annotated[Path | None, typer.Option("--db", help="SQLite database; its folder holds the image cache, "
                                            "runs and logs (default: from config.toml)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="config file (default: the repo's config.toml)")]
    = None,
) -> None:
    # A database given by path brings its data folder with it, so two projects never share one image cache.
    overrides = {"data.dir": str(db.resolve().parent), "data.db": db.name} if db else None
    settings = load_settings(config, overrides=overrides)
    setup_logging(settings.data_dir)
    ctx.obj = Context(settings=settings, db_path=settings.db_path)
    if ctx.invoked_subcommand is None:
        open_console(ctx.obj)


def open_console(context: Context) -> None:
    from bizsent.tui.terminal import load_textual_image

    load_textual_image(context.settings.tui.image_renderer)
    from bizsent.tui.app import BizsentApp

    BizsentApp(settings=context.settings, db_path=context.db_path).run()


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
    source: Annotated[str | None, typer.Option(help="only labels from this source")] = None,
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


@app.command()
def label(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option(help="openai | gemini | compatible (default: config)")] = None,
    model: Annotated[str | None, typer.Option(help="model name (default: the provider's in config.toml)")] = None,
    limit: Annotated[int | None, typer.Option(help="label at most this many posts")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="use the provider's Batch API (cheaper, slower)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the estimate; send nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    job: Annotated[int | None, typer.Option("--job", help="run (or resume) this queued job row; its own"
                                            " provider, model, mode and limit apply")] = None,
) -> None:
    """Label posts (image + text) with a vision LLM; prints the cost estimate first."""
    from bizsent.jobs import labeling

    c = ctx_of(ctx)
    db = c.db()
    if job is not None:
        _label_job(c, db, job, dry_run)
        return
    params = labeling.resolve(c.settings, provider, model, limit, batch)
    plan = labeling.plan(db, c.settings, params)
    typer.echo(plan.render())
    if dry_run:
        return
    if not plan.items:
        typer.echo("nothing to label: every candidate post already has a label from this labeler")
        return
    from bizsent.core.label.budget import check_caps, money

    labeling.require_key(c.settings, params.provider)
    check_caps(db, c.settings, plan.chosen.usd, len(plan.items), params.limit)
    if not yes and not typer.confirm(f"send {len(plan.items)} requests for about {money(plan.chosen.usd)}?"):
        typer.echo("cancelled; nothing was sent")
        return
    if batch:
        from bizsent.jobs import batches

        typer.echo(batches.submit(db, c.settings, plan).summary())
        return
    from bizsent.core.label.ledger import recover

    interrupted = recover(db, params.provider, params.model)
    if interrupted:
        typer.echo(labeling.interrupted_notice(interrupted), err=True)
    with _label_progress(len(plan.items)) as update:
        report = labeling.run_live(db, c.settings, plan, progress=update, interrupted=interrupted)
    typer.echo(report.summary())
    if report.state == "failed":
        raise typer.Exit(1)


def _label_job(c: Context, db, job_id: int, dry_run: bool) -> None:
    """`bizsent label --job ID`: run a job row queued by the console (or resume a crashed one). Whatever stops
    it before it starts is written to the row too, since a detached run has nobody reading its stderr."""
    from bizsent.core.label.budget import check_caps
    from bizsent.core.label.ledger import recover
    from bizsent.jobs import labeling, rows

    params = labeling.job_params(db, c.settings, job_id)
    plan = labeling.plan(db, c.settings, params)
    typer.echo(plan.render())
    if dry_run:
        return
    try:
        if not plan.items or params.limit == 0:
            rows.take_over(db, job_id, 0)  # refused (JobBusy) when another process runs it
            rows.finish(db, job_id, "done", "nothing left to label")
            typer.echo(f"job {job_id}: nothing left to label")
            return
        labeling.require_key(c.settings, params.provider)
        check_caps(db, c.settings, plan.chosen.usd, len(plan.items), params.limit)
        if params.mode == "batch":
            from bizsent.jobs import batches

            typer.echo(batches.submit(db, c.settings, plan, job_id=job_id).summary())
            return
        interrupted = recover(db, params.provider, params.model)
        if interrupted:
            typer.echo(labeling.interrupted_notice(interrupted), err=True)
        report = labeling.run_live(db, c.settings, plan, interrupted=interrupted, job_id=job_id)
    except rows.JobBusy:
        raise  # another process runs it: its row is not ours to mark
    except BizsentError as exc:
        if (rows.get(db, job_id) or {}).get("state") in ("queued", "running"):
            rows.finish(db, job_id, "failed", str(exc))
        raise
    typer.echo(report.summary())
    if report.state == "failed":
        raise typer.Exit(1)


def _label_progress(total: int):
    """A Rich progress bar on stderr: done/total, rate, ETA, dollars so far."""
    from contextlib import contextmanager

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    @contextmanager
    def bar():
        progress = Progress(TextColumn("labeling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[rate]:.0f}/min ${task.fields[usd]:.4f}"),
                            console=Console(stderr=True), transient=False)
        task = progress.add_task("label", total=total, rate=0.0, usd=0.0)

        def update(snap) -> None:
            progress.update(task, completed=snap.done + snap.failed, total=snap.total, rate=snap.rate_per_min(),
                            usd=snap.usd)

        with progress:
            yield update

    return bar()


@app.command()
def batches(
    ctx: typer.Context,
    action: Annotated[str, typer.Argument(help="list | show | cancel | collect")] = "list",
    job: Annotated[int | None, typer.Argument(help="job id (show, cancel; collect: only this job)")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="collect: keep polling until every batch job is done")]
    = False,
    interval: Annotated[float, typer.Option(help="collect --wait: seconds between polls")] = 60.0,
) -> None:
    """Labeling jobs (live and batch): list, show one, cancel, or collect finished batch results."""
    from bizsent.jobs import batches as batch_jobs

    c = ctx_of(ctx)
    db = c.db(create=False)
    if action == "collect" and wait:
        batch_jobs.collect_until_done(db, c.settings, job, max(0.0, interval), echo=typer.echo)
        return
    typer.echo(batch_jobs.command(db, c.settings, action, job))


@app.command()
def costs(ctx: typer.Context) -> None:
    """API spend from the ledger by provider, model, job and day."""
    from bizsent.jobs.batches import render_costs

    c = ctx_of(ctx)
    typer.echo(render_costs(c.db(create=False), c.settings))


@app.command()
def agreement(
    ctx: typer.Context,
    combine: Annotated[str | None, typer.Option(help="also store a combined training label: dawid-skene | majority")]
    = None,
) -> None:
    """Every labeler against the human test set (accuracy, macro-F1, kappa, confusion) and against each other."""
    from bizsent.core.label.agreement import combine_labels, render_agreement

    c = ctx_of(ctx)
    db = c.db(create=False)
    typer.echo(render_agreement(db))
    if combine:
        typer.echo(combine_labels(db, method=combine).summary())


# ---- training and evaluation (issue 5): dataset, train, eval, predict, selftrain, queue ----

dataset_app = typer.Typer(help="Build training datasets from the store.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


def _stamp() -> str:
    from datetime import datetime

    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _train_settings(c: Context, base_model: str | None, max_pixels: int | None = None):
    update = {k: v for k, v in (("base_model", base_model), ("max_pixels", max_pixels)) if v is not None}
    return c.settings.train.model_copy(update=update)


@dataset_app.command("build")
def dataset_build(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", help="bundle folder (default: data/bundles/<time>)")] = None,
    balance: Annotated[bool, typer.Option("--balance", help="oversample the smaller classes in train")] = False,
    seed: Annotated[int | None, typer.Option(help="split seed (default: train.seed)")] = None,
) -> None:
    """Build train/val/test from the store (leakage-guarded) and export a self-contained bundle."""
    from bizsent.core.model.dataset import build_dataset, export_bundle

    c = ctx_of(ctx)
    ds = build_dataset(c.db(create=False), c.settings.image_dir, c.settings.train, balance=balance, seed=seed)
    folder = out or c.settings.data_dir / "bundles" / _stamp()
    export_bundle(ds, folder, max_pixels=c.settings.train.max_pixels)
    m = ds.manifest
    typer.echo(f"bundle {folder}: train {m['sizes']['train']} {m['counts']['train']}, val {m['sizes']['val']}, "
               f"test {m['sizes']['test']} {m['counts']['test']}; dropped for test leakage: "
               f"{m['dropped']['total']} {m['dropped']['by_reason']}")


@app.command()
def train(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="train on this machine (tiny or real model, same code)")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the estimated peak GPU memory of a training "
                                          "step for the configured model and recipe; load nothing")] = False,
    text_tokens: Annotated[int, typer.Option("--text-tokens", help="text tokens a sequence holds, for --dry-run "
                                             "(prompt + post + answer, padded to the batch's longest)")] = 256,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="continue from the newest checkpoint in "
                                         "the run folder (--name) when there is one")] = True,
    bundle: Annotated[Path | None, typer.Option(help="dataset bundle (default: build one now)")] = None,
    base_model: Annotated[str | None, typer.Option("--base-model", help="model folder or hub name")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="stop after N optimiser steps")] = None,
    four_bit: Annotated[bool | None, typer.Option("--4bit/--no-4bit", help="default: 4-bit on CUDA only")] = None,
    name: Annotated[str | None, typer.Option(help="run name")] = None,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="evaluate on the test split after")] = True,
) -> None:
    """Fine-tune with LoRA; metric events go to the store (the console draws them live)."""
    from bizsent.core.evaluate.report import evaluate_run, render_table
    from bizsent.core.model.dataset import build_dataset, export_bundle
    from bizsent.core.model.training import train_run

    c = ctx_of(ctx)
    cfg = _train_settings(c, base_model)
    if dry_run:
        from bizsent.core.model.memory import estimate_training_memory, render, shape_for

        shape, source = shape_for(cfg.base_model)
        typer.echo(render(estimate_training_memory(cfg, shape, text_tokens=text_tokens), source))
        return
    if not local:
        raise BizsentError("only --local training is available from the CLI yet; add --local (or --dry-run)")
    from bizsent.core.model.modeling import require_model

    require_model(cfg.base_model)  # fail in seconds, before a bundle or a run row is made for nothing
    db = c.db(create=False)
    run_name = name or f"train-{_stamp()}"
    out_dir = c.settings.data_dir / "runs" / run_name
    if bundle is None and resume and (out_dir / "bundle" / "manifest.json").exists():
        bundle = out_dir / "bundle"  # a rerun of a crashed run trains on the data its checkpoints came from
    if bundle is None:
        bundle = export_bundle(build_dataset(db, c.settings.image_dir, cfg), out_dir / "bundle",
                               max_pixels=cfg.max_pixels)
    run_id, result = train_run(db, c.settings, bundle=bundle, out_dir=out_dir, name=run_name, max_steps=max_steps,
                               load_in_4bit=four_bit, jsonl=out_dir / "events.jsonl", cfg=cfg, resume=resume)
    resumed = f" (resumed from {result.resumed_from})" if result.resumed_from else ""
    typer.echo(f"run {run_id} ({run_name}): {result.steps} steps in {result.seconds:.0f}s{resumed}, train loss "
               f"{result.train_loss:.4f}; adapter {result.adapter_dir}")
    if evaluate:
        report, md, _ = evaluate_run(db, c.settings, run_id)
        _print_table(render_table(report))
        typer.echo(f"report: {md}")


def _print_table(table) -> None:
    from rich.console import Console

    Console().print(table)


@app.command("eval")
def eval_(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="run id or name; 'zero-shot' scores the base model without adapter")],
    bundle: Annotated[Path | None, typer.Option(help="bundle for a zero-shot run")] = None,
    cryptobert: Annotated[Path | None, typer.Option(help="local CryptoBERT weights (else published figures)")] = None,
) -> None:
    """Score the run's test split; print and write the report next to the baselines and API labelers."""
    from bizsent.core.evaluate.report import evaluate_run, render_table, zero_shot_run

    c = ctx_of(ctx)
    db = c.db(create=False)
    if run == "zero-shot":
        if bundle is None:
            raise BizsentError("a zero-shot evaluation needs --bundle DIR (from `bizsent dataset build`)")
        run = str(zero_shot_run(db, c.settings, bundle))
    report, md, js = evaluate_run(db, c.settings, run, cryptobert=cryptobert)
    _print_table(render_table(report))
    typer.echo(f"report: {md} and {js}")


@app.command()
def predict(
    ctx: typer.Context,
    post: Annotated[int | None, typer.Argument(help="post id (or use --file)")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="JSONL of {text, image_path} lines, or one image")] = None,
    text: Annotated[str | None, typer.Option("--text", help="post text for a single image (--file)")] = None,
    run: Annotated[str | None, typer.Option(help="run id or name (default: the newest finished training run)")] = None,
) -> None:
    """Class probabilities from a trained run for a stored post, or for posts in a file (one JSON line each)."""
    from bizsent.core.evaluate.report import load_for_run, run_row
    from bizsent.core.model.predict_input import inputs_from_file
    from bizsent.core.model.scoring import ScoreInput, score

    c = ctx_of(ctx)
    if (post is None) == (file is None):
        raise BizsentError("pass either a POST_ID or --file PATH (a JSONL of {text, image_path} or an image + --text)")
    db = c.db(create=False)
    if file is not None:
        items = inputs_from_file(file, text)
    else:
        row = db.execute("SELECT p.text, i.path, p.subject FROM posts p JOIN images i ON i.id = p.image_id"
                         " WHERE p.id = ? AND i.status = 'ok'", [post]).fetchone()
        if row is None:
            raise BizsentError(f"post {post} does not exist or has no usable image; pick a post id from "
                               "`bizsent status`")
        items = [ScoreInput(post, row[0], row[1], row[2] or "")]
    if run is None:
        newest = db.execute("SELECT id FROM runs WHERE kind = 'train' AND state = 'done' ORDER BY id DESC").fetchone()
        if newest is None:
            raise BizsentError("no finished training run; run `bizsent train --local` first or pass --run")
        run = str(newest[0])
    model, processor = load_for_run(run_row(db, run), c.settings)
    for item, result in zip(items, score(model, processor, items, batch_size=c.settings.train.batch_size),
                            strict=True):
        where = {"post_id": item.post_id} if item.post_id is not None else {"image_path": item.image_path}
        typer.echo(json.dumps({**where, "label": result.label, "probs": result.probs}))


@app.command()
def selftrain(
    ctx: typer.Context,
    rounds: Annotated[int, typer.Option(help="at most this many rounds")] = 3,
    precision: Annotated[float, typer.Option(help="target precision of pseudo labels on val")] = 0.9,
    min_support: Annotated[int, typer.Option("--min-support", help="validation predictions a class needs "
                                             "before its threshold is trusted")] = 5,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="optimiser steps per round")] = None,
    base_model: Annotated[str | None, typer.Option("--base-model", help="model folder or hub name")] = None,
) -> None:
    """Pseudo-label confident unlabeled posts and retrain; rounds are chosen on a fixed human validation split,
    the test split is evaluated once, at the end."""
    from bizsent.core.evaluate.report import render_table
    from bizsent.core.model.selftrain import selftrain as run_selftrain

    c = ctx_of(ctx)
    settings = c.settings.model_copy(update={"train": _train_settings(c, base_model)})
    result = run_selftrain(c.db(create=False), settings, c.settings.data_dir / "runs" / f"selftrain-{_stamp()}",
                           rounds=rounds, target_precision=precision, min_support=min_support, max_steps=max_steps,
                           progress=lambda line: typer.echo(line, err=True))
    if result.chosen is not None and result.test is not None:
        from bizsent.core.evaluate.report import Report

        _print_table(render_table(Report(f"selftrain round {result.chosen.round}", result.test)))
    typer.echo(result.summary())


@app.command("score-pool")
def score_pool_(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option(help="run id or name (default: the newest finished training run)")]
    = None,
    limit: Annotated[int | None, typer.Option(help="score at most this many new posts")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="posts per forward pass and commit "
                                                   "(default: train.batch_size)")] = None,
    job: Annotated[int | None, typer.Option("--job", help="run (or resume) this queued score-pool job row")] = None,
) -> None:
    """Score the unlabelled pool with a run (batched, resumable, only posts it has not scored yet)."""
    from bizsent.core.model.pool import score_pool

    c = ctx_of(ctx)
    db = c.db(create=False)
    if job is not None:
        from bizsent.jobs.pool import run_job

        typer.echo(run_job(db, c.settings, job, batch_size=batch_size).summary())
        return
    if limit is not None and limit < 1:
        raise BizsentError("--limit must be at least 1")
    with _count_progress("scoring") as update:
        report = score_pool(db, c.settings, run, batch_size=batch_size, limit=limit, progress=update)
    typer.echo(report.summary())


def _count_progress(what: str):
    """A Rich progress bar on stderr: done/total, rate, ETA (the callback takes done, total)."""
    from contextlib import contextmanager

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    @contextmanager
    def bar():
        progress = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=False)
        task = progress.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        with progress:
            yield update

    return bar()


@app.command()
def queue(
    ctx: typer.Context,
    strategy: Annotated[str, typer.Option(help="uncertainty | random")] = "uncertainty",
    size: Annotated[int, typer.Option(help="posts to print")] = 20,
    run: Annotated[str | None, typer.Option(help="run whose pool predictions rank the posts (default: the newest"
                                            " run that scored the pool)")] = None,
) -> None:
    """The next posts to label by hand: the Label screen's active-learning queue (most uncertain, diverse)."""
    from bizsent.core.evaluate.report import run_row
    from bizsent.core.model.acquisition import human_queue

    c = ctx_of(ctx)
    if strategy not in ("uncertainty", "random"):
        raise BizsentError(f"unknown strategy {strategy!r}; use uncertainty or random")
    db = c.db(create=False)
    run_id = run_row(db, run)["id"] if run is not None else None
    q = human_queue(db, strategy=strategy, run_id=run_id)  # type: ignore[arg-type]
    if strategy == "uncertainty" and not q.scores:
        which = f"run {run_id} has" if run_id is not None else "no run has"
        raise BizsentError(f"{which} scored the pool yet; run `bizsent score-pool` first (or --strategy random)")
    for pid in q.ids[:size]:
        s = q.scores.get(pid)
        typer.echo(json.dumps({"post_id": pid, "label": s.label if s else None, "probs": s.probs if s else None}))


INTERRUPTED = "interrupted; everything already written is kept"


def main() -> None:
    # The commands draw their own progress; the Hugging Face libraries' bars ("Loading weights") would only
    # interleave with it. Read when transformers is first imported, so it is set before any command runs.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Everything the CLI prints goes through the same scrubber as the log, the database and the responses files.
    sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
    try:
        # Not standalone: Typer would turn Ctrl-C into a silent exit 130 (and a Ctrl-C at a prompt into
        # "Aborted!" and exit 1) before the handlers below could say anything.
        code = app(standalone_mode=False)
    except typer.Abort as exc:  # Ctrl-C or end of input at a prompt
        if isinstance(exc.__context__, EOFError):
            typer.echo("no answer (end of input); nothing was done", err=True)
            sys.exit(1)
        _interrupted()
    except typer.TyperException as exc:  # usage errors
        _show_usage_error(exc)
        sys.exit(exc.exit_code)
    except BizsentError as exc:
        typer.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        _interrupted()
    except BrokenPipeError:
        sys.exit(1)
    except OSError as exc:
        if exc.filename is None:  # not a file problem (a socket, say): a bug until shown otherwise
            _internal_error(exc)
        # A file or folder that cannot be written or read is the user's to fix: one line, traceback in the log.
        logging.getLogger("bizsent").exception("file system error")
        typer.echo(f"error: cannot use {exc.filename} ({exc.strerror or exc}); check that it exists and that "
                   "you may write there, or choose another data folder with --db", err=True)
        sys.exit(1)
    except sqlite3.DatabaseError as exc:
        from bizsent.core.store import usage_error

        problem = usage_error(exc, _opened[-1] if _opened else "(none opened)")
        if problem is None:
            _internal_error(exc)
        logging.getLogger("bizsent").exception("database error")
        typer.echo(f"error: {problem}", err=True)
        sys.exit(1)
    except Exception as exc:
        _internal_error(exc)
    if code == 130:  # Typer's own answer to a Ctrl-C inside a command
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted() -> None:
    typer.echo(INTERRUPTED, err=True)
    sys.exit(130)


def _internal_error(exc: BaseException) -> None:
    logging.getLogger("bizsent").exception("internal error")
    typer.echo(f"internal error: {type(exc).__name__}: {redact(str(exc))} (traceback in the log: "
               f"{log_path()})", err=True)
    sys.exit(1)


def _show_usage_error(exc: typer.TyperException) -> None:
    """What Typer prints for a usage error in standalone mode (a framed message, or plain without rich)."""
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"Error: {exc.format_message()}", err=True)


def log_path() -> str:
    path = log_file()
    return str(path) if path else "none: it could not be written, or the config was not read yet"
