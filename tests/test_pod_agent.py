"""The in-pod agent, run as a local process the way a pod runs it, with the laptop's channel and payload: the token
on every endpoint, the run folder as the only thing served, resumable checksummed uploads, the watchdog's stop
and terminate calls with the pod-scoped key, a real training on the tiny model, and no secret of the user in the
pod's environment, its answers or anything uploaded.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import socket
import tarfile
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from bizsent.core.errors import BizsentError
from bizsent.core.pods import payload
from bizsent.core.pods.agent.config import Refused
from bizsent.core.pods.agent.files import confined, safe_extract
from bizsent.core.pods.agent.job import read_job
from bizsent.core.pods.channel import AgentChannel, agent_url
from bizsent.core.pods.payload import pod_env, prepare_payload
from fakes.pod_agent import POD_ID, POD_KEY, ActionStub, CutProxy, launch_agent, token
from fakes.runpod_hosts import host

CANARY = "canary-user-runpod-key-7f3e9a"  # the user's RUNPOD_API_KEY on the laptop
OTHER_CANARY = "canary-user-openai-key-51d0c2"
ENDPOINTS = [("GET", "/health"), ("GET", "/logs?tail=5"), ("GET", "/metrics?after=0"), ("GET", "/upload/job.json"),
             ("PUT", "/upload/job.json?offset=0"), ("POST", "/upload/job.json/done"), ("POST", "/start"),
             ("GET", "/adapter"), ("POST", "/adapter/collected"), ("GET", "/nowhere")]


@pytest.fixture
def stub():
    action = ActionStub().start()
    yield action
    action.server.shutdown()


@pytest.fixture
def agent_of(tmp_path, settings, stub, monkeypatch):
    """Start an agent with the watchdog's limits given in minutes/hours/dollars; stopped after the test."""
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    monkeypatch.setenv("OPENAI_API_KEY", OTHER_CANARY)
    started = []

    def start(*, idle_min=10.0, max_hours=5.0, max_dollars=5.0, usd_per_hour=0.5, grace_min=10.0, base=tmp_path,
              the_settings=settings, require_gpu=False, host=None, api_base=None, **extra):
        runpod = the_settings.runpod
        runpod.idle_timeout_min, runpod.max_hours, runpod.max_dollars = idle_min, max_hours, max_dollars
        runpod.require_gpu = require_gpu  # no GPU on this machine
        env = pod_env(the_settings, token(), port=8765, usd_per_hour=usd_per_hour, grace_min=grace_min,
                      install_deps=False)
        agent = launch_agent(base, env, api_base=api_base or stub.url, host=host, **extra)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


