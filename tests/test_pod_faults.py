"""`train --pod` when things go wrong, each ending with no pod billing in the fake RunPod: no capacity anywhere,
the pod dying mid-training, Ctrl-C, an upload cut and a dropped log stream, the laptop process killed (the pod's
watchdog stops it, `pods reap` terminates it and nothing else)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal

from bizsent.core.pods import api, records
from bizsent.core.pods.views import live_pods
from bizsent.core.store import now
from bizsent.core.store.liveness import HOST
from bizsent.jobs import pod_run, rows
from bizsent.jobs.states import status
from fakes.pod_run import CANARY, pod_rig

GPUS = ("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090", "NVIDIA RTX A5000")


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_no_capacity_on_any_gpu_type_is_one_line_and_nothing_bills(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        rig.fake.no_capacity |= set(GPUS)
        out = rig.cli("train", "--pod", "--yes", "--name", "nocap")
        assert out.returncode == 1
        line = one_line(out.stderr.split("kill switches")[-1].split("\n", 1)[-1])
        assert "no GPU available on RunPod right now" in line and "nothing is running or billing" in line
        assert rig.fake.billing_now() == [] and rig.fake.pods == {}
        with contextlib.closing(rig.db()) as db:
            assert db.execute("SELECT state FROM jobs").fetchall() == [("failed",)]
            assert db.execute("SELECT state FROM pods").fetchall() == [("failed",)]


def test_a_pod_that_dies_mid_training_is_terminated_and_its_agent_refuses_strangers(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        proc = rig.popen("train", "--pod", "--yes", "--name", "dies", "--max-steps", "400")
        pod_id = rig.pod_id("dies")
        rig.wait_agent_state(pod_id, ("training",))
        # the status endpoint through RunPod's proxy: nothing without the run token, nothing outside the run folder
        conn = http.client.HTTPConnection("127.0.0.1", rig.fake.port, timeout=30)
        for path, headers in ((f"/proxy/{pod_id}-8765/health", {}),
                              (f"/proxy/{pod_id}-8765/metrics?after=0", {"Authorization": "Bearer guessed"})):
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            assert resp.status == 401 and b"state" not in resp.read()
        with rig.agent(pod_id) as agent:
            token = agent.headers["Authorization"]
        conn.request("GET", f"/proxy/{pod_id}-8765/upload/../../../../etc/passwd", headers={"Authorization": token})
        resp = conn.getresponse()
        assert resp.status in (400, 404) and b"root:" not in resp.read()
        conn.close()
        os.killpg(rig.fake.pods[pod_id].proc.pid, signal.SIGKILL)  # the container dies; the pod still bills
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1
        # RunPod starts the container again; the new agent finds the run's start on the volume and no adapter
        line = one_line(stderr.split("\n")[-2])
        assert f"training on pod {pod_id} failed: the pod's container restarted during the run" in line, line
        assert rig.fake.billing_now() == [] and pod_id in rig.fake.gone and rig.fake.gone[pod_id].restarts == 1
        with contextlib.closing(rig.db()) as db:
            assert records.row_of(db, pod_id).state == "terminated"
            assert db.execute("SELECT state FROM runs WHERE name = 'dies'").fetchone() == ("failed",)
        assert CANARY not in stdout + stderr


def test_ctrl_c_terminates_the_pod_in_one_line(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        proc = rig.popen("train", "--pod", "--yes", "--name", "ctrlc", "--max-steps", "400")
        pod_id = rig.pod_id("ctrlc")
        rig.wait_agent_state(pod_id, ("installing", "training"))
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130
        assert stderr.strip().splitlines()[-1] == (f"interrupted; pod {pod_id} terminated (RunPod confirms it is"
                                                   f" gone), cost ${_cost(rig, pod_id):.2f}")
        assert rig.fake.billing_now() == [] and pod_id in rig.fake.gone
        with contextlib.closing(rig.db()) as db:
            assert db.execute("SELECT state FROM jobs").fetchone() == ("cancelled",)


def _cost(rig, pod_id: str) -> float:
    with contextlib.closing(rig.db()) as db:
        return records.row_of(db, pod_id).total_usd


def test_an_upload_cut_and_dropped_streams_lose_nothing_and_duplicate_nothing(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        fake = rig.fake
        fake.cut_proxy("PUT", "/upload/bizsent.whl")  # lost on the way: the agent never saw it
        fake.cut_proxy("PUT", "/upload/bundle.tar", after_forward=True)  # stored by the agent, answer lost
        fake.cut_proxy("GET", "/metrics", after_forward=True)  # events served, answer lost: asked again
        fake.drop_logs_after(3)  # the log stream is cut after 3 events, and resumed
        with contextlib.closing(rig.db()) as db:
            job_id = rows.queue(db, pod_run.POD, pod_run.params("cuts", max_steps=3))
            out = pod_run.run(db, rig.settings, job_id, confirm=lambda plan: True)
            assert out is not None
            steps = [r[0] for r in db.execute("SELECT step FROM metrics WHERE kind = 'train' AND run_id = ?",
                                              [out.run_id])]
            evals = db.execute("SELECT count(*), count(DISTINCT step) FROM metrics WHERE kind = 'eval'").fetchone()
        assert steps == [1, 2, 3] and evals[0] == evals[1] >= 1
        puts = [(path.split("?")[0], cut) for method, path, cut in fake.proxied if method == "PUT"]
        assert puts.count(("/upload/bizsent.whl", True)) == 1 and puts.count(("/upload/bundle.tar", True)) == 1
        assert ("/upload/bizsent.whl", False) in puts  # sent again after the cut, and verified (training ran)
        assert sum(1 for m, p, cut in fake.proxied if m == "GET" and p.startswith("/metrics") and cut) == 1
        # the pod's log on the laptop: each event of RunPod's stream once, in order, across the drop
        events = fake.gone[out.pod_id].events
        kept = (rig.settings.data_dir / "runs" / "cuts" / "pod.log").read_text().splitlines()
        assert len(kept) > 3 and kept == [f"{e['ts']} [{e['source']}] {e['line']}" for e in events[:len(kept)]]
        assert fake.billing_now() == []


def test_a_killed_laptop_leaves_the_pod_to_its_watchdog_and_reap(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    # A short grace here only: elsewhere a loaded machine's laptop must collect before the watchdog stops the pod.
    with pod_rig(tmp_path / "laptop", model_dir, grace_min=0.02) as rig:
        fake = rig.fake
        proc = rig.popen("train", "--pod", "--yes", "--name", "killed", "--max-steps", "3")
        pod_id = rig.pod_id("killed")
        rig.wait_agent_state(pod_id, ("installing", "training"))
        proc.kill()
        proc.communicate(timeout=30)
        # training ends on the pod; nobody collects the adapter: after grace_min the watchdog STOPS the pod
        fake.wait_status(pod_id, "EXITED", timeout_s=120)
        assert fake.billing_now() == []
        assert fake.wait_log(pod_id, "watchdog: stop the pod")
        # beside it: the user's notebook, and a bizsent pod whose job is alive (this process beats for it)
        notebook = fake.add_pod("my-notebook")
        live = fake.add_pod("bizsent-live")
        with contextlib.closing(rig.db()) as db:
            job = db.execute("SELECT * FROM jobs WHERE kind = 'pod'").fetchone()
            assert status(rows.get(db, job[0])) == "dead"
            live_job = db.execute("INSERT INTO jobs (kind, state, pid, host, created_at, heartbeat_at) VALUES"
                                  " ('pod', 'running', ?, ?, ?, ?)", [os.getpid(), HOST, now(), now()]).lastrowid
            db.execute("INSERT INTO pods (pod_id, name, run_name, state, created_at, job_id) VALUES"
                       " (?, 'bizsent-live', 'live', 'running', ?, ?)", [live, now(), live_job])
            shown = {v.pod_id: v for v in live_pods(db, rig.settings)}  # what the console's Pods screen draws
        assert shown[pod_id].orphan and shown[pod_id].state == "stopped" and shown[pod_id].run_name == "killed"
        assert not shown[live].orphan and not shown[notebook].orphan and shown[live].usd_per_hour > 0
        reap = rig.cli("pods", "reap", "--yes")
        assert reap.returncode == 0, reap.stderr
        assert f"pod {pod_id} terminated (RunPod confirms it is gone)" in reap.stdout
        assert "its job has finished or its process died" in reap.stdout
        assert pod_id in fake.gone and {notebook, live} == set(fake.pods)
        with api.client(rig.settings) as client:
            for other in (notebook, live):
                client.action(other, "terminate")
        assert fake.billing_now() == []
        with contextlib.closing(rig.db()) as db:
            assert records.row_of(db, pod_id).state == "terminated"
            assert json.loads(db.execute("SELECT counts FROM jobs WHERE id = ?", [job[0]]).fetchone()[0])["pod_id"] \
                == pod_id
