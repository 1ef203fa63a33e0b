"""RunPod commands: pods list | gpus | reap | stop | terminate (the key comes from RUNPOD_API_KEY only)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Annotated

import typer
from bizsent.cli.app import app, ctx_of

pods_app = typer.Typer(help="RunPod pods: what is running and billing, prices, and cleaning up orphans.",
                       no_args_is_help=True)
app.add_typer(pods_app, name="pods")

Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]


@pods_app.command("list")
def pods_list(ctx: typer.Context) -> None:
    """Every pod of the account with status, $/h and cost so far; marks bizsent orphans; updates the database."""
    from bizsent.core.pods import api, orphans

    c = ctx_of(ctx)
    db = c.db()
    with api.client(c.settings) as client, _saying_if_slow(f"waiting for RunPod ({client.api_base}) to list the"
                                                           f" account's pods; up to {client.timeout_s:g} s a call"
                                                           " (runpod.timeout_s)", client.timeout_s):
        account = orphans.survey(db, client, c.settings)
        vanished = orphans.reconcile(db, client, account)
    typer.echo(orphans.render(account, c.settings))
    for row in vanished:
        typer.echo(f"pod {row.pod_id} ({row.name}) is no longer on RunPod; the database now says so")


@contextlib.contextmanager
def _saying_if_slow(line: str, timeout_s: float) -> Iterator[None]:
    """Print `line` to stderr once the block has waited a while (2 s, or half the bound): never silent waiting."""
    timer = threading.Timer(min(2.0, timeout_s / 2), lambda: typer.echo(line, err=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pods_app.command("gpus")
def pods_gpus(ctx: typer.Context) -> None:
    """Price and current stock of the configured GPU types, in the order a pod start tries them."""
    from bizsent.core.pods import api, plan

    c = ctx_of(ctx)
    with api.client(c.settings) as client:
        chosen, refused = plan.candidates(plan.read_offers(client, c.settings), c.settings)
    conf = c.settings.runpod
    typer.echo(f"tried in this order (max ${conf.max_usd_per_hour:.2f}/h):")
    for i, candidate in enumerate(chosen, 1):
        typer.echo(f"  {i}. {candidate.label()}")
    for gpu, cloud, why in refused:
        typer.echo(f"  skipped: {gpu} ({cloud}): {why}")
    if not chosen:
        typer.echo("no configured GPU can be used; change runpod.gpu_types or runpod.max_usd_per_hour")


@pods_app.command("reap")
def pods_reap(ctx: typer.Context, yes: Yes = False) -> None:
    """Terminate bizsent pods nobody will stop (unknown to the database, or finished there), and stopped ones whose
    adapter is stored here (their volume bills by the month). Others untouched."""
    from bizsent.core.pods import api, orphans

    c = ctx_of(ctx)
    db = c.db()
    with api.client(c.settings) as client:
        found = [a for a in orphans.survey(db, client, c.settings) if a.reapable]
        if not found:
            typer.echo("no orphan pods: nothing to reap")
            return
        for a in found:
            typer.echo(f"{'orphan' if a.orphan else 'stopped'} {a.pod.id} {a.pod.name} ({a.pod.status},"
                       f" ${a.pod.usd_per_hour:.2f}/h, ${a.usd_so_far:.2f} so far): {a.why}{a.storage_note}")
        if not yes and not typer.confirm(f"terminate these {len(found)} pod(s)?"):
            typer.echo("cancelled; nothing was terminated")
            return
        for pod_id, usd in orphans.reap(db, client, c.settings, found):
            typer.echo(f"pod {pod_id} terminated (RunPod confirms it is gone); cost ${usd:.2f}")


def _act(ctx: typer.Context, pod_id: str, action: str, yes: bool) -> None:
    from bizsent.core.pods import api
    from bizsent.jobs.pod_run import stop_or_terminate

    c = ctx_of(ctx)
    db = c.db()
    with api.client(c.settings) as client:
        pod = client.get_pod(pod_id)
        if pod is None:
            typer.echo(f"RunPod has no pod {pod_id}; nothing to {action}")
            return
        mine = "" if pod.name.startswith(c.settings.runpod.name_prefix) else " (not a bizsent pod)"
        if not yes and not typer.confirm(f"{action} pod {pod.id} {pod.name}{mine} ({pod.status},"
                                         f" ${pod.usd_per_hour:.2f}/h)?"):
            typer.echo(f"cancelled; pod {pod_id} was not touched")
            return
        typer.echo(stop_or_terminate(db, client, pod_id, action))


@pods_app.command("stop")
def pods_stop(ctx: typer.Context, pod: Annotated[str, typer.Argument(help="RunPod pod id")], yes: Yes = False
              ) -> None:
    """Stop a pod: its GPU is released and billing mostly stops; its disk stays until terminated."""
    _act(ctx, pod, "stop", yes)


@pods_app.command("terminate")
def pods_terminate(ctx: typer.Context, pod: Annotated[str, typer.Argument(help="RunPod pod id")],
                   yes: Yes = False) -> None:
    """Terminate a pod and confirm with RunPod that it is gone; its cost goes into `bizsent costs`."""
    _act(ctx, pod, "terminate", yes)


@pods_app.command("start")
def pods_start(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="run name (default: pod-<time>)")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="stop after N optimiser steps")] = None,
    yes: Yes = False,
) -> None:
    """Train on a RunPod GPU in the background: shows the price, then runs `train --pod` as a job (see `bizsent
    jobs`, `bizsent pods tail RUN`)."""
    from bizsent.cli.app import stamp
    from bizsent.jobs import pod_run

    c = ctx_of(ctx)
    db = c.db(create=False)
    run_name = pod_run.check_name(name or f"pod-{stamp()}")
    plan = pod_run.plan_run(db, c.settings, run_name, max_steps)
    typer.echo("\n".join(plan.render()))
    if not yes and not typer.confirm("start this pod?"):
        typer.echo("nothing was started")
        return
    job_id, pid = pod_run.launch_run(db, c.db_path, c.settings.source, c.settings, run_name, max_steps)
    typer.echo(f"job {job_id} started in the background (pid {pid}); follow it with `bizsent pods tail {run_name}`"
               f" or `bizsent jobs show {job_id}`")


@pods_app.command("tail")
def pods_tail(ctx: typer.Context, run: Annotated[str, typer.Argument(help="run name")]) -> None:
    """Follow a run's pod: its container and system log and its new metric events, until the run ends."""
    from bizsent.jobs import pod_tail

    c = ctx_of(ctx)
    for line in pod_tail.follow(c.db(create=False), c.settings, run):
        typer.echo(line)
