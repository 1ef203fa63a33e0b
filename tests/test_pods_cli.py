"""`bizsent pods list | reap | terminate | gpus` and `costs`, run as the user runs them, against the fake RunPod."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.pods import api, launch, plan
from bizsent.core.store import now, open_db
from fakes.runpod_server import STUB_AGENT, USER_KEY, FakeRunpod

CANARY = USER_KEY


@pytest.fixture
def fake(tmp_path):
    with FakeRunpod(CANARY, root=tmp_path / "pods", boot_delay_s=0.05) as server:
        yield server


@pytest.fixture
def config(tmp_path, fake) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[data]\ndir = "data"\n[runpod]\napi_base = "{fake.url}"\nproxy_url = "{fake.proxy_url}"\n'
                    'install_deps = false\n', encoding="utf-8")
    return path


def cli(config: Path, *args: str, key: str | None = CANARY, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}
    if key:
        env["RUNPOD_API_KEY"] = key
    result = subprocess.run([sys.executable, "-m", "bizsent", "--config", str(config), *args], capture_output=True,
                            text=True, env=env, input=stdin, timeout=120)
    assert CANARY not in result.stdout + result.stderr
    return result


def test_list_and_reap_find_every_orphan_and_touch_nothing_else(config, fake, monkeypatch):
    settings = load_settings(config, environ={})
    db = open_db(settings.db_path)
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    with api.client(settings) as client:  # a pod of a run that is still going: known and live
        live = launch.start_pod(db, settings, client, plan.plan_pod(client, settings, "live", 100),
                                agent_path=STUB_AGENT)
    stray = fake.add_pod("bizsent-stray")  # a crashed launcher's pod, unknown to the database
    old = fake.add_pod("bizsent-old")  # the database believes it terminated
    job_done = fake.add_pod("bizsent-jobdone")  # its row is live but its job has finished
    notebook = fake.add_pod("my-notebook")  # the user's own: never touched
    db.execute("INSERT INTO pods (pod_id, name, state, created_at) VALUES (?, 'bizsent-old', 'terminated', ?)",
               [old, now()])
    job = db.execute("INSERT INTO jobs (kind, state, created_at) VALUES ('train', 'done', ?)", [now()]).lastrowid
    db.execute("INSERT INTO pods (pod_id, name, state, created_at, job_id) VALUES (?, 'bizsent-jobdone', 'running',"
               " ?, ?)", [job_done, now(), job])
    db.execute("INSERT INTO pods (pod_id, name, state, created_at) VALUES ('vanished01', 'bizsent-gone', 'running',"
               " ?)", [now()])

    listed = cli(config, "pods", "list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line[:1].isalnum()}
    assert "orphan: unknown to the database" in lines[stray]
    assert "orphan: the database says terminated" in lines[old]
    assert "orphan: its job has finished" in lines[job_done]
    assert "not bizsent's" in lines[notebook] and "bizsent (run live)" in lines[live.pod_id]
    assert "3 orphan(s)" in listed.stdout and "pod vanished01 (bizsent-gone) is no longer on RunPod" in listed.stdout
    assert db.execute("SELECT state FROM pods WHERE pod_id = 'vanished01'").fetchone() == ("gone",)

    declined = cli(config, "pods", "reap", stdin="n\n")
    assert "nothing was terminated" in declined.stdout and len(fake.pods) == 5

    reaped = cli(config, "pods", "reap", "--yes")
    assert reaped.returncode == 0, reaped.stderr
    assert reaped.stdout.count("terminated (RunPod confirms it is gone)") == 3
    assert set(fake.pods) == {live.pod_id, notebook} and set(fake.gone) == {stray, old, job_done}
    known = dict(db.execute("SELECT pod_id, state FROM pods").fetchall())
    assert known[stray] == known[old] == known[job_done] == "terminated"

    assert "no orphan pods" in cli(config, "pods", "reap", "--yes").stdout
    ended = cli(config, "pods", "terminate", live.pod_id, "--yes")
    assert ended.returncode == 0 and "confirms it is gone" in ended.stdout
    assert fake.billing_now() == [notebook]
    costs = cli(config, "costs")
    assert "pods (RunPod): $" in costs.stdout and "over 5 pod(s)" in costs.stdout
    db.close()


def test_gpus_shows_the_fallback_order_and_the_refused(config, fake):
    result = cli(config, "pods", "gpus")
    assert result.returncode == 0, result.stderr
    assert "1. NVIDIA GeForce RTX 4090 (COMMUNITY, $0.34/h, stock high)" in result.stdout
    assert "6. NVIDIA RTX A5000 (SECURE" in result.stdout


def test_without_the_key_one_line(config, fake):
    result = cli(config, "pods", "list", key=None)
    assert result.returncode == 1 and result.stderr.strip() == (
        "error: RUNPOD_API_KEY is not set; export it in your shell to use runpod")
    wrong = cli(config, "pods", "list", key="not-the-key-0000")
    assert wrong.returncode == 1 and "RunPod refused listing pods: Unauthorized (401)" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_list_against_a_server_that_never_answers_gives_up_in_one_line(tmp_path):
    """A server that accepts connections and never answers: `pods list` says what it waits for, and after
    runpod.timeout_s (small here) gives up in one line instead of hanging for minutes."""
    held: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        def hold() -> None:
            with contextlib.suppress(OSError):
                while True:
                    held.append(server.accept()[0])

        threading.Thread(target=hold, daemon=True).start()
        config = tmp_path / "config.toml"
        config.write_text(f'[data]\ndir = "data"\n[runpod]\napi_base = "http://127.0.0.1:{server.getsockname()[1]}"'
                          '\ntimeout_s = 1.0\n', encoding="utf-8")
        out = cli(config, "pods", "list")
    for conn in held:
        conn.close()
    assert held and out.returncode == 1 and "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("waiting for RunPod (http://127.0.0.1:") and "runpod.timeout_s" in lines[0], lines
    assert len(lines) == 2 and "did not answer listing pods within 1 s (runpod.timeout_s)" in lines[1], lines
