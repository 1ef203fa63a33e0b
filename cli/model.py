"""Model commands: dataset build, train, eval, predict, selftrain, score-pool, queue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from bizsent.cli.app import Context, app, count_progress, ctx_of, detach_or_run, print_table, stamp
from bizsent.core.errors import BizsentError

dataset_app = typer.Typer(help="Build training datasets from the store.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


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
    """Build train/val/dev/test from the store (leakage-guarded, reposts grouped) and export a bundle."""
    from bizsent.core.model.dataset import build_dataset, export_bundle

    c = ctx_of(ctx)
    ds = build_dataset(c.db(create=False), c.settings.image_dir, c.settings.train, balance=balance, seed=seed)
    folder = out or c.settings.data_dir / "bundles" / stamp()
    export_bundle(ds, folder, max_pixels=c.settings.train.max_pixels)
    m = ds.manifest
    typer.echo(f"bundle {folder}: train {m['sizes']['train']} {m['counts']['train']}, val {m['sizes']['val']}, "
               f"dev {m['sizes']['dev']} (human), test {m['sizes']['test']} {m['counts']['test']}; dropped (test "
               f"leakage, reposts of dev posts): {m['dropped']['total']} {m['dropped']['by_reason']}")


@app.command()
def train(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="train on this machine (tiny or real model, same code)")]
    = False,
    pod: Annotated[bool, typer.Option("--pod", help="train on a RunPod GPU: price shown first, then create, upload,"
                                      " watch, download the adapter, terminate (docs/pods.md)")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="--pod: start the pod without asking (the price and"
                                      " kill switches are still printed)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the estimated peak GPU memory of a training "
                                          "step (typical and longest batch of --bundle) and of a pool-scoring batch;"
                                          " load nothing")] = False,
    text_tokens: Annotated[int, typer.Option("--text-tokens", help="text tokens a sequence holds, for --dry-run "
                                             "(prompt + post + answer, padded to the batch's longest)")] = 256,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="continue from the newest checkpoint in "
                                         "the run folder (--name) when there is one")] = True,
    bundle: Annotated[Path | None, typer.Option(help="dataset bundle (default: build one now)")] = None,
    base_model: Annotated[str | None, typer.Option("--base-model", help="model folder or hub name")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="stop after N optimiser steps")] = None,
    four_bit: Annotated[bool | None, typer.Option("--4bit/--no-4bit", help="default: 4-bit on CUDA only")] = None,
    name: Annotated[str | None, typer.Option(help="run name")] = None,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="evaluate on the human dev split after, with "
                                           "--pod on the same pod (the test split: `bizsent eval RUN --test`)")]
    = True,
    detach: Annotated[bool, typer.Option("--detach", help="run as a background job (see `bizsent jobs`)")] = False,
    job: Annotated[int | None, typer.Option("--job", help="run (or resume) this train job row with the options"
                                            " it recorded")] = None,
) -> None:
    """Fine-tune with LoRA as a job (heartbeat, cancel, resume); metric events go to the store."""
    from bizsent.core.evaluate.report import render_table
    from bizsent.jobs import rows, training

    c = ctx_of(ctx)
    if dry_run:
        from bizsent.core.model.batches import dry_run as memory_dry_run

        typer.echo(memory_dry_run(_train_settings(c, base_model), bundle=bundle, text_tokens=text_tokens))
        return
    if pod:
        if local:
            raise BizsentError("choose --local or --pod, not both")
        _train_on_pod(c, name or f"pod-{stamp()}", max_steps, yes, job, evaluate)
        return
    if not local:
        raise BizsentError("train where? add --local (this machine), --pod (a RunPod GPU) or --dry-run")
    db = c.db(create=False)
    if job is None:
        from bizsent.core.model.modeling import require_model

        require_model(_train_settings(c, base_model).base_model)  # fail in seconds, before a row is made
        job = rows.queue(db, training.TRAIN, training.train_params(
            name or f"train-{stamp()}", bundle=bundle, base_model=base_model, max_steps=max_steps,
            four_bit=four_bit, evaluate=evaluate, resume=resume))
    if detach_or_run(c, db, job, detach):
        return
    out = training.run_train(db, c.settings, job)
    result = out.result
    resumed = f" (resumed from {result.resumed_from})" if result.resumed_from else ""
    typer.echo(f"job {job}: run {out.run_id}: {result.steps} steps in {result.seconds:.0f}s{resumed}, train loss "
               f"{result.train_loss:.4f}; adapter {result.adapter_dir}")
    if out.report is not None:
        print_table(render_table(out.report))
        typer.echo(f"report: {out.report_path}")
    if out.note:
        typer.echo(out.note)


def _train_on_pod(c: Context, name: str, max_steps: int | None, yes: bool, job: int | None, evaluate: bool) -> None:
    """The whole pod chain in this process (jobs.pod_run), one progress line on stderr; Ctrl-C terminates the pod.
    With --eval (the default) the same pod evaluates the new adapter on the human dev split after training."""
    from bizsent.cli.remote import run_pod_job
    from bizsent.jobs import pod_run, rows

    if job is None:
        job = rows.queue(c.db(create=False), pod_run.POD, pod_run.params(name, max_steps=max_steps,
                                                                         evaluate=evaluate))
    out = run_pod_job(c, job, pod_run.run, yes)
    if out is not None:
        typer.echo(f"job {job}: run {out.run_id} trained on pod {out.pod_id}; adapter {out.adapter_dir}"
                   f" (sha256 {out.sha256[:16]}, verified); pod terminated (RunPod confirms it is gone), cost"
                   f" ${out.usd:.4f}. Next: `bizsent eval {out.run_id}`")


@app.command("eval")
def eval_(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="run id or name; 'zero-shot' scores the base model without "
                                              "adapter")] = None,
    bundle: Annotated[Path | None, typer.Option(help="bundle for a zero-shot run")] = None,
    cryptobert: Annotated[Path | None, typer.Option(help="local CryptoBERT weights (else published figures)")] = None,
    test: Annotated[bool, typer.Option("--test", help="score the human test split (counted: the report says how "
                                       "many times this test set has been scored) instead of dev")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="run as a background job (see `bizsent jobs`)")] = False,
    job: Annotated[int | None, typer.Option("--job", help="run this eval job row")] = None,
    pod: Annotated[bool, typer.Option("--pod", help="evaluate on a RunPod GPU, the zero-shot base model first "
                                      "(price shown first; README \"Evaluating on a pod\")")] = False,
    zero_shot: Annotated[bool, typer.Option("--zero-shot/--no-zero-shot", help="--pod: also score the base model "
                                            "without adapter on the same posts")] = True,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="--pod: start the pod without asking")] = False,
) -> None:
    """Score the run's human dev split (or with --test its test split) as a job; print and write the report next
    to the baselines and API labelers."""
    from bizsent.core.evaluate.report import render_table
    from bizsent.core.model.loading import run_row
    from bizsent.jobs import rows, training

    c = ctx_of(ctx)
    db = c.db(create=False)
    from bizsent.cli.remote import eval_on_pod, is_pod_job

    if pod or is_pod_job(db, job, "pod-eval"):
        eval_on_pod(c, run, test, zero_shot, yes, job)
        return
    if job is None:
        if run is None:
            raise BizsentError("name the run to evaluate: `bizsent eval RUN` (id or name, or zero-shot)")
        if run == "zero-shot" and bundle is None:
            raise BizsentError("a zero-shot evaluation needs --bundle DIR (from `bizsent dataset build`)")
        if run != "zero-shot":
            run_row(db, run)  # an unknown run fails now, in one line, before a job row is made
        job = rows.queue(db, training.EVAL, training.eval_params(run, bundle=bundle, cryptobert=cryptobert,
                                                                  split="test" if test else "dev"))
    if detach_or_run(c, db, job, detach):
        return
    report, md, js = training.run_eval(db, c.settings, job)
    print_table(render_table(report))
    typer.echo(f"report: {md} and {js}")


def _predict_items(c: Context, db, post: int | None, file: Path | None, text: str | None) -> list:
    from bizsent.core.model.predict_input import inputs_from_file
    from bizsent.core.model.scoring import ScoreInput

    if (post is None) == (file is None):
        raise BizsentError("pass either a POST_ID or --file PATH (a JSONL of {text, image_path} or an image + --text)")
    if file is not None:
        return inputs_from_file(file, text)
    row = db.execute("SELECT p.text, i.path, p.subject FROM posts p JOIN images i ON i.id = p.image_id"
                     " WHERE p.id = ? AND i.status = 'ok'", [post]).fetchone()
    if row is None:
        raise BizsentError(f"post {post} does not exist or has no usable image; pick a post id from `bizsent status`")
    return [ScoreInput(post, row[0], row[1], row[2] or "")]


def _where(item) -> dict:
    return {"post_id": item.post_id} if item.post_id is not None else {"image_path": item.image_path}


@app.command()
def predict(
    ctx: typer.Context,
    post: Annotated[int | None, typer.Argument(help="post id (or use --file)")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="JSONL of {text, image_path} lines, or one image")] = None,
    text: Annotated[str | None, typer.Option("--text", help="post text for a single image (--file)")] = None,
    run: Annotated[str | None, typer.Option(help="run id or name (default: the newest finished training run)")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="a deployed RunPod serverless endpoint ID: "
                                                 "score there (billed) instead of on this machine")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="send more than one post to --endpoint without asking")]
    = False,
) -> None:
    """Class probabilities from a trained run for a stored post, or for posts in a file (one JSON line each);
    with --endpoint, from a deployed serverless worker instead of this machine."""
    c = ctx_of(ctx)
    db = c.db(create=False)
    items = _predict_items(c, db, post, file, text)
    if endpoint is not None:
        if run is not None:
            raise BizsentError("--run picks a local run; an endpoint scores with the adapter it was deployed with")
        _predict_on_endpoint(c, endpoint, items, yes)
        return
    from bizsent.core.model.loading import load_for_run, run_row
    from bizsent.core.model.scoring import score

    if run is None:
        newest = db.execute("SELECT id FROM runs WHERE kind = 'train' AND state = 'done' ORDER BY id DESC").fetchone()
        if newest is None:
            raise BizsentError("no finished training run; run `bizsent train --local` first or pass --run")
        run = str(newest[0])
    model, processor = load_for_run(run_row(db, run), c.settings)
    for item, result in zip(items, score(model, processor, items, batch_size=c.settings.train.batch_size),
                            strict=True):
        typer.echo(json.dumps({**_where(item), "label": result.label, "probs": result.probs}))


def _predict_on_endpoint(c: Context, endpoint: str, items: list, yes: bool) -> None:
    """Each post to the endpoint, one request each (image and text together), after the estimate and, for more
    than one post, a yes."""
    from bizsent.core.config import secret
    from bizsent.core.serve.endpoint import EndpointClient, check_endpoint_id, estimate, job_input

    cfg = c.settings.serverless
    check_endpoint_id(endpoint)
    key = secret("runpod")
    cost = estimate(cfg, len(items))
    typer.echo(f"{len(items)} post(s) to endpoint {endpoint}: at most about ${cost.usd:.4f} from a cold start "
               f"({cost.formula}; estimate, see docs/serving.md)", err=True)
    if len(items) > 1 and not yes and not typer.confirm(f"send {len(items)} posts for about ${cost.usd:.4f}?"):
        typer.echo("nothing was sent", err=True)
        return
    client = EndpointClient(c.settings.runpod.serverless_base, endpoint, key, cfg)
    typer.echo(f"waiting for endpoint {endpoint}'s answers: up to {client.answer_within_s:g} s a request"
               f" (serverless.wait_s), {cfg.max_wait_s:g} s while queued (serverless.max_wait_s)", err=True)
    executed = 0.0
    try:
        for item in items:
            answer = client.predict(job_input(item.text, item.image_path, item.subject))
            executed += answer.execution_s
            typer.echo(json.dumps({**_where(item), "label": answer.label, "probs": answer.probabilities,
                                   "latency_ms": answer.latency_ms}))
    finally:
        client.close()
    typer.echo(f"{len(items)} post(s) scored; the endpoint reports {executed:.1f} s of execution, about "
               f"${executed * cfg.usd_per_s:.4f} at ${cfg.usd_per_s:g}/s (its start-up and idle time are billed "
               "too)", err=True)


@app.command()
def selftrain(
    ctx: typer.Context,
    rounds: Annotated[int, typer.Option(help="at most this many rounds")] = 3,
    precision: Annotated[float, typer.Option(help="target precision of pseudo labels on val")] = 0.9,
    min_support: Annotated[int, typer.Option("--min-support", help="validation predictions a class needs "
                                             "before its threshold is trusted")] = 5,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="optimiser steps per round")] = None,
    base_model: Annotated[str | None, typer.Option("--base-model", help="model folder or hub name")] = None,
    pod: Annotated[bool, typer.Option("--pod", help="run the rounds on a RunPod GPU (price shown first)")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="--pod: start the pod without asking")] = False,
    job: Annotated[int | None, typer.Option("--job", help="--pod: run (or resume) this pod-selftrain job row")]
    = None,
) -> None:
    """Pseudo-label confident unlabeled posts and retrain; rounds are chosen on a fixed human validation split,
    the test split is evaluated once, at the end."""
    from bizsent.core.evaluate.report import render_table
    from bizsent.core.model.selftrain import selftrain as run_selftrain

    c = ctx_of(ctx)
    if pod or job is not None:
        from bizsent.cli.remote import selftrain_on_pod

        selftrain_on_pod(c, dict(rounds=rounds, precision=precision, min_support=min_support, max_steps=max_steps),
                         yes, job)
        return
    settings = c.settings.model_copy(update={"train": _train_settings(c, base_model)})
    result = run_selftrain(c.db(create=False), settings, c.settings.data_dir / "runs" / f"selftrain-{stamp()}",
                           rounds=rounds, target_precision=precision, min_support=min_support, max_steps=max_steps,
                           progress=lambda line: typer.echo(line, err=True))
    if result.chosen is not None and result.test is not None:
        from bizsent.core.evaluate.result import Report

        print_table(render_table(Report(f"selftrain round {result.chosen.round}", result.test)))
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
    detach: Annotated[bool, typer.Option("--detach", help="run as a background job (see `bizsent jobs`)")] = False,
    pod: Annotated[bool, typer.Option("--pod", help="score on a RunPod GPU (price shown first); images go up at "
                                      "the run's pixel budget")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="--pod: start the pod without asking")] = False,
) -> None:
    """Score the unlabelled pool with a run (batched, resumable, only posts it has not scored yet)."""
    from bizsent.core.model.pool import score_pool

    c = ctx_of(ctx)
    db = c.db(create=False)
    from bizsent.cli.remote import is_pod_job, pool_on_pod

    if pod or is_pod_job(db, job, "pod-pool"):
        pool_on_pod(c, run, limit, batch_size, yes, job)
        return
    if detach and job is None:
        if limit is not None and limit < 1:
            raise BizsentError("--limit must be at least 1")
        from bizsent.jobs.pool import queue

        job = queue(db, run, limit, batch_size)
    if detach_or_run(c, db, job, detach):
        return
    if job is not None:
        from bizsent.jobs.pool import run_job

        typer.echo(run_job(db, c.settings, job, batch_size=batch_size).summary())
        return
    if limit is not None and limit < 1:
        raise BizsentError("--limit must be at least 1")
    with count_progress("scoring") as update:
        report = score_pool(db, c.settings, run, batch_size=batch_size, limit=limit, progress=update)
    typer.echo(report.summary())



@app.command()
def queue(
    ctx: typer.Context,
    strategy: Annotated[str, typer.Option(help="uncertainty | random")] = "uncertainty",
    size: Annotated[int, typer.Option(help="posts to print")] = 20,
    run: Annotated[str | None, typer.Option(help="run whose pool predictions rank the posts (default: the newest"
                                            " run that scored the pool)")] = None,
) -> None:
    """The next posts to label by hand: the Label screen's active-learning queue (most uncertain, diverse)."""
    from bizsent.core.model.acquisition import human_queue
    from bizsent.core.model.loading import run_row

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




