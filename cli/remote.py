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
