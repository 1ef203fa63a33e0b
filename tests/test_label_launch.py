"""Jobs that outlive the console: detached `bizsent label --job ID`, cancel, stale-job recovery and resume."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from bizsent.core.config import load_settings
from bizsent.core.errors import BizsentError
from bizsent.core.label import ledger, planning
from bizsent.core.store import liveness, now, open_db
from bizsent.jobs import labeling, rows
from bizsent.jobs.launch import ROOT, bizsent_command
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import FakeOpenAI, Server

# The children run this checkout (the test's own PYTHONPATH first found it).
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
PARENT = """
import sys
from bizsent.core.config import load_settings
from bizsent.core.errors import BizsentError
from bizsent.core.store import open_db
from bizsent.core.label import planning
from bizsent.jobs.control import launch_label
settings = load_settings(sys.argv[1])
db = open_db(settings.db_path)
params = planning.resolve(settings, "openai", None, None, False)
job, pid = launch_label(db, settings.db_path, sys.argv[1], params, settings.data_dir / "logs")
print(job, pid)
"""


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake = FakeOpenAI(latency_s=0.2)
    with Server(fake) as server:
        cfg = tmp_path / "config.toml"
        cfg.write_text(FAKE_CONFIG + f'[labeling.openai]\nbase_url = "{server.url}"\nmodel = "gpt-fake"\n'
                       "concurrency = 2\nrequests_per_minute = 60000\n", encoding="utf-8")
        settings = load_settings(cfg, environ={})
        db = open_db(settings.db_path)
        yield fake, cfg, settings, db


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_detached_job_outlives_its_parent_and_writes_progress(world):
    fake, cfg, settings, db = world
    make_posts(db, settings.image_dir, 12)
    parent = subprocess.run([sys.executable, "-c", PARENT, str(cfg)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": PYTHONPATH}, timeout=60)
    assert parent.returncode == 0, parent.stderr
    job_id, pid = map(int, parent.stdout.split())
    # The parent has exited; the child runs on in a session of its own.
    assert liveness.pid_alive(pid) and os.getsid(pid) == pid
    states = []

    def finished() -> bool:
        job = rows.get(db, job_id)
        states.append((job["state"], job["done"]))
        return job["state"] not in ("queued", "running")

    wait_for(finished)
    job = rows.get(db, job_id)
    assert job["state"] == "done" and job["done"] == 12 and job["pid"] == pid
    assert any(state == "running" and 0 < done < 12 for state, done in states)  # progress seen while running
    assert db.execute("SELECT count(*) FROM labels"
                      " WHERE source = 'api' AND labeler LIKE 'openai:%'").fetchone()[0] == 12
    assert [j["id"] for j in rows.listing(db)] == [job_id]  # it ran the queued row, made no other
    assert (settings.data_dir / "logs" / f"label-job-{job_id}.log").exists()
    wait_for(lambda: not liveness.pid_alive(pid), 10)


def test_cancel_stops_a_detached_live_run(world):
    from bizsent.jobs.control import launch_label

    fake, cfg, settings, db = world
    fake.latency_s = 0.3
    make_posts(db, settings.image_dir, 40)
    job_id, pid = launch_label(db, settings.db_path, cfg, planning.resolve(settings, "openai", None, None, False),
                               settings.data_dir / "logs")
    wait_for(lambda: rows.get(db, job_id)["done"] >= 2)
    assert labeling.cancel(db, job_id, settings) == f"job {job_id} cancelled"
    wait_for(lambda: not liveness.pid_alive(pid), 15)
    job = rows.get(db, job_id)
    assert job["state"] == "cancelled"
    sent = db.execute("SELECT count(*) FROM api_calls").fetchone()[0]
    assert sent < 40 and len(fake.calls) == db.execute(
        "SELECT count(*) FROM api_calls WHERE status != 'cancelled'").fetchone()[0]


def test_stale_jobs_become_resumable_and_resume_by_id(world):
    fake, cfg, settings, db = world
    fake.latency_s = 0.0
    make_posts(db, settings.image_dir, 6)
    params = planning.resolve(settings, "openai", None, 4, False)
    dead = subprocess.Popen(["true"])
    dead.wait()
    living = subprocess.Popen(["sleep", "60"])
    old = "2020-01-01T00:00:00+00:00"
    crashed, silent, alive, batch, remote = (labeling.queue(db, params) for _ in range(5))
    # The one liveness rule: an old heartbeat is dead whatever the pid says (a pid can be reused); a fresh one is
    # alive unless its pid is gone on this very machine; a pid on another machine is never checked here.
    for job_id, pid, stamp, host in ((crashed, dead.pid, old, None), (silent, living.pid, old, None),
                                     (alive, living.pid, now(), liveness.HOST), (batch, dead.pid, old, None),
                                     (remote, dead.pid, now(), "another-machine")):
        db.execute("UPDATE jobs SET state = 'running', pid = ?, heartbeat_at = ?, host = ? WHERE id = ?",
                   [pid, stamp, host, job_id])
    rows.set_remote(db, batch, "batch_x", {**params.as_dict(), "mode": "batch", "batches": []})
    # The crashed run had labeled one post before it died.
    call = ledger.begin(db, key="k", job_id=crashed, post_id=1, provider="openai", model="gpt-fake",
                        prompt_version=params.prompt_version)
    ledger.complete(db, call, status="ok")
    assert labeling.recover_stale(db) == [crashed, silent]
    job = rows.get(db, crashed)
    assert job["state"] == "queued" and f"bizsent label --job {crashed}" in job["error"]
    assert {rows.get(db, j)["state"] for j in (alive, batch, remote)} == {"running"}
    with pytest.raises(BizsentError, match="already running"):
        labeling.job_params(db, settings, alive)
    living.kill()
    living.wait()
    resumed = subprocess.run(bizsent_command(settings.db_path, cfg, ["label", "--job", str(crashed), "--yes"]),
                             cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": PYTHONPATH})
    assert resumed.returncode == 0, resumed.stderr
    job = rows.get(db, crashed)
    assert job["state"] == "done" and job["done"] == 3 and job["error"] is None  # limit 4 minus the 1 it had
    assert len(fake.calls) == 3 and set(fake.efforts) == {"minimal"}


def test_a_job_that_cannot_start_says_why_in_its_row(world):
    fake, cfg, settings, db = world
    make_posts(db, settings.image_dir, 2)
    job_id = labeling.queue(db, planning.resolve(settings, "openai", None, None, False))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    result = subprocess.run(bizsent_command(settings.db_path, cfg, ["label", "--job", str(job_id), "--yes"]),
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**env, "PYTHONPATH": PYTHONPATH})
    assert result.returncode == 1 and "OPENAI_API_KEY" in result.stderr
    job = rows.get(db, job_id)
    assert job["state"] == "failed" and "OPENAI_API_KEY" in job["error"] and fake.calls == []
