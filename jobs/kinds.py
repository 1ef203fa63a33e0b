"""The job kinds of this checkout, registered on the registry of jobs.states (the jobs package loads this module
first, so every process that runs or lists jobs knows them all).

Adding a kind is one `register(Kind(...))` here; launching, cancelling, resuming and listing (jobs.control,
jobs.views, `bizsent jobs`, the console's Jobs screen) then work for it unchanged. A kind's cancel may call into
its job module; no job module imports this one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlite_utils
from bizsent.jobs.states import Job, Kind, register


def _always(job: Job) -> bool:
    return True


def _label_batch(job: Job) -> bool:
    return job["params"].get("mode") == "batch"


def _cancel_label(db: sqlite_utils.Database, settings: Any, job: Job) -> str:
    from bizsent.jobs import batches

    return batches.cancel(db, settings, job["id"])


def _run_of(job: Job) -> str:
    run = job["params"].get("run_id") or job["params"].get("run")
    return f"run {run}" if run is not None else "newest run"


def _eval_of(job: Job) -> str:
    """`eval run 1 on dev`: an eval row and a pool-scoring row of one run read differently."""
    split = job["params"].get("split")
    return f"eval {_run_of(job)}" + (f" on {split}" if split else "")


def _scoring_of(job: Job) -> str:
    return f"score pool, {_run_of(job)}"


register(Kind(
    "label", lambda i: ["label", "--job", str(i), "--yes"],
    lambda j: f"{j['params'].get('provider', '?')}/{j['params'].get('model', '?')} {j['params'].get('mode', 'live')}",
    resumable=lambda j: not _label_batch(j), cancel=_cancel_label, waits_remotely=_label_batch,
    cancel_says=lambda p: "its remote batches are cancelled at the provider" if p.get("mode") == "batch"
    else "it stops before its next request"))
register(Kind(
    "batch-collect", lambda i: ["batches", "collect", "--wait", "--job", str(i)],
    lambda j: f"collect label job {j['params']['label_job']}" if j["params"].get("label_job")
    else "collect every open batch", resumable=_always))
register(Kind("train", lambda i: ["train", "--local", "--job", str(i)],
              lambda j: f"{j['params'].get('name', '?')} ({j['params'].get('max_steps') or 'all'} steps)",
              resumable=_always))
register(Kind("eval", lambda i: ["eval", "--job", str(i)], _eval_of, resumable=_always, interrupt_on_cancel=True))
register(Kind("score-pool", lambda i: ["score-pool", "--job", str(i)], _scoring_of, resumable=_always))
register(Kind("read-images", lambda i: ["read-images", "--job", str(i)], lambda j: "read the text on images (OCR)",
              resumable=_always))


def _cancel_pod(db: sqlite_utils.Database, settings: Any, job: Job) -> str:
    from bizsent.jobs import pod_task

    return pod_task.cancel(db, settings, job)


register(Kind("pod", lambda i: ["train", "--pod", "--job", str(i), "--yes"],
              lambda j: f"{j['params'].get('name', '?')} on RunPod ({j['params'].get('max_steps') or 'all'} steps)",
              resumable=_always, cancel=_cancel_pod,
              cancel_says=lambda p: "its pod is terminated within seconds, in any phase (RunPod confirms it is gone),"
              " and its run ends cancelled; no adapter is collected",
              done_says=lambda p: f"next: e on the Eval screen evaluates run {p.get('name', '?')} (on a pod when its"
              " base model is not on this machine; the plan and price are asked first)"))


def _collect_what(job: Job) -> str:
    from bizsent.jobs.collect import describe

    return describe(job)


register(Kind("collect", lambda i: ["scrape", "--job", str(i)], _collect_what, resumable=_always,
              interrupt_on_cancel=True, unit="rounds",
              cancel_says=lambda p: "it stops at once while it waits for the next round, or mid-round as Ctrl-C"
              " would"))


register(Kind("demo-model", lambda i: ["demo-model", "--job", str(i)],
              lambda j: f"demo model: build, train {j['params'].get('steps', '?')} steps, evaluate, score the pool",
              resumable=_always,
              cancel_says=lambda p: "it stops before its next stage (build, train, evaluate, score the pool)"))


# The other pod work (jobs.pod_task): the same cancel, resume and money rules as the `pod` kind.
def _pod_kind(name: str, command: list[str], describe: Callable[[Job], str]) -> None:
    register(Kind(name, lambda i: [*command, "--pod", "--job", str(i), "--yes"], describe, resumable=_always,
                  cancel=_cancel_pod, cancel_says=lambda p: "its pod is terminated within seconds, in any phase"
                  " (RunPod confirms it is gone); nothing it scored so far is stored"))


_pod_kind("pod-eval", ["eval"], lambda j: f"{_run_of(j)} on its {j['params'].get('split', 'dev')} split on RunPod")
_pod_kind("pod-pool", ["score-pool"], lambda j: f"pool with {_run_of(j)} on RunPod")
_pod_kind("pod-selftrain", ["selftrain"], lambda j: f"{j['params'].get('rounds', '?')} self-training rounds on RunPod")
