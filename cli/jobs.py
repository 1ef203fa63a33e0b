"""`bizsent jobs`: every long-running job of every kind (label, batch-collect, train, eval, score-pool, ...)."""

from __future__ import annotations

from typing import Annotated

import typer
from bizsent.cli.app import app, ctx_of
from bizsent.core.errors import BizsentError

ACTIONS = ("list", "show", "cancel", "resume")


@app.command()
def jobs(
    ctx: typer.Context,
    action: Annotated[str, typer.Argument(help="list | show | cancel | resume")] = "list",
    job: Annotated[int | None, typer.Argument(help="job id (show, cancel, resume)")] = None,
    kind: Annotated[str | None, typer.Option(help="list: only jobs of this kind (label, train, eval, ...)")] = None,
) -> None:
    """Jobs of every kind with their status (a job whose heartbeat stopped shows dead), progress and heartbeat
    age; cancel one, or resume a dead, queued or failed one in the background."""
    from bizsent.jobs import control, views

    c = ctx_of(ctx)
    if action not in ACTIONS:
        raise BizsentError(f"unknown action {action!r}; use {', '.join(ACTIONS)}")
    db = c.db(create=False)
    if action == "list":
        typer.echo(views.render_list(views.listing(db, kind or "")))
        return
    if job is None:
        raise BizsentError(f"`bizsent jobs {action}` needs a job id; see `bizsent jobs`")
    if action == "show":
        typer.echo(views.render_job(views.one(db, job)))
    elif action == "cancel":
        typer.echo(control.cancel(db, c.settings, job))
    else:
        pid = control.resume(db, c.db_path, c.settings.source, job, c.settings.data_dir / "logs")
        typer.echo(f"job {job} resumed in the background (pid {pid}); follow it with `bizsent jobs show {job}`")
