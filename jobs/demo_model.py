"""The demo model as one job: build the tiny random Qwen2.5-VL (core.demo.model), train it a few steps, evaluate
it and score the pool, so a newcomer's Eval, Spot-check and active-learning queue show live data on a CPU in
about a minute, at no cost (`bizsent demo-model`, the console's Eval `m`).

Each stage is a row of its existing kind (train, eval, score-pool), queued and run in this process one after the
other, so the Jobs screen lists them and each can be resumed as usual; the `demo-model` row carries the chain's
progress (stage N of 4). A cancel of the chain stops it before its next stage (a stage's own cancel stops that
stage, and the chain with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.errors import Cancelled
from bizsent.jobs import rows

KIND = "demo-model"
RUN_NAME = "demo-tiny"
STEPS = 8  # enough for the loss to fall and two validation evaluations, small enough for a minute on a laptop
STAGES = ("build the tiny model", "train", "evaluate", "score the pool")
# Measured on the 300-post demo store (`bizsent demo-model --yes`, 2-core machine shared with other work).
SECONDS_ON_A_CPU = 60


def offer(steps: int = STEPS) -> str:
    """What the confirmation says: what the chain does, how long, and that it costs nothing."""
    return (f"Build the tiny demo model (a random Qwen2.5-VL, 2 MB), train it {steps} steps on this store, evaluate "
            "it (on the human dev split, or on the test split when there is no dev split: the demo has none, and "
            "that look at the test set is counted) and score the pool for Spot-check and the active-learning "
            f"order? About {SECONDS_ON_A_CPU} s on a CPU, in the background (Jobs follows it); it costs nothing "
            "(no API, no pod). Its figures mean nothing: it shows the pipeline working.")


def params(data_dir: Path, steps: int = STEPS) -> dict[str, Any]:
    from bizsent.core.demo.model import demo_model_dir

    return {"model_dir": str(demo_model_dir(data_dir).absolute()), "steps": steps}


def launch(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, data_dir: Path,
           log_dir: Path | str) -> tuple[int, int]:
    """Queue the chain and run it detached: (job id, pid). One at a time: a second would train the same model."""
    from bizsent.core.errors import BizsentError
    from bizsent.core.model.modeling import INSTALL_HINT, training_stack_missing
    from bizsent.jobs.control import launch as launch_kind
    from bizsent.jobs.states import status

    missing = training_stack_missing()
    if missing:
        raise BizsentError(f"the demo model needs {missing}, which is not installed; {INSTALL_HINT}")
    for job in rows.listing(db, KIND):
        if status(job) in ("starting", "running"):
            raise BizsentError(f"the demo model is already being built (job {job['id']}); Jobs (F3) follows it")
    return launch_kind(db, db_path, config_path, KIND, params(data_dir), log_dir)


def _stage(db: sqlite_utils.Database, job_id: int, beat: Any, done: int) -> None:
    state = rows.progress(db, job_id, done=done, failed=0, total=len(STAGES), counts={"stage": STAGES[done - 1]},
                          epoch=beat.epoch)
    if state == "cancelled" or beat.cancelled.is_set():
        raise Cancelled(f"job {job_id} cancelled after: {STAGES[done - 1]}")


def _eval_split(bundle: Path) -> str:
    from bizsent.core.model.dataset import read_manifest

    return "dev" if read_manifest(bundle).get("sizes", {}).get("dev") else "test"


def run(db: sqlite_utils.Database, settings: Any, job_id: int) -> int:
    """Run (or rerun) the chain in this process; returns the trained run's id."""
    from bizsent.core.demo.model import DEMO_TRAIN, ensure_demo_model
    from bizsent.jobs import pool, training
    from bizsent.jobs.heartbeat import running

    p = rows.get(db, job_id)["params"]  # type: ignore[index]
    with running(db, job_id, total=len(STAGES)) as beat:
        model = ensure_demo_model(Path(p["model_dir"]))
        _stage(db, job_id, beat, 1)
        name = f"{RUN_NAME}-{job_id}"  # its own run folder: a second demo never trips over the first's checkpoints
        train_job = rows.queue(db, training.TRAIN, training.train_params(
            name, bundle=None, base_model=str(model), max_steps=p["steps"], four_bit=False, evaluate=False,
            resume=False, train_settings=DEMO_TRAIN))
        outcome = training.run_train(db, settings, train_job)
        _stage(db, job_id, beat, 2)
        bundle = settings.data_dir / "runs" / name / "bundle"  # where the train job exported it (jobs.training)
        eval_job = rows.queue(db, training.EVAL, training.eval_params(
            str(outcome.run_id), bundle=None, cryptobert=None, split=_eval_split(bundle)))
        training.run_eval(db, settings, eval_job)
        _stage(db, job_id, beat, 3)
        pool.run_job(db, settings, pool.queue(db, outcome.run_id))
        _stage(db, job_id, beat, 4)
    return outcome.run_id
