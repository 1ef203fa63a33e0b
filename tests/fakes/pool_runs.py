"""A real (non-4-bit) training run on the tiny model, built once per session, and a way to register it in any
test store: the pool tests then score with the real code instead of inserting predictions by hand.

Not 4-bit on purpose: bitsandbytes' CPU 4-bit path fails on some CPUs (AVX512-BF16), and pool scoring does not
depend on how the weights are stored.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils
from fakes.train import seed_store, tiny_model_dir, tiny_settings

_BUILT: dict[str, dict] = {}
ROOT = Path(__file__).resolve().parents[2]


def fp32_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{"base_model", "adapter", "params"} of a one-step LoRA run on the tiny model in full precision."""
    if "run" not in _BUILT:
        from bizsent.core.model.dataset import build_dataset, export_bundle
        from bizsent.core.model.loading import run_row
        from bizsent.core.model.training import train_run
        from bizsent.core.store import open_db

        base = tmp_path_factory.mktemp("fp32-run")
        settings = tiny_settings(base, tiny_model_dir(tmp_path_factory))
        db = open_db(settings.db_path)
        seed_store(db, settings.image_dir, n_train=6, n_test=3, n_unlabeled=0)
        bundle = export_bundle(build_dataset(db, settings.image_dir, settings.train), base / "bundle",
                               max_pixels=settings.train.max_pixels)
        run_id, result = train_run(db, settings, bundle=bundle, out_dir=base / "run", name="tiny-fp32",
                                   max_steps=1, load_in_4bit=False)
        row = run_row(db, run_id)
        db.close()
        _BUILT["run"] = {"base_model": row["base_model"], "adapter": str(result.adapter_dir),
                         "params": row["params"]}
    return _BUILT["run"]


def register_run(db: sqlite_utils.Database, run: dict, name: str = "tiny-fp32") -> int:
    """The shared run as a finished training run of `db` (same base model and adapter on disk)."""
    from bizsent.core.model.events import create_run, finish_run

    run_id = create_run(db, kind="train", name=name, base_model=run["base_model"], params=run["params"])
    finish_run(db, run_id, "done", run["adapter"])
    return run_id


def bizsent(settings, *args: str) -> subprocess.CompletedProcess:
    """`bizsent --config CONFIG ARGS...` as a user runs it, on this checkout's code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", "from bizsent.cli import main; main()", "--config",
                           str(settings.source), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
