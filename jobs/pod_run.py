"""Training on a RunPod GPU as one job of kind 'pod': `bizsent train --pod` runs it in the foreground, `bizsent
pods start` and the console's Pods screen detached (`launch`); `--job ID` resumes it.

The chain is jobs.pod_task's, shared by every kind of pod work; what training adds (`TrainTask`): the plan (the
dataset bundle built as `train --local` builds it, its training examples priced on the configured GPUs), the
`train` run its metric events go to, and the collect: download the adapter, verify its sha256, register the run as
done, mark it collected. With `--eval` (`evaluate` in the params) the same pod then evaluates the run as `bizsent
eval RUN --pod` does (jobs.pod_eval), saving a second start-up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.model.events import MetricEvent, create_run, finish_run, reopen_run, set_params
from bizsent.core.pods import api, plan
from bizsent.core.pods.agent.job import RUN_NAME
from bizsent.core.pods.channel import AgentChannel, AgentHealth
from bizsent.core.pods.launch import PodHandle
from bizsent.core.pods.payload import Payload, prepare_payload
from bizsent.jobs.pod_task import PodInterrupted as PodInterrupted
from bizsent.jobs.pod_task import cancel as cancel
from bizsent.jobs.pod_task import run_task
from bizsent.jobs.pod_task import stop_or_terminate as stop_or_terminate
from bizsent.jobs.pod_watch import JobWriter, Progress

POD = "pod"


@dataclass(frozen=True, slots=True)
class PodRunPlan:
    name: str
    bundle: Path
    train_examples: int
    max_steps: int | None
    total_steps: int
    pod: plan.PodPlan
    eval_posts: int | None = None  # the human dev posts the same pod then scores (0: asked, but dev is empty)

    @property
    def total(self) -> int:
        return self.total_steps

    def render(self) -> list[str]:
        limit = f" (--max-steps {self.max_steps})" if self.max_steps else ""
        lines = [f"run {self.name}: {self.total_steps} optimiser steps{limit} on bundle {self.bundle}"]
        if self.eval_posts:
            lines.append(f"then, on the same pod (no second start-up), the new adapter is evaluated on the human dev"
                         f" split ({self.eval_posts} posts); the test split stays here (`bizsent eval RUN --pod"
                         " --test`)")
        elif self.eval_posts == 0:
            lines.append("no evaluation after training: the bundle's human dev split is empty (label more posts on"
                         " the train split)")
        return [*lines, *self.pod.render().splitlines()]


@dataclass(frozen=True, slots=True)
class PodOutcome:
    job_id: int
    run_id: int
    pod_id: str
    adapter_dir: Path
    sha256: str
    usd: float


def check_name(name: str) -> str:
    """A run name the pod's agent accepts (its rule, core.pods.agent.job.RUN_NAME): it names folders there and here."""
    if not RUN_NAME.fullmatch(name):
        raise BizsentError(f"run name {name!r} cannot name a pod run; use up to 64 letters, digits, '.', '-' or '_'")
    return name


def params(name: str, *, max_steps: int | None = None, evaluate: bool = False) -> dict[str, Any]:
    return {"name": check_name(name), "max_steps": max_steps, "evaluate": evaluate}


def run_bundle(db: sqlite_utils.Database, settings: Settings, name: str) -> Path:
    """The run's dataset bundle, data/runs/<name>/bundle, built from the store as `train --local` builds it (kept:
    a resumed run trains on the data it started with)."""
    from bizsent.core.model.dataset import build_dataset, export_bundle

    folder = settings.data_dir / "runs" / name / "bundle"
    if (folder / "manifest.json").exists():
        return folder
    return export_bundle(build_dataset(db, settings.image_dir, settings.train), folder,
                         max_pixels=settings.train.max_pixels)