@app.command("demo-model")
def demo_model(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="start without asking")] = False,
    steps: Annotated[int, typer.Option("--steps", help="optimiser steps of the training")] = 8,
    detach: Annotated[bool, typer.Option("--detach", help="run as a background job (see `bizsent jobs`)")] = False,
    job: Annotated[int | None, typer.Option("--job", help="run (or resume) this demo-model job row")] = None,
) -> None:
    """Build the tiny demo model, train it a few steps, evaluate it and score the pool (CPU, about a minute,
    free): Eval, Spot-check and the active-learning order then show live data."""
    from bizsent.jobs import demo_model as chain
    from bizsent.jobs import rows

    c = ctx_of(ctx)
    db = c.db(create=False)
    if job is None:
        if steps < 1:
            raise BizsentError("--steps must be at least 1")
        if not yes and not typer.confirm(chain.offer(steps)):
            typer.echo("nothing started")
            return
        job = rows.queue(db, chain.KIND, chain.params(c.settings.data_dir, steps))
    if detach_or_run(c, db, job, detach):
        return
    run_id = chain.run(db, c.settings, job)
    typer.echo(f"job {job}: demo model trained as run {run_id}, evaluated, and the pool scored: see Eval (F4) and "
               "Spot-check (F5) in `bizsent`")
