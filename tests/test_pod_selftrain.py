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


def test_merged_runs_record_where_their_files_landed_here_not_the_pods_paths(tmp_path, db):
    """The rounds' runs were made on the pod: their bundle and output folders are paths there, which never exist
    on this machine. Merged, a run keeps those under pod_* names and records the folder here where the pod's
    result landed; the chosen round's adapter is the copy here."""
    from bizsent.core.evaluate.runs import model_unavailable, runs_list
    from bizsent.core.model.events import create_run, finish_run
    from bizsent.core.store import open_db
    from bizsent.jobs.pod_selftrain import merge_back

    result = tmp_path / "runs" / "selftrain7-pod" / "result"
    pod = open_db(result / "store" / "bizsent.db")
    pod_run = create_run(pod, kind="train", name="selftrain-r0", base_model="Qwen/Qwen2.5-VL-7B-Instruct",
                         params={"bundle": "/workspace/runs/r/rounds/round0/bundle", "out_dir": "/workspace/runs/r0"})
    finish_run(pod, pod_run, "done", "/workspace/runs/r0/adapter")
    pod.close()
    (result / "adapter").mkdir()
    mapping = merge_back(db, result / "store" / "bizsent.db", result / "adapter", pod_run, None, "pod7", result)
    params, adapter = db.execute("SELECT params, adapter_path FROM runs WHERE id = ?", [mapping[pod_run]]).fetchone()
    params = json.loads(params)
    assert params["result"] == str(result) and adapter == str(result / "adapter")
    assert params["pod_bundle"] == "/workspace/runs/r/rounds/round0/bundle" and "bundle" not in params
    assert "/workspace" not in json.dumps({k: v for k, v in params.items() if not k.startswith("pod_")})
    (run,) = runs_list(db)
    assert "(none)" in model_unavailable(run)  # no bundle here: said so, not a pod path as if it were one
