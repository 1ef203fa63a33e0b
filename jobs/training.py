"""Training and evaluation as jobs: `bizsent train --local` and `bizsent eval` run a `train` / `eval` row with
a heartbeat, in the foreground or detached (`--detach`, the console), and resume with `--job ID`.

A train job records everything its command line said (params), so a resume trains the same run on the same
bundle: the trainer continues from the newest checkpoint in the run folder, the run row (runs.job_id) is the
same, and the job's progress is the optimiser step. A cancel stops training at the end of the step in hand.
An eval job scores a run's test split; it cannot stop between steps, so a cancel interrupts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError, Cancelled
from bizsent.jobs import rows
from bizsent.jobs.heartbeat import Beat, running

TRAIN, EVAL = "train", "eval"


def _absolute(path: Path | str | None) -> str | None:
    """A path as the row records it: absolute, since a detached child runs in another folder (jobs.launch)."""
    return str(Path(path).expanduser().absolute()) if path else None


def train_params(name: str, *, bundle: Path | None, base_model: str | None, max_steps: int | None,
                 four_bit: bool | None, evaluate: bool, resume: bool,
                 train_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a train row records. `train_settings` overrides [train] keys for this run only (the demo model's pixel
    budget and learning rate), so a resume trains with them too."""
    # A base model is a hub name or a folder; only a folder that exists here is made absolute.
    local_model = base_model and Path(base_model).expanduser().exists()
    return {"name": name, "bundle": _absolute(bundle),
            "base_model": _absolute(base_model) if local_model else base_model, "max_steps": max_steps,
            "four_bit": four_bit, "evaluate": evaluate, "resume": resume, "train_settings": train_settings or {}}


def eval_params(run: str, *, bundle: Path | None, cryptobert: Path | None, split: str = "dev") -> dict[str, Any]:
    return {"run": run, "bundle": _absolute(bundle), "cryptobert": _absolute(cryptobert), "split": split}


@dataclass(slots=True)
class TrainOutcome:
    job_id: int
    run_id: int
    result: Any  # core.model.training.TrainResult
    report: Any = None  # core.evaluate.result.Report, when the job evaluated the run (on the dev split)
    report_path: Path | None = None
    note: str = ""  # why the run was not evaluated


def _job(db: sqlite_utils.Database, job_id: int, kind: str) -> dict[str, Any]:
    return rows.of_kind(db, job_id, kind)


def _step_callback(db: sqlite_utils.Database, job_id: int, beat: Beat) -> Any:
    from transformers import TrainerCallback

    class JobProgress(TrainerCallback):
        """Each optimiser step: progress to the job row, and a clean stop once the row says 'cancelled'."""

        def on_step_end(self, args, state, control, **kwargs):
            written = rows.progress(db, job_id, done=state.global_step, failed=0, total=state.max_steps,
                                    counts={"epoch": state.epoch}, epoch=beat.epoch)
            if written == "cancelled" or beat.cancelled.is_set():
                raise Cancelled(f"job {job_id} cancelled at step {state.global_step}; its checkpoints stay")

    return JobProgress()


def run_train(db: sqlite_utils.Database, settings: Any, job_id: int) -> TrainOutcome:
    """Run (or resume) train job `job_id` in this process."""
    from bizsent.core.model.dataset import build_dataset, export_bundle
    from bizsent.core.model.training import train_run

    p = _job(db, job_id, TRAIN)["params"]
    update = {**p.get("train_settings", {}), **({"base_model": p["base_model"]} if p.get("base_model") else {})}
    cfg = settings.train.model_copy(update=update)
    out_dir = settings.data_dir / "runs" / p["name"]
    with running(db, job_id) as beat:
        bundle = Path(p["bundle"]) if p.get("bundle") else None
        if bundle is None and p.get("resume", True) and (out_dir / "bundle" / "manifest.json").exists():
            bundle = out_dir / "bundle"  # a rerun of a crashed run trains on the data its checkpoints came from
        if bundle is None:
            bundle = export_bundle(build_dataset(db, settings.image_dir, cfg), out_dir / "bundle",
                                   max_pixels=cfg.max_pixels)
        earlier = db.execute("SELECT id FROM runs WHERE job_id = ? AND kind = 'train' AND state != 'done'"
                             " ORDER BY id DESC LIMIT 1", [job_id]).fetchone()
        run_id, result = train_run(db, settings, bundle=bundle, out_dir=out_dir, name=p["name"],
                                   max_steps=p.get("max_steps"), load_in_4bit=p.get("four_bit"),
                                   jsonl=out_dir / "events.jsonl", cfg=cfg, resume=p.get("resume", True),
                                   callbacks=[_step_callback(db, job_id, beat)], job_id=job_id,
                                   run_id=earlier[0] if earlier else None)
        outcome = TrainOutcome(job_id, run_id, result)
        if p.get("evaluate", True):  # on the dev split: the test split is scored on request (`eval --test`)
            from bizsent.core.evaluate.report import evaluate_run
            from bizsent.core.model.dataset import read_manifest

            if read_manifest(bundle).get("sizes", {}).get("dev"):
                outcome.report, outcome.report_path, _ = evaluate_run(db, settings, run_id, split="dev")
            else:
                outcome.note = ("not evaluated: the bundle's human dev split is empty (label more posts on the "
                                f"train split); score the test split on request: `bizsent eval {run_id} --test`")
    return outcome


def run_eval(db: sqlite_utils.Database, settings: Any, job_id: int) -> tuple[Any, Path, Path]:
    """Run eval job `job_id` in this process: (report, report.md, report.json)."""
    from bizsent.core.evaluate.report import evaluate_run, zero_shot_run

    p = _job(db, job_id, EVAL)["params"]
    with running(db, job_id, interrupt_on_cancel=True) as beat:
        run = p["run"]
        if run == "zero-shot":
            if not p.get("bundle"):
                raise BizsentError("a zero-shot evaluation needs --bundle DIR (from `bizsent dataset build`)")
            run = str(zero_shot_run(db, settings, Path(p["bundle"])))
        out = evaluate_run(db, settings, run, cryptobert=Path(p["cryptobert"]) if p.get("cryptobert") else None,
                           split=p.get("split", "test"))  # eval jobs from before the dev split scored test
        rows.progress(db, job_id, done=1, failed=0, total=1, counts={"report": str(out[1])}, epoch=beat.epoch)
    return out


def launch_eval(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, run: int | str,
                log_dir: Path | str, split: str = "dev") -> tuple[int, int]:
    """Evaluate `run` on `split` in a detached eval job (the console's `e` for dev, `T` for test): (job id,
    pid). One at a time per run."""
    from bizsent.jobs.control import launch
    from bizsent.jobs.states import status

    for job in reversed(rows.listing(db, EVAL)):
        if job["params"].get("run") == str(run) and status(job) in ("starting", "running"):
            raise BizsentError(f"run {run} is already being evaluated (job {job['id']}, pid {job['pid']})")
    return launch(db, db_path, config_path, EVAL, eval_params(str(run), bundle=None, cryptobert=None, split=split),
                  log_dir)
