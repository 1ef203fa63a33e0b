"""Two brakes on a training pod's money, each shown stopping billing with the other one broken: the laptop's
(core.pods.brake, in the process that watches the run) with the pod's watchdog disabled, and the pod's watchdog
with the laptop killed; and a watchdog that reports a stop it could not make is stopped by the laptop."""

from __future__ import annotations

import contextlib
import json

import pytest
from bizsent.core.pods import api, launch, plan, records
from bizsent.core.pods.brake import BrakeApplied, LaptopBrake, stop_failure
from bizsent.core.pods.views import run_log_path
from bizsent.jobs import rows
from bizsent.jobs.heartbeat import Beat
from bizsent.jobs.pod_watch import JobWriter, Progress, watch
from fakes.pod_run import CANARY, pod_rig
from fakes.runpod_server import STUB_AGENT, USER_KEY, FakeRunpod

HEALTH_AGENT = STUB_AGENT.with_name("health_agent.py")
# 4090 community is $0.34/h in the fake's catalog: $0.002 is passed after about 21 s of billing.
CAP_USD = 0.002
# Enough epochs of the 12 seeded examples that training is still going when the cap passes.
LONG_TRAINING = {"BIZSENT_TRAIN__EPOCHS": "500"}


def test_the_laptop_brake_rules_at_each_cap(settings):
    settings.runpod.max_hours, settings.runpod.max_dollars, settings.runpod.idle_timeout_min = 10.0, 1.0, 10.0
    brake = LaptopBrake.of(settings, 0.40, "2026-01-01T00:00:00+00:00")
    start = brake.billed_since
    assert start == 1767225600.0  # counted from the row's time, which is before RunPod's create
    brake.saw(("training", 1), mono=0.0)
    assert brake.reason(0.0, now=start + 60, mono=60) is None
    assert "max_dollars" in brake.reason(0.0, now=start + 2.5 * 3600, mono=61)  # 2.5 h x $0.40/h: its age says
    assert "max_dollars" in brake.reason(1.2, now=start + 60, mono=61)  # RunPod's reading counts too
    settings.runpod.max_hours, settings.runpod.max_dollars = 2.0, 100.0
    brake = LaptopBrake.of(settings, 0.40, "2026-01-01T00:00:00Z")
    brake.saw(("training", 1), mono=0.0)
    assert "max_hours" in brake.reason(0.0, now=brake.billed_since + 2 * 3600, mono=1)
    assert "idle_timeout_min" in brake.reason(0.0, now=brake.billed_since + 60, mono=601)
    brake.saw(("training", 2), mono=600)  # a new step is progress
    assert brake.reason(0.0, now=brake.billed_since + 60, mono=601) is None


@pytest.mark.parametrize("health, says", [
    ({"watchdog": {"action": "stop", "reason": "max_dollars", "stop_failed": "HTTP 403 error code: 1010"}},
     "HTTP 403 error code: 1010"),
    ({"watchdog": None, "stop_failed": "URLError"}, "URLError"),
    ({"watchdog": {"action": "stop", "reason": "max_hours"}}, None),
    ({"watchdog": None}, None),
])
def test_a_failed_watchdog_stop_is_read_from_any_field(health, says):
    assert stop_failure(health) == says


def _chain_stand_in(rig, run: str):
    """The laptop's half of a pod run by hand: the pod runs a stand-in agent (no upload needed) and the laptop
    watches it as `train --pod` does, terminating it in `finally` as the chain does."""
    settings = rig.settings
    with contextlib.closing(rig.db()) as db, api.client(settings) as client, Beat(db, job := rows.queue(
            db, "pod", {"name": run})) as beat:
        the_plan = plan.plan_pod(client, settings, run, 10)
        handle = launch.start_pod(db, settings, client, the_plan, agent_path=HEALTH_AGENT, job_id=job)
        try:
            launch.wait_running(db, client, handle, settings, poll_s=0.1)
            writer = JobWriter(db, job, beat, Progress("training"), lambda p: None)
            with pytest.raises(BrakeApplied) as err:
                watch(writer, settings, client, handle, 0, run_log_path(settings, run))
        finally:
            launch.terminate_and_confirm(db, client, handle.pod_id, error="stopped by the laptop's brake")
        return handle.pod_id, str(err.value)