def plan_run(db: sqlite_utils.Database, settings: Settings, name: str, max_steps: int | None = None, *,
             client: api.RunpodClient | None = None, evaluate: bool = False) -> PodRunPlan:
    """Build the bundle, count its training examples (and with `evaluate` its human dev posts, scored on the same
    pod after training) and price the configured GPUs: what the user confirms."""
    from bizsent.core.model.dataset import read_manifest

    check_name(name)
    bundle = run_bundle(db, settings, name)
    examples = int(read_manifest(bundle)["sizes"].get("train", 0))
    if examples == 0:
        raise BizsentError(f"the bundle {bundle} has no training examples; label posts first (`bizsent label`)")
    cfg = settings.train
    per_step = cfg.batch_size * cfg.grad_accum
    steps = math.ceil(examples * cfg.epochs / per_step)
    if max_steps:
        steps = min(steps, max_steps)
    dev = int(read_manifest(bundle)["sizes"].get("dev", 0)) if evaluate else None
    if client is None:
        with api.client(settings) as own:
            pod_plan = plan.plan_pod(own, settings, name, examples, steps * per_step / examples, scored_posts=dev or 0)
    else:
        pod_plan = plan.plan_pod(client, settings, name, examples, steps * per_step / examples, scored_posts=dev or 0)
    return PodRunPlan(name, bundle, examples, max_steps, steps, pod_plan, dev)


def launch_run(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, settings: Settings,
               name: str, max_steps: int | None = None) -> tuple[int, int]:
    """Queue a pod job and run it detached (`bizsent train --pod --job ID --yes`): (job id, pid). The caller has
    shown `plan_run(...).render()` and got a yes."""
    from bizsent.jobs.control import launch as launch_job

    return launch_job(db, db_path, config_path, POD, params(name, max_steps=max_steps), settings.data_dir / "logs")




def _payload(settings: Settings, name: str, p: dict[str, Any], evaluate: bool) -> Payload:
    # The human test split stays here (core.pods.payload.pack_bundle); dev goes up for the evaluation after training.
    return prepare_payload(settings, run_bundle_path(settings, name), settings.data_dir / "runs" / name / "payload",
                           name=name, max_steps=p.get("max_steps"), evaluate=False,
                           args={"split": "dev", "targets": ["model"]} if evaluate else None)


def run_bundle_path(settings: Settings, name: str) -> Path:
    return settings.data_dir / "runs" / name / "bundle"


def _run_row(db: sqlite_utils.Database, settings: Settings, job_id: int, name: str, p: dict[str, Any]) -> int:
    """The job's `train` run: the same row on a resume, else a new one, as `train --local` records it."""
    from bizsent.core.model.dataset import read_manifest

    earlier = db.execute("SELECT id FROM runs WHERE job_id = ? AND kind = 'train' ORDER BY id DESC LIMIT 1",
                         [job_id]).fetchone()
    if earlier is not None:
        reopen_run(db, earlier[0])
        return earlier[0]
    cfg, bundle = settings.train, run_bundle_path(settings, name)
    return create_run(db, kind="train", name=name, base_model=cfg.base_model, manifest=read_manifest(bundle),
                      params={"bundle": str(bundle), "out_dir": str(bundle.parent), "max_steps": p.get("max_steps"),
                              "load_in_4bit": None, "train": cfg.model_dump(mode="json"), "where": "runpod"},
                      job_id=job_id)


def _trained_with(adapter_dir: Path) -> dict | None:
    """The versions the adapter's run info records (core.model.run_info.stack_versions)."""
    try:
        return json.loads((adapter_dir / "bizsent.json").read_text(encoding="utf-8")).get("versions")
    except (OSError, ValueError):
        return None



def run(db: sqlite_utils.Database, settings: Settings, job_id: int, *, confirm: Callable[[PodRunPlan], bool],
        report: Callable[[Progress], None] = lambda p: None) -> PodOutcome | None:
    """Run (or resume) pod job `job_id` in this process; None when the plan was not confirmed."""
    tasks: list[TrainTask] = []

    def task_of(job: dict) -> TrainTask:
        tasks.append(TrainTask(db, settings, job))
        return tasks[-1]

    out = run_task(db, settings, job_id, task_of, kinds=(POD,), confirm=confirm, report=report)
    if out is None:
        return None
    task = tasks[0]
    assert task.run_id is not None and task.sha256 is not None
    return PodOutcome(job_id, task.run_id, out.pod_id, task.adapter_dir, task.sha256, out.usd)


