"""Evaluation on a RunPod GPU as a job of kind 'pod-eval' (`bizsent eval RUN --pod`): the pod scores the run's
human dev split (or, with --test, its test split) with the same engine as `bizsent eval` (core.evaluate.report
.score_split, run by jobs.pod_work), and first the untrained base model on the same posts (zero-shot), each as its
own run here. Live events come back through the watch channel into those runs, so the Eval screen's matrix fills
in as on a local evaluation; the scores come back as a checksummed tar and become predictions, the final eval
event and the report here (core.evaluate.report.finish_evaluation), as a local evaluation stores them.

Only the evaluated split goes up: the human test labels go to a pod for a --test evaluation only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.evaluate.live import clear_live
from bizsent.core.evaluate.report import SPLITS, finish_evaluation, run_row, split_rows
from bizsent.core.model.events import MetricEvent, create_run, finish_run, set_params
from bizsent.core.pods import api, plan
from bizsent.core.pods.channel import AgentChannel, AgentHealth
from bizsent.core.pods.launch import PodHandle
from bizsent.core.pods.payload import Payload, prepare_payload
from bizsent.jobs.pod_task import TaskPlan, plan_queued
from bizsent.jobs.pod_watch import JobWriter

POD_EVAL = "pod-eval"
ZERO_SHOT, MODEL = "zero-shot", "model"  # the targets a pod evaluation scores, in this order


def eval_params(run: str, *, split: str = "dev", zero_shot: bool = True) -> dict[str, Any]:
    if split not in SPLITS:
        raise BizsentError(f"unknown split {split!r}; evaluate on one of {', '.join(SPLITS)}")
    return {"run": str(run), "split": split, "zero_shot": zero_shot}


def pod_work_name(kind: str, job_id: int, run_name: str) -> str:
    """The pod job's folder and pod name: the kind, the job and the run, in the agent's RUN_NAME alphabet."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{kind}{job_id}-{run_name}")[:64]


def run_adapter(info: dict) -> Path:
    """The run's adapter on this machine: it goes up to the pod with the bundle."""
    adapter = info["adapter_path"]
    if not adapter or not Path(adapter).is_dir():
        raise BizsentError(f"run {info['id']} has no adapter on this machine ({info['state']}); pick a finished "
                           "training run")
    return Path(adapter)


def run_cfg(settings: Settings, info: dict) -> Any:
    """The training settings the pod scores with: the run's base model and its input rule."""
    recorded = info["params"].get("train", {})
    keep = {k: recorded[k] for k in ("max_pixels", "quantize_vision") if k in recorded}
    return settings.train.model_copy(update={"base_model": info["base_model"], **keep})


