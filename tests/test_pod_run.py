"""`bizsent train --pod` end to end through the real CLI, offline: the fake RunPod prices and creates the pod and
runs the real agent in it, which installs the project wheel and trains the tiny model; the laptop stores the
metric events, downloads and verifies the adapter, registers the run and terminates the pod."""

from __future__ import annotations

import contextlib
import json
import tarfile

from bizsent.core.model.events import run_events
from bizsent.core.pods.views import recent_log, stored_pods
from fakes.pod_run import CANARY, pod_rig


def test_train_on_a_pod_end_to_end(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        out = rig.cli("train", "--pod", "--yes", "--name", "e2e", "--max-steps", "3")
        assert out.returncode == 0, out.stderr[-3000:]
        # the price, the expected cost and the kill switches came before anything was created
        shown = out.stderr
        assert "1. NVIDIA GeForce RTX 4090 (COMMUNITY, $0.34/h" in shown and "expected cost: about $" in shown
        assert "kill switches" in shown and "stops the pod after 5 h, at $5.00" in shown
        assert "pod terminated (RunPod confirms it is gone)" in out.stdout

        fake = rig.fake
        (pod_id,) = fake.gone
        assert fake.billing_now() == [] and fake.pods == {} and len(fake.created_bodies) == 1
        assert fake.created_bodies[0]["name"] == "bizsent-e2e"
        with contextlib.closing(rig.db()) as db:
            run_id, state, adapter, params, job_id = db.execute(
                "SELECT id, state, adapter_path, params, job_id FROM runs WHERE name = 'e2e'").fetchone()
            params = json.loads(params)
            events = run_events(db, run_id)
            pod = db.execute("SELECT state, total_usd, job_id FROM pods WHERE pod_id = ?", [pod_id]).fetchone()
            job = db.execute("SELECT kind, state, done, total, counts FROM jobs WHERE id = ?", [job_id]).fetchone()
            dump = "\n".join(db.iterdump())
            views = stored_pods(db)
        # metric events in the store once each, as a local run writes them (the Eval screen draws these rows)
        assert [e.step for e in events if e.kind == "train"] == [1, 2, 3]
        assert any(e.kind == "eval" and e.confusion for e in events)
        # the adapter on disk is the pod's, checked against the sha256 the agent computed there
        pod_side = json.loads((fake.root / pod_id / "workspace" / "bizsent" / "adapter.tar.json").read_text())
        assert state == "done" and params["adapter_sha256"] == pod_side["sha256"] and params["pod_id"] == pod_id
        assert adapter == str(rig.settings.data_dir / "runs" / "e2e" / "adapter")
        assert (rig.settings.data_dir / "runs" / "e2e" / "adapter" / "adapter_model.safetensors").stat().st_size > 0
        assert json.loads((rig.settings.data_dir / "runs" / "e2e" / "adapter" / "bizsent.json").read_text())
        # the pod's cost: in its row and in `bizsent costs`
        assert pod[0] == "terminated" and pod[1] > 0 and pod[2] == job_id
        assert job[:4] == ("pod", "done", 3, 3) and json.loads(job[4])["metrics_next"] >= 4
        assert views[0].pod_id == pod_id and views[0].state == "terminated" and views[0].usd_so_far == pod[1]
        costs = rig.cli("costs")
        assert costs.returncode == 0 and "pods (RunPod): $" in costs.stdout
        # the pod's log was kept for the console
        log = recent_log(rig.settings, "e2e", 500)
        assert any("bizsent-agent: job ended: done" in line for line in log)
        assert any("[system] pod " in line and "created" in line for line in log)

        # the user's key is nowhere: database, files of the project (logs, bundle, payload, pod.log), output,
        # the pod's create body (its environment), the pod's volume
        assert CANARY not in dump and CANARY not in out.stdout + out.stderr + costs.stdout + costs.stderr
        for path in [*rig.settings.data_dir.rglob("*"), *(fake.root / pod_id).rglob("*")]:
            if path.is_file():
                assert CANARY.encode() not in path.read_bytes(), path
        with tarfile.open(rig.settings.data_dir / "runs" / "e2e" / "payload" / "bundle.tar") as tar:
            names = tar.getnames()
        # the human test labels stay here: a training pod gets train, val and dev only (issue 20)
        assert "train.jsonl" in names and "val.jsonl" in names and "test.jsonl" not in names
        assert all(CANARY not in json.dumps(body) for body in fake.created_bodies)
        assert "RUNPOD_API_KEY" not in fake.created_bodies[0]["env"]


def test_train_on_a_pod_evaluates_the_new_adapter_on_the_same_pod(tmp_path, model_dir):
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        with contextlib.closing(rig.db()) as db:  # human train labels: the bundle's human dev split draws from them
            for pid, label in db.execute("SELECT DISTINCT post_id, label FROM labels WHERE source = 'api'").fetchall():
                set_label(db, pid, NewLabel(label=label, source="human", split="train", labeler="human:t"))
        out = rig.cli("train", "--pod", "--yes", "--name", "ev", "--max-steps", "2")
        assert out.returncode == 0, out.stderr[-3000:]
        bundle = rig.settings.data_dir / "runs" / "ev" / "bundle"
        dev = json.loads((bundle / "manifest.json").read_text())["sizes"]["dev"]
        assert dev > 0
        assert (f"then, on the same pod (no second start-up), the new adapter is evaluated on the human dev split"
                f" ({dev} posts)") in out.stderr and f"{dev} posts to score" in out.stderr
        assert len(rig.fake.created_bodies) == 1 and rig.fake.billing_now() == [] and rig.fake.pods == {}
        with contextlib.closing(rig.db()) as db:
            run_id, state, adapter, job_id = db.execute(
                "SELECT id, state, adapter_path, job_id FROM runs WHERE name = 'ev'").fetchone()
            events = run_events(db, run_id, "eval")
            preds = db.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [run_id]).fetchone()[0]
            counts = json.loads(db.execute("SELECT counts FROM jobs WHERE id = ?", [job_id]).fetchone()[0])
        assert state == "done" and (rig.settings.data_dir / "runs" / "ev" / "result" / "adapter"
                                    / "adapter_model.safetensors").exists()
        assert adapter == str(rig.settings.data_dir / "runs" / "ev" / "result" / "adapter")
        # the evaluation came back live through the channel, then as the dev evaluation a local `eval` stores
        assert counts["scored"] == {"model": dev}
        (final,) = [e for e in events if e.data.get("split") == "dev"]
        assert not final.data.get("live") and sum(map(sum, final.confusion)) == dev and preds == dev
        assert (rig.settings.data_dir / "runs" / "ev" / "report-dev.md").exists()
