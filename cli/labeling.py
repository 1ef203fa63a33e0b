"""Labeling commands: label (live or batch), batches, costs, agreement."""

from __future__ import annotations

from typing import Annotated

import typer
from bizsent.cli.app import Context, app, ctx_of
from bizsent.core.errors import BizsentError


@app.command()
def label(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option(help="openai, gemini, compatible or another registered provider"
                                                      " (default: config)")] = None,
    model: Annotated[str | None, typer.Option(help="model name (default: the provider's in config.toml)")] = None,
    limit: Annotated[int | None, typer.Option(help="label at most this many posts")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="use the provider's Batch API (cheaper, slower)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the estimate; send nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    job: Annotated[int | None, typer.Option("--job", help="run (or resume) this queued job row; its own"
                                            " provider, model, mode and limit apply")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="after the estimate and confirmation, label in the"
                                         " background (see `bizsent jobs`); a batch waits remotely anyway")] = False,
) -> None:
    """Label posts (image + text) with a vision LLM; prints the cost estimate first."""
    from bizsent.core.label import planning
    from bizsent.jobs import labeling
    from bizsent.jobs.label_report import interrupted_notice

    c = ctx_of(ctx)
    db = c.db()
    if job is not None:
        _label_job(c, db, job, dry_run)
        return
    params = planning.resolve(c.settings, provider, model, limit, batch)
    plan = planning.plan(db, c.settings, params)
    typer.echo(plan.render())
    if dry_run:
        return
    from bizsent.core.label.approval import approve
    from bizsent.core.label.budget import money

    approval = approve(db, c.settings, plan)
    if approval.nothing_to_do:
        typer.echo(approval.blocker)
        return
    if approval.error is not None:
        raise approval.error
    if not yes and not typer.confirm(f"send {len(plan.items)} requests for about {money(plan.chosen.usd)}?"):
        typer.echo("cancelled; nothing was sent")
        return
    if batch:
        from bizsent.jobs import batches

        typer.echo(batches.submit(db, c.settings, plan).summary())
        return
    if detach:
        from bizsent.jobs.control import launch_label

        job_id, pid = launch_label(db, c.db_path, c.settings.source, params, c.settings.data_dir / "logs")
        typer.echo(f"job {job_id} (label) started in the background (pid {pid}); follow it with"
                   f" `bizsent jobs show {job_id}`")
        return
    from bizsent.core.label.ledger import recover

    interrupted = recover(db, params.provider, params.model)
    if interrupted:
        typer.echo(interrupted_notice(interrupted), err=True)
    with _label_progress(len(plan.items)) as update:
        report = labeling.run_live(db, c.settings, plan, progress=update, interrupted=interrupted)
    typer.echo(report.summary())
    if report.state == "failed":
        raise typer.Exit(1)


def _label_job(c: Context, db, job_id: int, dry_run: bool) -> None:
    """`bizsent label --job ID`: run a job row queued by the console (or resume a crashed one). Whatever stops
    it before it starts is written to the row too, since a detached run has nobody reading its stderr."""
    from bizsent.core.label import planning
    from bizsent.core.label.approval import approve
    from bizsent.core.label.ledger import recover
    from bizsent.core.store import DatabaseReplaced
    from bizsent.jobs import labeling, rows
    from bizsent.jobs.label_report import interrupted_notice

    params = labeling.job_params(db, c.settings, job_id)
    plan = planning.plan(db, c.settings, params)
    typer.echo(plan.render())
    if dry_run:
        return
    try:
        if not plan.items or params.limit == 0:
            rows.take_over(db, job_id, 0)  # refused (JobBusy) when another process runs it
            rows.finish(db, job_id, "done", "nothing left to label")
            typer.echo(f"job {job_id}: nothing left to label")
            return
        approval = approve(db, c.settings, plan)
        if approval.error is not None:
            raise approval.error
        if params.mode == "batch":
            from bizsent.jobs import batches

            typer.echo(batches.submit(db, c.settings, plan, job_id=job_id).summary())
            return
        interrupted = recover(db, params.provider, params.model)
        if interrupted:
            typer.echo(interrupted_notice(interrupted), err=True)
        report = labeling.run_live(db, c.settings, plan, interrupted=interrupted, job_id=job_id)
    except (rows.JobBusy, rows.Superseded, DatabaseReplaced):
        raise  # another process runs it (its row is not ours to mark), or the file is not the one opened
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
    wait: Annotated[bool, typer.Option("--wait", help="collect: keep polling until every batch job is done, as a"
                                       " batch-collect job of its own (see `bizsent jobs`)")] = False,
    interval: Annotated[float, typer.Option(help="collect --wait: seconds between polls")] = 60.0,
    detach: Annotated[bool, typer.Option("--detach", help="collect --wait: run in the background")] = False,
    collector: Annotated[int | None, typer.Option("--job", help="collect --wait: run (or resume) this"
                                                  " batch-collect job row")] = None,
) -> None:
    """Labeling jobs (live and batch): list, show one, cancel, or collect finished batch results."""
    from bizsent.jobs import batches as batch_jobs

    c = ctx_of(ctx)
    db = c.db(create=False)
    if action == "collect" and (wait or collector is not None):
        if collector is None:
            collector = batch_jobs.queue_collect(db, job, max(0.0, interval))
        if detach:
            from bizsent.jobs.control import start

            pid = start(db, c.db_path, c.settings.source, collector, c.settings.data_dir / "logs")
            typer.echo(f"job {collector} (batch-collect) started in the background (pid {pid})")
            return
        batch_jobs.run_collect_job(db, c.settings, collector, echo=typer.echo)
        return
    typer.echo(batch_jobs.command(db, c.settings, action, job))


@app.command()
def costs(ctx: typer.Context) -> None:
    """API spend from the ledger by provider, model, job and day, and what RunPod pods cost."""
    from bizsent.core.costs import render_costs

    c = ctx_of(ctx)
    typer.echo(render_costs(c.db(create=False), c.settings))


@app.command()
def recover(ctx: typer.Context) -> None:
    """Put back paid answers that never reached the database (a database replaced under a job, a full disk)
    from the raw responses under data/responses/; running it again changes nothing."""
    from bizsent.core.label.recover import recover_answers

    c = ctx_of(ctx)
    typer.echo(recover_answers(c.db(create=False), c.settings).summary())


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


@app.command("label-review")
def label_review(
    ctx: typer.Context,
    session: Annotated[str | None, typer.Option(help="one session, by its start time (default: every session)")]
    = None,
) -> None:
    """Your self-agreement per labeling session (blind repeats on the Label screen) and the disagreements."""
    from bizsent.core.label.repeats import review_lines

    c = ctx_of(ctx)
    for line in review_lines(c.db(create=False), session):
        typer.echo(line)