class EvalTask:
    """Evaluation, as jobs.pod_task runs it: a zero-shot run and the trained run, scores as the result."""

    def __init__(self, db: sqlite_utils.Database, settings: Settings, job: dict[str, Any]) -> None:
        p = job["params"]
        self.db, self.settings, self.job_id, self.split = db, settings, job["id"], p["split"]
        self.info = run_row(db, p["run"])
        self.adapter = run_adapter(self.info)
        self.bundle = Path(self.info["params"].get("bundle", ""))
        self.rows = split_rows(self.bundle, self.split)
        self.targets = [ZERO_SHOT, MODEL] if p.get("zero_shot", True) else [MODEL]
        self.name = pod_work_name("eval", job["id"], self.info["name"])
        self.folder = settings.data_dir / "runs" / self.name
        self.runs: dict[str, int] = {MODEL: self.info["id"]}
        self.collected = False

    def plan(self, client: api.RunpodClient) -> TaskPlan:
        posts = len(self.rows) * len(self.targets)
        pod_plan = plan.plan_pod(client, self.settings, self.name, 0, 0.0, scored_posts=posts)
        also = " and the base model without adapter (zero-shot)" if ZERO_SHOT in self.targets else ""
        line = (f"evaluate run {self.info['id']} ({self.info['name']}){also} on the human {self.split} split:"
                f" {len(self.rows)} posts each")
        return TaskPlan([line], pod_plan, posts)

    def payload(self) -> Payload:
        return prepare_payload(self.settings, self.bundle, self.folder / "payload", name=self.name,
                               cfg=run_cfg(self.settings, self.info), task="eval",
                               load_in_4bit=self.info["params"].get("load_in_4bit"),
                               args={"split": self.split, "targets": self.targets}, splits=(self.split,),
                               extra={"adapter": self.adapter})

    def open_runs(self, resumed: bool) -> None:
        if ZERO_SHOT in self.targets:
            self.runs[ZERO_SHOT] = self._zero_shot_run()
        for run_id in self.runs.values():
            clear_live(self.db, run_id, self.split)

    def _zero_shot_run(self) -> int:
        """This job's zero-shot run (the same row on a resume): the base model on the same bundle, named so."""
        from bizsent.core.model.dataset import read_manifest

        earlier = self.db.execute("SELECT id FROM runs WHERE job_id = ? AND kind = 'eval'", [self.job_id]).fetchone()
        if earlier is not None:
            return earlier[0]
        cfg = run_cfg(self.settings, self.info)
        return create_run(self.db, kind="eval", name=f"{self.info['name']}-zero-shot", base_model=cfg.base_model,
                          manifest=read_manifest(self.bundle), job_id=self.job_id,
                          params={"bundle": str(self.bundle), "out_dir": str(self.folder / ZERO_SHOT),
                                  "train": cfg.model_dump(mode="json"), "zero_shot": True, "where": "runpod",
                                  "load_in_4bit": self.info["params"].get("load_in_4bit")})

    def started(self, handle: PodHandle) -> None:
        if ZERO_SHOT in self.runs:
            set_params(self.db, self.runs[ZERO_SHOT], pod_id=handle.pod_id, gpu=handle.gpu, cloud=handle.cloud)

    def run_of(self, event: MetricEvent) -> int | None:
        return self.runs.get(str(event.data.get("target") or MODEL))

    def collect(self, channel: AgentChannel, writer: JobWriter, health: AgentHealth) -> str:
        from bizsent.core.model.score_file import read_scores

        result = self.folder / "result"
        sha = channel.download_result(result, "scores")  # verified against the pod's sha256
        said = []
        for target in self.targets:  # zero-shot first: the trained run's report shows it beside the model
            info = run_row(self.db, self.runs[target])
            report, md, _ = finish_evaluation(self.db, info, self.bundle, self.rows,
                                              read_scores(result / f"{target}.jsonl"), split=self.split)
            if target == ZERO_SHOT:
                finish_run(self.db, info["id"], "done")
            said.append(f"run {info['id']} ({info['name']}) accuracy {report.model.accuracy:.3f}, macro-F1"
                        f" {report.model.macro_f1:.3f}; report {md}")
        self.collected = True
        writer.progress.extra["result_sha256"] = sha
        channel.mark_collected(sha)
        return f"{self.split} split: " + "; ".join(said)

    def end_runs(self, state: str) -> None:
        for run_id in self.runs.values():
            clear_live(self.db, run_id, self.split)
        if ZERO_SHOT in self.runs and not self.collected:
            finish_run(self.db, self.runs[ZERO_SHOT], state)


def run(db: sqlite_utils.Database, settings: Settings, job_id: int, **kwargs: Any) -> Any:
    """Run (or resume) pod-eval job `job_id` in this process (jobs.pod_task.run_task's confirm and report)."""
    from bizsent.jobs.pod_task import run_task

    return run_task(db, settings, job_id, lambda job: EvalTask(db, settings, job), kinds=(POD_EVAL,), **kwargs)


def plan_for_console(db: sqlite_utils.Database, settings: Settings, run_id: int, split: str
                     ) -> tuple[int, TaskPlan] | None:
    """The Eval screen's `e` and `T` for a run whose adapter and bundle are here but whose base model is not (the
    7B trained on RunPod, on a laptop): a queued pod-eval row and its plan, for the user to confirm
    (jobs.pod_pool.start_planned) or not (drop_planned); None when the run is for this machine to evaluate."""
    from bizsent.core.model.modeling import model_here

    info = run_row(db, run_id)
    adapter, bundle = info["adapter_path"], info["params"].get("bundle")
    if model_here(info["base_model"] or "") or not (adapter and Path(adapter).is_dir() and bundle
                                                    and Path(bundle).is_dir()):
        return None  # evaluated here, or refused here in one line with what is missing (core.evaluate.runs)
    return plan_queued(db, settings, POD_EVAL, eval_params(str(run_id), split=split),
                       lambda job: EvalTask(db, settings, job))
