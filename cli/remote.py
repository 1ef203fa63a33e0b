"""The CLI's side of pod jobs (`train|eval|score-pool --pod`): the plan and its price shown before anything is
created, a yes asked (or --yes), one progress line on stderr as it changes, Ctrl-C ending in one line that says
what became of the pod. `pod-work` is the command the in-pod agent runs for a scoring task (hidden: not for users).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from bizsent.cli.app import Context, app, ctx_of


def run_pod_job(c: Context, job: int, runner: Callable[..., Any], yes: bool) -> Any:
    """Run pod job `job` with `runner` (jobs.pod_run.run, jobs.pod_eval.run, ...) in this process."""
    from bizsent.jobs.pod_task import PodInterrupted

    def confirm(plan: Any) -> bool:
        typer.echo("\n".join(plan.render()), err=True)
        if yes or typer.confirm("start this pod?"):
            return True
        typer.echo("nothing was started", err=True)
        return False

    shown = {"line": ""}

    def report(progress: Any) -> None:
        line = f"job {job}: {progress.line()}"
        if line != shown["line"]:
            shown["line"] = line
            typer.echo(line, err=True)

    try:
        return runner(c.db(create=False), c.settings, job, confirm=confirm, report=report)
    except PodInterrupted as exc:  # one line that says what became of the pod, instead of the generic one
        typer.echo(str(exc), err=True)
        sys.exit(130)


def is_pod_job(db: Any, job: int | None, kind: str) -> bool:
    """Is job row `job` of pod kind `kind` (a `--job ID` resumes it on its pod)?"""
    from bizsent.jobs import rows

    row = rows.get(db, job) if job is not None else None
    return row is not None and row["kind"] == kind


def eval_on_pod(c: Context, run: str | None, test: bool, zero_shot: bool, yes: bool, job: int | None) -> None:
    """`bizsent eval RUN --pod`: queue (or resume) a pod-eval job and run it here."""
    from bizsent.core.errors import BizsentError
    from bizsent.core.model.loading import run_row
    from bizsent.jobs import pod_eval, rows

    if job is None:
        if run is None or run == "zero-shot":
            raise BizsentError("name the trained run to evaluate on a pod: `bizsent eval RUN --pod` (the zero-shot"
                               " base model is scored beside it)")
        db = c.db(create=False)
        pod_eval.run_adapter(run_row(db, run))  # no adapter here: one line now, before a job row is made
        job = rows.queue(db, pod_eval.POD_EVAL, pod_eval.eval_params(run, split="test" if test else "dev",
                                                                     zero_shot=zero_shot))
    pod_task_done(run_pod_job(c, job, pod_eval.run, yes), job)


def pool_on_pod(c: Context, run: str | None, limit: int | None, batch_size: int | None, yes: bool,
                job: int | None) -> None:
    """`bizsent score-pool --pod`: queue (or resume) a pod-pool job and run it here."""
    from bizsent.core.model.pool import resolve_run
    from bizsent.jobs import pod_pool, rows

    if job is None:
        db = c.db(create=False)
        info = resolve_run(db, run)
        job = rows.queue(db, pod_pool.POD_POOL, pod_pool.pool_params(info["id"], limit=limit, batch_size=batch_size))
    pod_task_done(run_pod_job(c, job, pod_pool.run, yes), job)


def selftrain_on_pod(c: Context, params: dict[str, Any], yes: bool, job: int | None) -> None:
    """`bizsent selftrain --pod`: queue (or resume) a pod-selftrain job and run it here."""
    from bizsent.jobs import pod_selftrain, rows

    if job is None:
        job = rows.queue(c.db(create=False), pod_selftrain.POD_SELFTRAIN, pod_selftrain.selftrain_params(**params))
    pod_task_done(run_pod_job(c, job, pod_selftrain.run, yes), job)


def pod_task_done(out: Any, job: int) -> None:
    if out is not None:
        typer.echo(f"job {job}: {out.summary}; pod {out.pod_id} terminated (RunPod confirms it is gone), cost"
                   f" ${out.usd:.4f}")


@app.command("pod-work", hidden=True)
def pod_work(ctx: typer.Context,
             workdir: Annotated[Path, typer.Option("--workdir", help="the agent's run folder")]) -> None:
    """Run the scoring task of the pod's job.json (the in-pod agent calls this; see jobs.pod_work)."""
    from bizsent.jobs.pod_work import run_pod_work

    typer.echo(f"bizsent pod-work: result in {run_pod_work(ctx_of(ctx).settings, workdir)}")
