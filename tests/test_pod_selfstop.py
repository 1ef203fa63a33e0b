"""The pod's own brake against the fake RunPod, which behaves like the platform: a gateway that refuses urllib's
User-Agent (Cloudflare's 403, error 1010), containers restarted whenever their process exits, billing on. The
watchdog's stop names a User-Agent and gets through; a stop that fails is retried and shown in /health; an agent
that fails stops its own pod, and one that cannot leaves an idle container (no restart loop) that `pods reap`
ends."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from bizsent.core.pods import api, launch, orphans, plan
from bizsent.core.pods.channel import AgentChannel
from bizsent.core.pods.payload import pod_env
from bizsent.core.store import now, open_db
from bizsent.core.store.liveness import HOST
from fakes.pod_agent import launch_agent, token
from fakes.runpod_server import USER_KEY, FakeRunpod

CRASH_AGENT = Path(__file__).parent / "fakes" / "crash_agent.py"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", USER_KEY)
    with FakeRunpod(USER_KEY, root=tmp_path / "pods", boot_delay_s=0.1) as server:
        server.restart_delay_s = 0.2
        yield server


@pytest.fixture
def pod_settings(settings, fake):
    runpod = settings.runpod
    runpod.api_base, runpod.proxy_url, runpod.install_deps, runpod.require_gpu = fake.url, fake.proxy_url, False, False
    return settings


def wait_until(condition, timeout_s: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def own_agent(tmp_path, settings, fake, **limits):
    """The real agent, as the pod `bizsent-selfstop` of the fake RunPod (its id and pod-scoped key), idle."""
    pod_id = fake.add_pod("bizsent-selfstop")
    runpod = settings.runpod
    runpod.idle_timeout_min, runpod.max_hours, runpod.max_dollars = limits.get("idle_min", 10.0), 5.0, 5.0
    env = pod_env(settings, token(), port=8765, usd_per_hour=0.34, grace_min=10.0, install_deps=False)
    agent = launch_agent(tmp_path, env, api_base=fake.url, RUNPOD_POD_ID=pod_id, RUNPOD_API_KEY=fake.pods[pod_id].key)
    return pod_id, agent


def test_the_gateway_refuses_urllibs_user_agent_like_cloudflare(fake):
    request = urllib.request.Request(f"{fake.url}/v2/pods", headers={"Authorization": f"Bearer {USER_KEY}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403 and refused.value.read() == b"error code: 1010"
    named = urllib.request.Request(f"{fake.url}/v2/pods", headers={"Authorization": f"Bearer {USER_KEY}",
                                                                   "User-Agent": "bizsent-test/1"})
    with urllib.request.urlopen(named, timeout=10) as answer:
        assert answer.status == 200


def test_the_watchdogs_stop_gets_through_the_gateway(tmp_path, pod_settings, fake):
    pod_id, agent = own_agent(tmp_path, pod_settings, fake, idle_min=0.02)
    try:
        fake.wait_status(pod_id, "EXITED", timeout_s=60)
        assert fake.billing_now() == [] and fake.refused_agents == []
        assert ("POST", f"/v2/pods/{pod_id}/action", f"pod:{pod_id}") in fake.requests
    finally:
        agent.stop()


def test_a_failed_stop_is_retried_and_shown_in_health(tmp_path, pod_settings, fake):
    fake.fail("POST", "/v2/pods/", 500, times=1000, detail="the API is down")
    pod_id, agent = own_agent(tmp_path, pod_settings, fake, idle_min=0.02)
    try:
        with AgentChannel(agent.url, agent.token, backoff_s=0.05) as channel:
            wait_until(lambda: (channel.health().watchdog or "").startswith("stop failed"), what="a failed stop")
            with agent.client() as client:
                shown = client.get("/health").json()["watchdog"]
            line = channel.health().watchdog
        assert shown["action"] == "stop" and shown["done"] is False and "idle_timeout_min" in shown["reason"]
        assert shown["failed"].startswith("HTTP 500: ") and shown["failed"].endswith("(3 tries)")
        assert line.startswith("stop failed (HTTP 500: ") and line.endswith("(idle_timeout_min)")
        assert sum(1 for r in fake.requests if r[:2] == ("POST", f"/v2/pods/{pod_id}/action")) >= 3
        assert fake.pods[pod_id].status == "RUNNING"  # still billing: the laptop must act on it
    finally:
        agent.stop()


def dead_job(db) -> int:
    """A pod job whose process is gone (the laptop was closed), so its pod counts as an orphan."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return db.execute("INSERT INTO jobs (kind, state, pid, host, created_at, heartbeat_at) VALUES"
                      " ('pod', 'running', ?, ?, ?, ?)", [gone.pid, HOST, now(), now()]).lastrowid


def start(db, settings, run: str, **kwargs) -> launch.PodHandle:
    with api.client(settings) as client:
        return launch.start_pod(db, settings, client, plan.plan_pod(client, settings, run, 100),
                                job_id=dead_job(db), **kwargs)


def reap_all(db, settings) -> list[str]:
    with api.client(settings) as client:
        found = [a for a in orphans.survey(db, client, settings) if a.orphan]
        return [pod for pod, _ in orphans.reap(db, client, settings, found)]


def test_an_agent_that_fails_at_start_stops_its_own_pod(pod_settings, fake):
    with contextlib.closing(open_db(pod_settings.db_path)) as db:
        handle = start(db, pod_settings, "badenv", env_extra={"BIZSENT_MAX_HOURS": "many"})
        fake.wait_status(handle.pod_id, "EXITED", timeout_s=60)
        pod = fake.pods[handle.pod_id]
        assert pod.restarts == 0 and fake.billing_now() == []
        assert any("BIZSENT_MAX_HOURS must be a number" in line for line in fake.log_lines(handle.pod_id))
        # stopped, its volume kept: `pods reap` ends it
        assert reap_all(db, pod_settings) == [handle.pod_id] and handle.pod_id in fake.gone


def test_an_agent_that_exits_at_once_leaves_an_idle_container_for_reap(pod_settings, fake):
    with contextlib.closing(open_db(pod_settings.db_path)) as db:
        handle = start(db, pod_settings, "crash", agent_path=CRASH_AGENT)
        wait_until(lambda: any("the agent ended (exit code 3)" in line for line in fake.log_lines(handle.pod_id)),
                   what="the start command to outlive the agent")
        pod = fake.pods[handle.pod_id]
        # the container is still up, idle: RunPod has nothing to restart, so the crash does not repeat
        assert pod.proc is not None and pod.proc.poll() is None and pod.restarts == 0 and pod.status == "RUNNING"
        assert fake.log_lines(handle.pod_id).count("crash agent: exiting at once") == 1
        assert reap_all(db, pod_settings) == [handle.pod_id]
        assert fake.billing_now() == [] and handle.pod_id in fake.gone


def test_runpod_restarts_a_container_whose_process_exits_and_bills_on(pod_settings, fake, monkeypatch):
    """The platform behaviour the two tests above guard against, shown with a start command that ends with its
    agent (today's `exec python3 ...` would)."""
    monkeypatch.setattr(launch, "start_command", lambda: "python3 " + str(CRASH_AGENT))
    with contextlib.closing(open_db(pod_settings.db_path)) as db:
        handle = start(db, pod_settings, "loop", agent_path=CRASH_AGENT)
        wait_until(lambda: fake.pods[handle.pod_id].restarts >= 2, what="two restarts")
        assert fake.billing_now() == [handle.pod_id]
        assert reap_all(db, pod_settings) == [handle.pod_id] and fake.billing_now() == []
