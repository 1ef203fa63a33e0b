"""The pod's log stream as RunPod's API bounds it: `tail` 0..5000 (422 outside), and a refusal of the stream is one
line in the run's pod.log, not a log that silently stops."""

from __future__ import annotations

import time

import httpx
import pytest
from bizsent.core.pods import api
from bizsent.jobs.pod_watch import LogTail
from fakes.runpod_server import STUB_AGENT, USER_KEY, FakeRunpod


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", USER_KEY)
    with FakeRunpod(USER_KEY, root=tmp_path / "pods", boot_delay_s=0.1) as server:
        yield server


def _running_pod(fake: FakeRunpod, client: api.RunpodClient) -> str:
    fake.extra_env["STUB_LINES"] = "3"
    pod = client.create_pod({"name": "bizsent-logs", "image": "img", "gpu": {"id": "NVIDIA GeForce RTX 4090"},
                             "cloud": "COMMUNITY", "ports": ["8765/http"], "args": f"python3 {STUB_AGENT}",
                             "env": {"BIZSENT_TOKEN": "t" * 20}})
    fake.wait_status(pod.id, "RUNNING")
    return pod.id


def _wait(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition never held")
        time.sleep(0.05)


def test_the_fake_refuses_a_tail_outside_the_spec_and_the_client_stays_inside_it(fake):
    with api.RunpodClient(fake.url, USER_KEY, sleep=lambda s: None) as client:
        pod_id = _running_pod(fake, client)
        _wait(lambda: "stub line 2" in fake.log_lines(pod_id))
        with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {USER_KEY}"}) as raw:
            for tail in ("100000", "5001", "-1"):
                resp = raw.get(f"/v2/pods/{pod_id}/logs", params={"tail": tail})
                assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
                assert "tail" in " ".join(resp.json()["errors"])
        stream = client.logs(pod_id, source="container", tail=100_000)  # asked for too much: held to 5000
        first = next(stream)
        stream.close()
        assert first.source == "container" and first.line in ("stub line 0", "agent listening")
        asked = [path for method, path, who in fake.requests if path.endswith("/logs")]
        assert len(asked) == 4


def test_a_refused_log_stream_is_one_line_in_the_pod_log(fake, settings, tmp_path):
    settings.runpod.api_base = fake.url
    with api.RunpodClient(fake.url, USER_KEY) as client:
        pod_id = _running_pod(fake, client)
    fake.fail("GET", f"/v2/pods/{pod_id}/logs", 403, detail="error code: 1010")
    path = tmp_path / "run" / "pod.log"
    tail = LogTail(settings, pod_id, path).start()
    try:
        _wait(lambda: path.exists() and "[bizsent]" in path.read_text())
    finally:
        tail.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and "log stream of this pod stopped" in lines[0] and "403" in lines[0]
    assert USER_KEY not in lines[0]


def test_the_run_log_is_kept_with_the_tail_the_spec_allows(fake, settings, tmp_path):
    settings.runpod.api_base = fake.url
    with api.RunpodClient(fake.url, USER_KEY) as client:
        pod_id = _running_pod(fake, client)
    _wait(lambda: "stub line 2" in fake.log_lines(pod_id))
    path = tmp_path / "run" / "pod.log"
    tail = LogTail(settings, pod_id, path).start()
    try:
        _wait(lambda: path.exists() and "stub line 2" in path.read_text())
    finally:
        tail.close()
    assert "[bizsent]" not in path.read_text()  # the whole log came, and no refusal
