"""Starting, pricing and terminating pods against the fake RunPod: fallbacks, caps, boot failures, the key."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from bizsent.core.costs import render_costs
from bizsent.core.errors import BizsentError
from bizsent.core.pods import api, estimate, launch, payload, plan, records
from fakes.runpod_server import STUB_AGENT, USER_KEY, FakeRunpod

CANARY = USER_KEY
RTX4090, RTX3090, A5000 = "NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090", "NVIDIA RTX A5000"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    with FakeRunpod(CANARY, root=tmp_path / "pods", boot_delay_s=0.1) as server:
        yield server


@pytest.fixture
def pod_settings(settings, fake):
    settings.runpod.api_base = fake.url
    settings.runpod.proxy_url = fake.proxy_url
    settings.runpod.install_deps = False
    settings.runpod.gpu_types = [RTX4090, RTX3090, A5000]
    settings.runpod.cloud_types = ["COMMUNITY", "SECURE"]
    return settings


@pytest.fixture
def client(pod_settings):
    with api.client(pod_settings, sleep=lambda s: None) as c:
        yield c


def _start(db, settings, client, run="r1", examples=1000):
    the_plan = plan.plan_pod(client, settings, run, examples)
    return the_plan, launch.start_pod(db, settings, client, the_plan, agent_path=STUB_AGENT)


def _creates(fake) -> int:
    return sum(1 for r in fake.requests if r[:2] == ("POST", "/v2/pods"))


def test_capacity_falls_back_across_gpu_types_then_cloud_types(db, pod_settings, client, fake):
    fake.no_capacity |= {(RTX4090, "COMMUNITY"), (RTX3090, "COMMUNITY"), (A5000, "COMMUNITY"), (RTX4090, "SECURE")}
    the_plan, handle = _start(db, pod_settings, client)
    assert [(c.gpu, c.cloud) for c in the_plan.candidates][:4] == [
        (RTX4090, "COMMUNITY"), (RTX3090, "COMMUNITY"), (A5000, "COMMUNITY"), (RTX4090, "SECURE")]
    assert (handle.gpu, handle.cloud, handle.usd_per_hour) == (RTX3090, "SECURE", 0.43)
    assert _creates(fake) == 5 and fake.billing_now() == [handle.pod_id]
    row = records.row_of(db, handle.pod_id)
    assert row is not None and (row.gpu, row.cloud, row.state, row.name) == (RTX3090, "SECURE", "provisioning",
                                                                            "bizsent-r1")


def test_no_capacity_anywhere_is_one_line_and_nothing_bills(db, pod_settings, client, fake):
    fake.no_capacity |= {RTX4090, RTX3090, A5000}
    the_plan = plan.plan_pod(client, pod_settings, "r2", 1000)
    with pytest.raises(api.NoCapacity) as err:
        launch.start_pod(db, pod_settings, client, the_plan, agent_path=STUB_AGENT)
    message = str(err.value)
    assert "\n" not in message and "nothing is running or billing" in message and "runpod.gpu_types" in message
    assert _creates(fake) == 6 and fake.pods == {} and fake.billing_now() == []
    assert db.execute("SELECT state FROM pods").fetchall() == [("failed",)]


def test_price_above_the_cap_is_refused_before_any_create(db, pod_settings, client, fake):
    pod_settings.runpod.max_usd_per_hour = 0.30  # 4090 community 0.34, 3090 0.22, A5000 0.16
    chosen = plan.plan_pod(client, pod_settings, "r3", 1000)
    assert [(c.gpu, c.cloud) for c in chosen.candidates] == [(RTX3090, "COMMUNITY"), (A5000, "COMMUNITY"),
                                                             (A5000, "SECURE")]
    assert "$0.34/h is above runpod.max_usd_per_hour" in chosen.render()
    pod_settings.runpod.max_usd_per_hour = 0.10
    with pytest.raises(BizsentError, match="no configured GPU can be used") as err:
        plan.plan_pod(client, pod_settings, "r3", 1000)
    assert "\n" not in str(err.value)
    assert _creates(fake) == 0


def test_estimate_and_kill_switches_are_shown(pod_settings, client, fake):
    # the planning figure: 3-4 h for ~10k posts on a 4090
    assert 3.0 <= estimate.estimate_hours(pod_settings, RTX4090, 10_000, 2.0) <= 4.0
    shown = plan.plan_pod(client, pod_settings, "r4", 5_000)
    text = shown.render()
    assert f"expected cost: about ${0.34 * shown.hours:.2f}" in text
    assert "stops the pod after 5 h, at $5.00, after 20 min without progress; the watchdog also 30 min" in text
    pod_settings.runpod.max_hours = 0.2
    with pytest.raises(BizsentError, match=r"would pass runpod.max_hours \(0.2 h\) on every GPU") as err:
        plan.plan_pod(client, pod_settings, "r4", 10_000)
    assert "\n" not in str(err.value) and _creates(fake) == 0


def test_a_pod_that_never_comes_up_is_terminated(db, pod_settings, client, fake):
    fake.never_boot.add(RTX4090)
    pod_settings.runpod.boot_timeout_min = 0.01
    _, handle = _start(db, pod_settings, client, "r5")
    with pytest.raises(BizsentError, match="never came up") as err:
        launch.wait_running(db, client, handle, pod_settings, poll_s=0.05)
    assert "terminated" in str(err.value)
    assert handle.pod_id in fake.gone and fake.billing_now() == []
    assert records.row_of(db, handle.pod_id).state == "failed"


def test_lifecycle_agent_through_proxy_cost_and_confirmed_termination(db, pod_settings, client, fake):
    _, handle = _start(db, pod_settings, client, "r6")
    pod = launch.wait_running(db, client, handle, pod_settings, poll_s=0.05)
    assert pod.status == "RUNNING" and records.row_of(db, handle.pod_id).state == "running"
    assert handle.agent_url == f"{fake.url}/proxy/{handle.pod_id}-8765"
    deadline = time.monotonic() + 20
    while True:  # RUNNING is the container; the proxy answers 502 until the agent inside listens (as RunPod's)
        health = httpx.get(f"{handle.agent_url}/health", headers={"Authorization": f"Bearer {handle.token}"},
                           timeout=10)
        if health.status_code != 502 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert health.status_code == 200 and health.json()["pod"] == handle.pod_id
    assert httpx.get(f"{handle.agent_url}/health", timeout=10).status_code == 401
    assert launch.handle_of(db, pod_settings, handle.pod_id).token == handle.token
    usd = launch.terminate_and_confirm(db, client, handle.pod_id, poll_s=0.05)
    assert client.get_pod(handle.pod_id) is None and fake.billing_now() == []
    billed = round(fake.billed_seconds(handle.pod_id) * 0.34 / 3600, 6)  # RunPod's bill, to the micro-dollar
    row = records.row_of(db, handle.pod_id)
    assert row.state == "terminated" and row.terminated_at and usd == row.total_usd >= billed > 0
    assert "pods (RunPod): $" in render_costs(db, pod_settings) and "over 1 pod(s)" in render_costs(db)


def test_a_lost_create_answer_adopts_the_pod_instead_of_making_another(db, pod_settings, client, fake):
    fake.lose_create_answers = 1
    _, handle = _start(db, pod_settings, client, "r7")
    assert list(fake.pods) == [handle.pod_id] and _creates(fake) == 1
    assert records.row_of(db, handle.pod_id).gpu == RTX4090


def test_a_second_pod_with_the_same_run_name_is_refused(db, pod_settings, client, fake):
    fake.add_pod("bizsent-r8")
    with pytest.raises(BizsentError, match="already exists"):
        _start(db, pod_settings, client, "r8")
    assert _creates(fake) == 0


def test_the_user_key_reaches_no_pod_database_or_log(db, pod_settings, client, fake, tmp_path):
    from bizsent.core.log import setup_logging

    log_path = setup_logging(pod_settings.data_dir)
    _, handle = _start(db, pod_settings, client, "r9")
    launch.wait_running(db, client, handle, pod_settings, poll_s=0.05)
    env = fake.env_of(handle.pod_id)
    assert env["BIZSENT_TOKEN"] == handle.token and env["BIZSENT_API_BASE"] == fake.url
    assert set(env) >= {"BIZSENT_AGENT_B64", "BIZSENT_PORT", "BIZSENT_WORKDIR", "BIZSENT_MAX_HOURS",
                        "BIZSENT_MAX_USD", "BIZSENT_USD_PER_HOUR", "BIZSENT_IDLE_MIN", "BIZSENT_GRACE_MIN",
                        "BIZSENT_INSTALL_DEPS"}
    process_env = Path(f"/proc/{fake.pods[handle.pod_id].proc.pid}/environ").read_bytes()
    assert CANARY.encode() not in process_env and fake.pods[handle.pod_id].key.encode() in process_env
    launch.terminate_and_confirm(db, client, handle.pod_id, poll_s=0.05)
    assert all(CANARY not in repr(body) for body in fake.created_bodies)
    assert CANARY not in repr(handle) and handle.token not in repr(handle)
    for path in pod_settings.data_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    assert log_path is not None


def test_a_secret_is_refused_in_the_pod_env(pod_settings, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf-secret-value-123")
    with pytest.raises(BizsentError, match="HF_TOKEN"):
        payload.pod_env(pod_settings, "tok-of-this-run", port=8765, usd_per_hour=0.3, grace_min=1,
                        install_deps=False, agent_path=STUB_AGENT, extra={"BIZSENT_HF": "hf-secret-value-123"})


def test_older_single_gpu_settings_become_fallback_lists(tmp_path):
    from bizsent.core.config import load_settings

    cfg = tmp_path / "old.toml"
    cfg.write_text('[runpod]\ngpu_type = "NVIDIA RTX A5000"\ncloud_type = "ALL"\n', encoding="utf-8")
    conf = load_settings(cfg, environ={}).runpod
    assert conf.gpu_types == ["NVIDIA RTX A5000"] and conf.cloud_types == ["COMMUNITY", "SECURE"]
    cfg.write_text('[runpod]\ngpu_type = "A"\ngpu_types = ["B"]\n', encoding="utf-8")
    with pytest.raises(BizsentError, match="set gpu_types only"):
        load_settings(cfg, environ={})