def raw(agent, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> tuple[int, bytes]:
    """A request sent byte for byte (httpx would normalise '..' out of a path before sending it)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(agent.url.rsplit(":", 1)[1]), timeout=30)
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {agent.token}", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def put(client, name: str, offset: int, chunk: bytes, sha: str | None = None) -> httpx.Response:
    return client.put(f"/upload/{name}", params={"offset": offset}, content=chunk,
                      headers={"X-Chunk-Sha256": sha or hashlib.sha256(chunk).hexdigest()})


def test_every_endpoint_needs_the_run_token(agent_of):
    agent = agent_of()
    for method, path in ENDPOINTS:
        for headers in ({}, {"Authorization": "Bearer wrong-token-of-another-run"}, {"Authorization": agent.token}):
            with httpx.Client(base_url=agent.url, timeout=30) as client:
                resp = client.request(method, path, headers=headers, content=b"{}")
            assert resp.status_code == 401, (method, path, headers)
            assert resp.headers["WWW-Authenticate"] == "Bearer" and "state" not in resp.text
    with agent.client() as client:
        assert client.get("/health").json()["state"] == "waiting-upload"


def test_nothing_outside_the_run_folder_is_served(agent_of, tmp_path):
    agent = agent_of()
    secret_file = tmp_path / "outside.txt"
    secret_file.write_text("outside the run folder")
    for path in ("/upload/../../outside.txt", "/upload/%2e%2e/%2e%2e/outside.txt", f"/upload/{secret_file}",
                 "/upload//etc/passwd", "/%2Fetc%2Fpasswd", "/logs/../upload/job.json", "/upload/bizsent.whl/.."):
        status, body = raw(agent, "GET", path)
        assert status in (400, 404), path
        assert b"outside the run folder" not in body and b"root:" not in body
    sha = hashlib.sha256(b"x").hexdigest()
    status, _ = raw(agent, "PUT", "/upload/../../evil.sh?offset=0", {"X-Chunk-Sha256": sha}, b"x")
    assert status == 400 and not list(tmp_path.rglob("evil.sh"))
    # the one rule every served file passes: no absolute path, no '..', no symlink out of the folder
    (agent.workdir / "link").symlink_to(tmp_path)
    for bad in ("/etc/passwd", "../outside.txt", "link/outside.txt", "a//b"):
        with pytest.raises(Refused):
            confined(agent.workdir, bad)


def test_untar_refuses_links_and_paths_out_of_its_folder(tmp_path):
    for member in ("../escape.txt", "/tmp/abs-escape.txt", "link"):
        archive = tmp_path / "evil.tar"
        with tarfile.open(archive, "w") as tar:
            info = tarfile.TarInfo(member)
            if member == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
        with pytest.raises(tarfile.TarError):
            safe_extract(archive, tmp_path / "out")
        assert not (tmp_path / "escape.txt").exists() and not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("job", [{"name": "../../etc", "base_model": "m"}, {"name": "ok", "base_model": ""},
                                 {"name": "ok", "base_model": "m", "max_steps": "5; rm -rf /"},
                                 {"name": "ok", "base_model": "m", "train": {"lr\n[data]": 1}},
                                 {"name": "ok", "base_model": "m", "train": {"lora_r": {"nested": 1}}}])
def test_job_json_is_refused_unless_every_value_has_its_shape(tmp_path, job):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    with pytest.raises(Refused) as refused:
        read_job(path)
    assert refused.value.status == 400


def test_upload_checks_each_chunk_and_resumes_after_a_cut_without_resending(agent_of, tmp_path):
    agent = agent_of()
    data = os.urandom(5 * 65536 + 1234)
    path = tmp_path / "bundle.tar"
    path.write_bytes(data)
    chunk = 65536
    with agent.client() as client:
        # an earlier session sent two chunks before the laptop's connection dropped
        for k in range(2):
            assert put(client, "bundle.tar", k * chunk, data[k * chunk:(k + 1) * chunk]).status_code == 200
        bad = put(client, "bundle.tar", 2 * chunk, data[2 * chunk:3 * chunk], sha="0" * 64)
        assert bad.status_code == 400 and "checksum" in bad.json()["error"]
        gap = put(client, "bundle.tar", 3 * chunk, data[3 * chunk:4 * chunk])
        assert gap.status_code == 409 and gap.json()["bytes"] == 2 * chunk
        assert client.get("/upload/bundle.tar").json() == {"bytes": 2 * chunk, "chunks": 2, "done": False,
                                                          "sha256": None}
    # a body cut short by the proxy never reaches the file
    with socket.create_connection(("127.0.0.1", int(agent.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(f"PUT /upload/bundle.tar?offset={2 * chunk} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     f"{agent.token}\r\nContent-Length: {chunk}\r\nX-Chunk-Sha256: {'1' * 64}\r\n\r\n".encode()
                     + data[:1000])
    time.sleep(0.3)
    proxy = CutProxy(agent.url, cut={2}).start()
    try:
        with AgentChannel(proxy.url, agent.token, backoff_s=0.01) as channel:
            sha = channel.upload(path, "bundle.tar", chunk_bytes=chunk)
            status = channel.upload_status("bundle.tar")
    finally:
        proxy.server.shutdown()
    assert sha == hashlib.sha256(data).hexdigest() == status["sha256"] and status["done"]
    # the verified chunks 0-1 were not sent again; the cut chunk 3 was sent twice, accepted once
    assert proxy.put_offsets == [2 * chunk, 3 * chunk, 3 * chunk, 4 * chunk, 5 * chunk]
    assert status["chunks"] == 6 and (agent.workdir / "uploads" / "bundle.tar").read_bytes() == data
    with agent.client() as client:
        wrong = client.post("/upload/job.json/done", json={"sha256": "f" * 64})
        assert wrong.status_code == 400 and wrong.json()["bytes"] == 0
        missing = client.post("/start")
        assert missing.status_code == 409 and set(missing.json()["missing"]) == {"bizsent.whl", "job.json"}


def test_watchdog_stops_an_idle_pod_with_the_pod_scoped_key(agent_of, stub):
    agent = agent_of(idle_min=0.02)
    pod, action, auth = stub.wait_for("stop")
    assert (pod, action, auth) == (POD_ID, "stop", f"Bearer {POD_KEY}")
    with agent.client() as client:
        health = client.get("/health").json()
    assert health["watchdog"]["action"] == "stop" and "idle_timeout_min" in health["watchdog"]["reason"]
    assert [c[1] for c in stub.calls] == ["stop"]  # once: a stop is not repeated


@pytest.mark.parametrize(("limits", "rule"), [({"max_dollars": 1.0, "usd_per_hour": 3600.0}, "max_dollars"),
                                              ({"max_hours": 0.0004}, "max_hours")])
def test_watchdog_stops_at_the_money_and_time_caps(agent_of, stub, limits, rule):
    agent = agent_of(**limits)
    assert stub.wait_for("stop")[2] == f"Bearer {POD_KEY}"
    with agent.client() as client:
        assert rule in client.get("/health").json()["watchdog"]["reason"]


def test_pod_env_carries_no_secret_of_the_user(settings, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    env = pod_env(settings, token(), port=8765, usd_per_hour=0.69, grace_min=30, install_deps=True)
    assert not any(CANARY in value for value in env.values()) and "RUNPOD_API_KEY" not in env
    assert env["BIZSENT_MAX_USD"] == repr(settings.runpod.max_dollars) and env["BIZSENT_INSTALL_DEPS"] == "1"
    with pytest.raises(BizsentError, match="RUNPOD_API_KEY"):
        pod_env(settings, CANARY, port=8765, usd_per_hour=0.69, grace_min=30, install_deps=False)


def _assert_no_canary(blob: bytes, what: str) -> None:
    assert CANARY.encode() not in blob and OTHER_CANARY.encode() not in blob, what


def test_train_on_the_pod_end_to_end(agent_of, stub, tmp_path, model_dir, monkeypatch):
    """Wheel and bundle built on the laptop, installed and trained in the 'pod', events and adapter back."""
    from bizsent.core.model.dataset import build_dataset, export_bundle
    from bizsent.core.store import open_db
    from fakes.train import seed_store, tiny_settings

    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    monkeypatch.setenv("OPENAI_API_KEY", OTHER_CANARY)
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    settings = tiny_settings(laptop, model_dir)
    db = open_db(settings.db_path)
    seed_store(db, settings.image_dir, n_train=12, n_test=3, n_unlabeled=0)
    bundle = export_bundle(build_dataset(db, settings.image_dir, settings.train), laptop / "bundle",
                           max_pixels=settings.train.max_pixels)
    db.close()
    payload = prepare_payload(settings, bundle, laptop / "payload", name="pod-run", max_steps=2, load_in_4bit=False,
                              evaluate=False)
    with zipfile.ZipFile(payload.wheel.path) as whl:
        assert "bizsent/core/pods/agent/__main__.py" in whl.namelist()
        for name in whl.namelist():
            _assert_no_canary(whl.read(name), f"wheel {name}")
    _assert_no_canary(payload.bundle.path.read_bytes() + payload.job.path.read_bytes(), "bundle and job")
    assert prepare_payload(settings, bundle, laptop / "again", name="pod-run").wheel.path == payload.wheel.path

    agent = agent_of(grace_min=0.02, base=tmp_path, the_settings=settings)
    _assert_no_canary(Path(f"/proc/{agent.proc.pid}/environ").read_bytes(), "the pod's environment")
    # the laptop reaches the agent through a proxy, as on RunPod: one that cuts the first adapter download midway
    proxy = CutProxy(agent.url, cut_adapter_at=5000).start()
    url = agent_url(proxy.url + "/proxy/{pod_id}-{port}", POD_ID, 8765)
    with AgentChannel(url, agent.token, backoff_s=0.05) as channel:
        channel.upload_payload(payload, chunk_bytes=64 * 1024)
        channel.start()
        events, seen, deadline = [], 0, time.monotonic() + 120
        while (health := channel.health()).state not in ("done", "failed") and time.monotonic() < deadline:
            new, seen = channel.metrics(seen)
            events += new
            time.sleep(0.5)
        log = channel.logs(tail=400)
        assert health.state == "done", f"{health.error}\n" + "\n".join(log[-40:])
        events += channel.metrics(seen)[0]
        assert [e.step for e in events if e.kind == "train"] == [1, 2] and health.step == 2
        assert any(e.kind == "eval" and e.confusion for e in events)
        assert any(f"bizsent from {agent.workdir / 'site'}" in line for line in log)  # the wheel's code trained
        # not collected within the grace period: stopped, so the volume keeps the adapter
        assert stub.wait_for("stop")[1:] == ("stop", f"Bearer {POD_KEY}")
        sha = channel.download_result(laptop / "adapter", "adapter")
        assert sha == health.adapter_sha256 and proxy.adapter_ranges == [None, "bytes=5000-"]
        assert proxy.routes == {f"{POD_ID}-8765"}
        assert json.loads((laptop / "adapter" / "bizsent.json").read_text())["train"]["max_pixels"] == 56 * 56
        assert (laptop / "adapter" / "adapter_model.safetensors").stat().st_size > 0
        assert not stub.calls[1:]
        channel.mark_collected(sha)
        assert stub.wait_for("terminate")[1:] == ("terminate", f"Bearer {POD_KEY}")
        answers = json.dumps([channel.health().__repr__(), log]).encode()
    proxy.server.shutdown()
    _assert_no_canary(answers + agent.log.read_bytes(), "health, logs and the container log")
    assert POD_KEY.encode() not in answers + agent.log.read_bytes()
    # nor anywhere on the pod's volume (its database, bizsent.log, the training log, the installed code)
    volume = [p for p in agent.workdir.rglob("*") if p.is_file()]
    assert any(p.name == "pod.db" for p in volume) and any(p.name == "train.log" for p in volume)
    for path in volume:
        _assert_no_canary(path.read_bytes(), str(path))
        assert POD_KEY.encode() not in path.read_bytes(), path


def test_a_gpu_that_cannot_hold_the_recipe_is_refused_before_any_upload(agent_of, tmp_path):
    agent = agent_of(require_gpu=True, host=host("13.0", free_mib=500))
    with agent.client() as client:
        health = client.get("/health").json()
        assert health["state"] == "failed" and health["error"].startswith("no usable GPU: the NVIDIA GeForce RTX "
                                                                          "4090 has 500 MiB free, the recipe needs")
        assert client.put("/upload/job.json", params={"offset": 0}, content=b"{}",
                          headers={"X-Chunk-Sha256": "0" * 64}).status_code in (400, 409)


def test_require_gpu_refuses_a_torch_that_sees_no_gpu(agent_of, tmp_path, settings):
    """The fake host's nvidia-smi fits, but this machine's torch sees no GPU: with require_gpu the run fails in one
    line after the installs, before training; the pod's bizsent would refuse the CPU as well (train.require_cuda)."""
    agent = agent_of(require_gpu=True)
    job = payload.write_job(tmp_path / "job.json", name="nogpu", cfg=settings.train, constraints=["torch==2.14.1"])
    wheel = payload.build_wheel(settings.data_dir / "wheels")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}", encoding="utf-8")
    with AgentChannel(agent.url, agent.token, backoff_s=0.05) as channel:
        channel.upload_payload(payload.Payload(wheel, payload.pack_bundle(bundle, tmp_path / "b.tar"), job))
        channel.start()
        deadline = time.monotonic() + 120
        while (health := channel.health()).state not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
    assert health.state == "failed"
    assert health.error.startswith("no usable GPU: CUDA does not work: torch ") and "sees no GPU with driver 580" in \
        health.error
    assert (agent.workdir / "config.toml").exists() is False  # it never got as far as training


def test_a_scoring_pods_result_is_named_for_what_it_is(agent_of, tmp_path):
    """Every pod task's result comes back the same way (one checksummed tar), but it is not always an adapter:
    the download names what the task asked for (a pod that only scores has no adapter to wait for)."""
    agent = agent_of()
    with (AgentChannel(agent.url, agent.token, backoff_s=0.05) as channel,
          pytest.raises(BizsentError, match=r"^the pod has no scores yet \(state ")):
        channel.download_result(tmp_path / "result", "scores")
