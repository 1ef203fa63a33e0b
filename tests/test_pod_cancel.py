"""Issue 21.2: a pod job cancelled while it waits for its pod's agent (`connecting`) stops within seconds, from the
Jobs screen's cancel and from the Pods screen's terminate alike: its pod is terminated, its run ends cancelled, and
the row never goes from cancelled to anything else (it used to flip to failed at runpod.boot_timeout_min)."""

from __future__ import annotations

import contextlib
import time

import pytest
from bizsent.core.pods import api
from bizsent.core.store.liveness import pid_alive
from bizsent.jobs import control, pod_run, rows
from bizsent.jobs.states import kind_of
from fakes.pod_run import CANARY, pod_rig


def wait_for(condition, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["cancel", "terminate"])
def test_a_pod_job_stopped_while_connecting_ends_with_its_pod_and_run(tmp_path, model_dir, monkeypatch, how):
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)  # what the detached job reads, as the console's does
    # A long boot timeout: the job must stop on the cancel, not on the timeout (the old way out, as 'failed').
    with pod_rig(tmp_path / "laptop", model_dir, boot_timeout_min=30.0) as rig, \
            contextlib.closing(rig.db()) as db:
        rig.fake.proxy_down = True  # the pod runs but its agent never answers: the job waits in `connecting`
        settings = rig.settings
        job_id, _ = pod_run.launch_run(db, settings.db_path, rig.config, settings, "stuck")
        wait_for(lambda: rows.get(db, job_id)["counts"].get("state") == "connecting")
        pod_id = rig.pod_id("stuck")
        if how == "cancel":  # what the Jobs screen's `c` runs
            line = control.cancel(db, settings, job_id)
            assert f"terminates pod {pod_id}" in line and "ends its run" in line
        else:  # what the Pods screen's `t` runs
            with api.client(settings) as client:
                line = pod_run.stop_or_terminate(db, client, pod_id, "terminate")
            assert f"job {job_id} is cancelled" in line
        assert rows.get(db, job_id)["state"] == "cancelled"
        pid = rows.get(db, job_id)["pid"]
        wait_for(lambda: not pid_alive(pid) and rig.fake.billing_now() == [])
        job = rows.get(db, job_id)
        assert job["state"] == "cancelled", job["error"]
        assert db.execute("SELECT state FROM runs WHERE job_id = ?", [job_id]).fetchall() == [("cancelled",)]
        assert db.execute("SELECT state FROM pods WHERE pod_id = ?", [pod_id]).fetchone()[0] == "terminated"


def test_a_cancel_is_final_whatever_the_work_writes_after_it(db):
    job_id = rows.queue(db, "pod", {"name": "x"})
    epoch = rows.take_over(db, job_id, 0)
    rows.finish(db, job_id, "cancelled", "cancelled by the user")
    rows.finish(db, job_id, "failed", "the pod's agent did not come up", epoch)
    rows.requeue(db, job_id, "interrupted", epoch)
    job = rows.get(db, job_id)
    assert (job["state"], job["error"]) == ("cancelled", "cancelled by the user")


def test_the_cancel_confirmation_says_what_a_cancel_does_to_each_kind():
    says = {name: kind_of(name).cancel_says({}) for name in ("pod", "label", "train")}
    assert "pod is terminated" in says["pod"] and "run ends cancelled" in says["pod"]
    assert "next request" in says["label"] and "pod" not in says["label"]
    assert kind_of("label").cancel_says({"mode": "batch"}).startswith("its remote batches")
