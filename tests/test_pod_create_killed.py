"""A `train --pod` job killed (kill -9) while its pod's create is in flight: RunPod makes the pod, the answer
never arrives, and the pods row stays `requested` with no id. `jobs cancel` finds the pod by its name and
terminates it (RunPod confirms), `jobs resume` finds it the same way and reattaches: never a second pod, never a
pod billing unknown to the database."""

from __future__ import annotations

import contextlib
import time

from bizsent.core.pods import records
from fakes.pod_run import Rig, pod_rig


def _kill_during_create(rig: Rig, name: str) -> tuple[int, str]:
    """Start the run, kill -9 it once RunPod has made its pod (whose create answer is held back): (job id, pod id)."""
    rig.fake.create_answer_delay_s = 600.0
    proc = rig.popen("train", "--pod", "--yes", "--name", name, "--max-steps", "3")
    deadline = time.monotonic() + 240
    while not any(p.name == f"bizsent-{name}" for p in list(rig.fake.pods.values())):
        assert proc.poll() is None and time.monotonic() < deadline, "the create never reached the fake RunPod"
        time.sleep(0.1)
    proc.kill()
    proc.communicate(timeout=30)
    rig.fake.create_answer_delay_s = 0.0
    pod_id = next(p.id for p in rig.fake.pods.values() if p.name == f"bizsent-{name}")
    with contextlib.closing(rig.db()) as db:
        assert db.execute("SELECT state, pod_id FROM pods").fetchall() == [("requested", None)]
        job_id = db.execute("SELECT id FROM jobs WHERE kind = 'pod'").fetchone()[0]
    assert rig.fake.billing_now() == [pod_id]
    return job_id, pod_id


def test_cancel_terminates_a_pod_whose_create_was_in_flight(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        job_id, pod_id = _kill_during_create(rig, "inflight")
        out = rig.cli("jobs", "cancel", str(job_id))
        assert out.returncode == 0, out.stderr
        assert f"job {job_id} cancelled; pod {pod_id} terminated (RunPod confirms it is gone)" in out.stdout
        assert rig.fake.billing_now() == [] and pod_id in rig.fake.gone
        with contextlib.closing(rig.db()) as db:
            row = records.of_job(db, job_id)
            assert row.pod_id == pod_id and row.state == "terminated" and row.total_usd > 0
            assert db.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone() == ("cancelled",)


def test_resume_reattaches_to_a_pod_whose_create_was_in_flight(tmp_path, model_dir):
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        job_id, pod_id = _kill_during_create(rig, "again")
        out = rig.cli("jobs", "resume", str(job_id))
        assert out.returncode == 0, out.stderr
        deadline = time.monotonic() + 300
        with contextlib.closing(rig.db()) as db:
            while (state := db.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()[0]) != "done":
                assert state in ("queued", "running") and time.monotonic() < deadline, state
                time.sleep(0.3)
            row = records.of_job(db, job_id)
            assert row.pod_id == pod_id and row.state == "terminated"
            assert db.execute("SELECT state FROM runs WHERE name = 'again'").fetchone() == ("done",)
        assert len(rig.fake.created_bodies) == 1  # the pod of the killed process, reattached: no second one
        assert rig.fake.billing_now() == [] and pod_id in rig.fake.gone
