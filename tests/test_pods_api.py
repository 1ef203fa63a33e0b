"""The RunPod REST v2 client against the fake server: errors, retries, the key's reach, SSE logs with resume."""

from __future__ import annotations

import time

import httpx
import pytest
from bizsent.core.errors import BizsentError
from bizsent.core.pods import api
from fakes.runpod_server import STUB_AGENT, USER_KEY, FakeRunpod

CANARY = USER_KEY


@pytest.fixture
def fake(tmp_path):
    with FakeRunpod(CANARY, root=tmp_path / "pods", boot_delay_s=0.1) as server:
        yield server


@pytest.fixture
def client(fake):
    sleeps: list[float] = []
    with api.RunpodClient(fake.url, CANARY, sleep=sleeps.append) as c:
        c.sleeps = sleeps  # type: ignore[attr-defined]
        yield c


def test_429_waits_retry_after_and_5xx_is_retried(fake, client):
    fake.fail("GET", "/v2/pods", 429, retry_after=7)
    fake.fail("GET", "/v2/pods", 503)
    assert client.list_pods() == []
    assert client.sleeps == [7.0, 2.0]  # Retry-After honoured, then backoff for the 503
    assert [r for r in fake.requests if r[:2] == ("GET", "/v2/pods")] == [("GET", "/v2/pods", "user")] * 3


def test_a_failed_create_is_not_sent_twice(fake, client):
    fake.fail("POST", "/v2/pods", 500, detail="upstream exploded")
    body = {"name": "bizsent-x", "image": "img", "gpu": {"id": "NVIDIA GeForce RTX 4090"}, "cloud": "COMMUNITY"}
    with pytest.raises(api.RunpodError, match="upstream exploded") as err:
        client.create_pod(body)
    assert err.value.status == 500
    assert sum(1 for r in fake.requests if r[:2] == ("POST", "/v2/pods")) == 1


def test_problem_objects_become_one_line_and_capacity_its_own_error(fake, client):
    fake.no_capacity.add("NVIDIA GeForce RTX 4090")
    body = {"name": "bizsent-x", "image": "img", "gpu": {"id": "NVIDIA GeForce RTX 4090"}, "cloud": "COMMUNITY"}
    with pytest.raises(api.NoCapacity, match="no longer any instances available"):
        client.create_pod(body)
    with pytest.raises(api.RunpodError, match=r"additional properties 'bogus' not allowed") as err:
        client.create_pod({**body, "bogus": 1})
    assert err.value.status == 422 and "\n" not in str(err.value)


def test_a_wrong_key_is_named_and_never_echoed(fake):
    with api.RunpodClient(fake.url, "wrong-key-123456") as c, pytest.raises(api.KeyRefused) as err:
        c.list_pods()
    assert "RUNPOD_API_KEY" in str(err.value) and "wrong-key" not in str(err.value)


def test_the_key_never_goes_over_plain_http_off_this_machine():
    with pytest.raises(BizsentError, match="plain http"):
        api.RunpodClient("http://api.example.com", CANARY)
    assert api.check_base("http://127.0.0.1:9/") == "http://127.0.0.1:9"
    assert api.check_base("https://api.runpod.io") == "https://api.runpod.io"


def test_missing_pod_reads_as_none_and_terminate_of_a_gone_pod_is_quiet(client):
    assert client.get_pod("nosuchpod") is None
    assert client.action("nosuchpod", "terminate") is None
    assert client.delete_pod("nosuchpod") is False


def test_catalog_prices_and_stock(fake, client):
    fake.stock[("NVIDIA GeForce RTX 4090", "COMMUNITY")] = "LOW"
    offers = {o.id: o for o in client.gpu_types("COMMUNITY")}
    rtx = offers["NVIDIA GeForce RTX 4090"]
    assert rtx.usd_per_hour == {"SECURE": 0.69, "COMMUNITY": 0.34} and rtx.availability == "LOW"
    assert {o.id: o for o in client.gpu_types("SECURE")}["NVIDIA GeForce RTX 4090"].availability == "HIGH"


def _running_pod(fake, client, lines: int) -> str:
    fake.extra_env["STUB_LINES"] = str(lines)
    pod = client.create_pod({"name": "bizsent-logs", "image": "img", "gpu": {"id": "NVIDIA GeForce RTX 4090"},
                             "cloud": "COMMUNITY", "ports": ["8765/http"],
                             "args": f"python3 {STUB_AGENT}", "env": {"BIZSENT_TOKEN": "t" * 20}})
    fake.wait_status(pod.id, "RUNNING")
    return pod.id


def test_logs_resume_after_a_dropped_stream_without_duplicates(fake, client):
    pod_id = _running_pod(fake, client, lines=12)
    wanted = [f"stub line {i}" for i in range(12)]
    fake.drop_logs_after(4)  # the first connection is cut after 4 events, mid-stream
    seen = []

    def done() -> bool:
        return seen[-1:] == ["stub line 11"]

    for line in client.follow_logs(pod_id, source="container", tail=5000, until=done):
        if line.line.startswith("stub line"):  # stderr's "agent listening" lands anywhere among them
            seen.append(line.line)
    assert seen == wanted  # every line once, in order, across the cut
    # a plain reconnect without a cursor would have repeated lines: the resume is what kept them single
    assert sum(1 for r in fake.requests if r[1].endswith("/logs")) == 2


def test_logs_tail_source_and_end_of_a_stopped_pod(fake, client):
    pod_id = _running_pod(fake, client, lines=6)
    deadline = time.monotonic() + 10
    while not {"agent listening", "stub line 5"} <= set(fake.log_lines(pod_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    stream = client.logs(pod_id, source="container", tail=2)
    got = [next(stream).line for _ in range(2)]
    stream.close()
    # stdout and stderr are read by two threads: "agent listening" may land before the last stub lines
    container = [e["line"] for e in fake.pods[pod_id].events if e["source"] == "container"]
    assert got == container[-2:] and len(container) == 7
    stream = client.logs(pod_id, source="system", tail=1)
    assert next(stream).source == "system"
    stream.close()
    client.action(pod_id, "stop")
    ended = list(client.logs(pod_id, tail=100))  # a stopped pod's stream ends instead of hanging
    assert ended[-1].line == "stop requested" and len({line.id for line in ended}) == len(ended)


def test_pod_scoped_key_acts_on_its_own_pod_only(fake, client):
    first = _running_pod(fake, client, lines=1)
    other = fake.add_pod("bizsent-other")
    pod_key = fake.pods[first].key
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {pod_key}"}) as pod_http:
        assert pod_http.get("/v2/pods").status_code == 403
        assert pod_http.post(f"/v2/pods/{other}/action", json={"action": "terminate"}).status_code == 403
        assert pod_http.post(f"/v2/pods/{first}/action", json={"action": "stop"}).status_code == 200
    assert fake.pods[first].status == "EXITED" and fake.pods[other].status == "RUNNING"
    assert first not in fake.billing_now() and other in fake.billing_now()