class TrainTask:
    """Training, as jobs.pod_task runs it: one `train` run, the adapter as the result."""

    def __init__(self, db: sqlite_utils.Database, settings: Settings, job: dict[str, Any]) -> None:
        from bizsent.core.model.dataset import read_manifest

        self.db, self.settings, self.job = db, settings, job
        self.name = job["params"]["name"]
        self.run_id: int | None = None
        self.sha256: str | None = None
        self.folder = run_bundle_path(settings, self.name).parent
        bundle = run_bundle_path(settings, self.name)
        # evaluated on the same pod after training when asked and the human dev split has posts (as `train --local`)
        self.evaluate = bool(job["params"].get("evaluate")) and (bundle / "manifest.json").exists() and bool(
            read_manifest(bundle)["sizes"].get("dev"))
        self.adapter_dir = self.folder / ("result/adapter" if self.evaluate else "adapter")

    def plan(self, client: api.RunpodClient) -> PodRunPlan:
        found = plan_run(self.db, self.settings, self.name, self.job["params"].get("max_steps"), client=client,
                         evaluate=bool(self.job["params"].get("evaluate")))
        self.evaluate = bool(found.eval_posts)
        self.adapter_dir = self.folder / ("result/adapter" if self.evaluate else "adapter")
        return found

    def payload(self) -> Payload:
        return _payload(self.settings, self.name, self.job["params"], self.evaluate)

    def open_runs(self, resumed: bool) -> None:
        self.run_id = _run_row(self.db, self.settings, self.job["id"], self.name, self.job["params"])

    def started(self, handle: PodHandle) -> None:
        assert self.run_id is not None
        set_params(self.db, self.run_id, pod_id=handle.pod_id, gpu=handle.gpu, cloud=handle.cloud)

    def run_of(self, event: MetricEvent) -> int | None:
        return self.run_id

    def collect(self, channel: AgentChannel, writer: JobWriter, health: AgentHealth) -> str:
        assert self.run_id is not None
        # the adapter tar (with the evaluation: the result tar, the adapter in it), checked against the pod's sha256
        sha = (channel.download_result(self.adapter_dir.parent, "adapter and its dev scores") if self.evaluate
               else channel.download_result(self.adapter_dir, "adapter"))
        finish_run(self.db, self.run_id, "done", str(self.adapter_dir))
        # What the pod trained with: its GPU check (host, driver, torch build) and the library versions.
        set_params(self.db, self.run_id, adapter_sha256=sha, gpu_check=health.gpu,
                   versions=_trained_with(self.adapter_dir))
        writer.progress.extra["adapter_sha256"] = self.sha256 = sha
        said = f"run {self.run_id}: adapter {self.adapter_dir} (sha256 {sha[:16]}, verified)"
        if self.evaluate:
            said += "; " + self._store_evaluation()
        channel.mark_collected(sha)
        return said

    def _store_evaluation(self) -> str:
        """The dev evaluation the pod ran after training, stored as a local `bizsent eval RUN` stores it."""
        from bizsent.core.evaluate.report import finish_evaluation, run_row, split_rows
        from bizsent.core.model.score_file import read_scores

        bundle = run_bundle_path(self.settings, self.name)
        report, md, _ = finish_evaluation(self.db, run_row(self.db, self.run_id), bundle, split_rows(bundle, "dev"),
                                          read_scores(self.adapter_dir.parent / "model.jsonl"), split="dev")
        return f"dev accuracy {report.model.accuracy:.3f}, macro-F1 {report.model.macro_f1:.3f}; report {md}"

    def end_runs(self, state: str) -> None:
        """End the run `state`, unless its adapter is already stored (then only the pod's end went wrong)."""
        if self.run_id is not None and self.sha256 is None:
            finish_run(self.db, self.run_id, state)