def test_a_watchdog_whose_stop_failed_is_stopped_by_the_laptop(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    with pod_rig(tmp_path / "laptop", model_dir) as rig:
        rig.fake.extra_env["STUB_HEALTH"] = json.dumps(
            {"watchdog": {"action": "stop", "reason": "the pod cost $5 (max_dollars)",
                          "stop_failed": "HTTP 403 (error code: 1010)"}})
        pod_id, line = _chain_stand_in(rig, "stopfail")
        assert line == (f"the watchdog of pod {pod_id} could not stop it (HTTP 403 (error code: 1010)); bizsent"
                        " terminates it")
        assert rig.fake.billing_now() == [] and pod_id in rig.fake.gone


def test_the_laptop_stops_billing_at_max_dollars_when_the_pods_watchdog_is_disabled(tmp_path, model_dir,
                                                                                   monkeypatch):
    for name, value in LONG_TRAINING.items():
        monkeypatch.setenv(name, value)
    with pod_rig(tmp_path / "laptop", model_dir, max_dollars=CAP_USD) as rig:
        fake = rig.fake
        fake.extra_env["BIZSENT_WATCHDOG_S"] = "1000000"  # the pod's brake never looks
        out = rig.cli("train", "--pod", "--yes", "--name", "capped")
        assert out.returncode == 1, out.stderr[-2000:]
        line = out.stderr.strip().splitlines()[-1]
        (pod_id,) = fake.gone
        assert line.startswith(f"error: bizsent stopped pod {pod_id} before training ended: it cost $")
        assert "past runpod.max_dollars ($0.002)" in line
        assert fake.billing_now() == [] and fake.storage_billing_now() == []
        assert not any("watchdog:" in entry for entry in fake.log_lines(pod_id))  # the pod's own brake never acted
        with contextlib.closing(rig.db()) as db:
            assert records.row_of(db, pod_id).state == "terminated"
            assert db.execute("SELECT state FROM runs WHERE name = 'capped'").fetchone() == ("failed",)


def test_the_pods_watchdog_stops_billing_at_max_dollars_when_the_laptop_is_killed(tmp_path, model_dir,
                                                                                 monkeypatch):
    for name, value in LONG_TRAINING.items():
        monkeypatch.setenv(name, value)
    with pod_rig(tmp_path / "laptop", model_dir, max_dollars=CAP_USD) as rig:
        fake = rig.fake
        proc = rig.popen("train", "--pod", "--yes", "--name", "orphaned")
        pod_id = rig.pod_id("orphaned")
        proc.kill()  # long before the cap: only the pod's brake is left
        proc.communicate(timeout=30)
        fake.wait_status(pod_id, "EXITED", timeout_s=180)
        assert fake.billing_now() == []
        stops = fake.wait_log(pod_id, "watchdog: stop the pod")
        assert len(stops) == 1 and "max_dollars" in stops[0]
        assert pod_id in fake.storage_billing_now()  # a stopped pod's volume still bills: shown, and reaped
        reap = rig.cli("pods", "reap", "--yes")
        assert reap.returncode == 0 and f"pod {pod_id} terminated" in reap.stdout
        assert fake.storage_billing_now() == [] and pod_id in fake.gone


def test_the_fake_bills_a_stopped_pods_volume(tmp_path):
    with FakeRunpod(USER_KEY, root=tmp_path / "pods") as fake, api.RunpodClient(fake.url, USER_KEY) as client:
        pod_id = fake.add_pod("bizsent-stored", status="EXITED", volume_gb=100_000)  # a cent in about 1 s
        assert fake.billing_now() == [] and fake.storage_billing_now() == [pod_id]
        assert client.get_pod(pod_id).usd_per_hour == 0.0  # v2 reports cost 0 for an EXITED pod ...
        assert client.pod_billing_usd(pod_id) > 0  # ... and bills its volume all the same
