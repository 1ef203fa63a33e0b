"""`bizsent selftrain --pod` end to end through the real CLI, offline: the fake RunPod runs the real agent, which
runs the self-training rounds of `bizsent selftrain` on a snapshot of the store (posts, labels, images at the
pixel budget); the laptop merges each round's run, the chosen round's adapter and test predictions back, and the
pod is terminated."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tarfile
from pathlib import Path

from bizsent.core.model.events import run_events
from fakes.pod_run import pod_rig
from PIL import Image


def test_selftrain_on_a_pod_completes_a_round(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir, unlabeled=4) as rig:
        out = rig.cli("selftrain", "--pod", "--yes", "--rounds", "1", "--max-steps", "1", "--precision", "0",
                      "--min-support", "1")
        assert out.returncode == 0, out.stderr[-3000:]
        assert "self-train up to 1 rounds on 12 labelled posts" in out.stderr and "expected cost: about $" in out.stderr
        assert "terminated (RunPod confirms it is gone)" in out.stdout and "reached 1 rounds" in out.stdout
        assert rig.fake.billing_now() == [] and rig.fake.pods == {}
        with contextlib.closing(rig.db()) as db:
            job_id, state = db.execute("SELECT id, state FROM jobs WHERE kind = 'pod-selftrain'").fetchone()
            run_id, name, run_state, adapter, params = db.execute(
                "SELECT id, name, state, adapter_path, params FROM runs WHERE job_id = ?", [job_id]).fetchone()
            events = run_events(db, run_id)
            test_preds = db.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND post_id IN (SELECT post_id"
                                    " FROM labels WHERE split = 'test')", [run_id]).fetchone()[0]
        # the round's run is here, done, with its training and evaluation events and the chosen adapter
        assert state == "done" and name == f"pod{job_id}-selftrain-r0" and run_state == "done"
        assert json.loads(params)["where"] == "runpod"
        assert (Path(adapter) / "adapter_model.safetensors").stat().st_size > 0
        assert [e.step for e in events if e.kind == "train"] == [1]
        (test_event,) = [e for e in events if e.kind == "eval" and e.data.get("split") == "test"]
        assert sum(map(sum, test_event.confusion)) == 3 and test_preds == 3  # the test split, scored once
        # what went up: the store's posts, labels and images at the pixel budget, nothing else of the user's
        folder = rig.settings.data_dir / "runs" / f"selftrain{job_id}-pod"
        with tarfile.open(folder / "payload" / "bundle.tar") as tar:
            names = tar.getnames()
        assert "store/bizsent.db" in names and not [n for n in names if n.endswith(".jsonl")]
        snap = sqlite3.connect(folder / "store" / "bizsent.db")
        try:
            assert [snap.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("jobs", "pods", "api_calls",
                                                                                        "runs")] == [0, 0, 0, 0]
            assert snap.execute("SELECT count(*) FROM posts").fetchone()[0] == 19
        finally:
            snap.close()
        for path in (folder / "store" / "images").glob("*.jpg"):
            with Image.open(path) as img:
                assert img.width * img.height <= 3136
