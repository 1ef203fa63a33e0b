"""`bizsent eval RUN --pod` end to end through the real CLI, offline: the fake RunPod runs the real agent, which
installs the project wheel and scores the run's test split on the tiny model with the same engine as `bizsent
eval`, the base model without adapter (zero-shot) first; the laptop stores the live events as they come, then the
predictions, the final eval events and the report, and terminates the pod."""

from __future__ import annotations

import contextlib
import json
import tarfile

from bizsent.core.model.events import run_events
from fakes.pod_run import pod_rig


def test_eval_on_a_pod_end_to_end(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        trained = rig.cli("train", "--local", "--name", "base", "--max-steps", "2", "--no-eval")
        assert trained.returncode == 0, trained.stderr[-3000:]
        out = rig.cli("eval", "base", "--pod", "--test", "--yes")
        assert out.returncode == 0, out.stderr[-3000:]
        # the plan and its price came before anything was created
        assert "evaluate run 1 (base) and the base model without adapter (zero-shot) on the human test split:" \
               " 3 posts each" in out.stderr
        assert "6 posts to score" in out.stderr and "expected cost: about $" in out.stderr
        fake = rig.fake
        (pod_id,) = fake.gone
        assert f"pod {pod_id} terminated (RunPod confirms it is gone)" in out.stdout
        assert fake.billing_now() == [] and fake.pods == {}
        with contextlib.closing(rig.db()) as db:
            runs = {name: (rid, state, adapter, json.loads(params)) for rid, name, state, adapter, params in
                    db.execute("SELECT id, name, state, adapter_path, params FROM runs").fetchall()}
            job = db.execute("SELECT kind, state, counts FROM jobs WHERE kind = 'pod-eval'").fetchone()
            preds = {rid: db.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [rid]).fetchone()[0]
                     for rid, *_ in runs.values()}
            events = {name: run_events(db, runs[name][0], "eval") for name in runs}
            pod_state = db.execute("SELECT state FROM pods WHERE pod_id = ?", [pod_id]).fetchone()[0]
        # the zero-shot run is its own run, named so, without an adapter; both runs hold their 3 test predictions
        base_id, zs_id = runs["base"][0], runs["base-zero-shot"][0]
        assert runs["base-zero-shot"][1] == "done" and runs["base-zero-shot"][2] is None
        assert runs["base-zero-shot"][3]["zero_shot"] is True and runs["base-zero-shot"][3]["pod_id"] == pod_id
        assert preds[base_id] == 3 and preds[zs_id] == 3
        # one final eval event on the test split each, the live ones replaced by it
        for name in ("base", "base-zero-shot"):
            (final,) = [e for e in events[name] if e.data.get("split") == "test"]
            assert not final.data.get("live") and sum(map(sum, final.confusion)) == 3
            assert final.data["accuracy_ci"] and final.data["n"] == 3
        # the live events came through the watch channel as the pod scored: the job counted them per target
        assert job[:2] == ("pod-eval", "done") and json.loads(job[2])["scored"] == {"zero-shot": 3, "model": 3}
        pod_events = fake.root / pod_id / "workspace" / "bizsent" / "runs"
        (events_file,) = pod_events.glob("*/events.jsonl")
        live = [json.loads(line) for line in events_file.read_text().splitlines()]
        assert [(e["data"]["target"], e["step"]) for e in live] == [("zero-shot", 2), ("zero-shot", 3),
                                                                     ("model", 2), ("model", 3)]
        assert pod_state == "terminated"
        # the report shows the zero-shot run beside the fine-tuned one, on the same posts
        report = (rig.settings.data_dir / "runs" / "base" / "report.md").read_text()
        assert "zero-shot (base-zero-shot)" in report and "human test split" in report.lower()
        # the test labels went up for this step only: the eval payload has them, the adapter beside the bundle
        folder = next((rig.settings.data_dir / "runs").glob("eval*-base"))
        with tarfile.open(folder / "payload" / "bundle.tar") as tar:
            names = tar.getnames()
        assert "test.jsonl" in names and "train.jsonl" not in names
        assert "adapter/adapter_model.safetensors" in names
