"""Jobs of every kind through the real CLI on the tiny model: a killed `bizsent train --local` reads as dead
within seconds (by its heartbeat, as another machine sees it) and resumes from its checkpoint with `--job`,
on the same run row (runs.job_id); a cancel stops a running train job at its next step; `bizsent jobs`
lists, shows, cancels and resumes any kind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.store import liveness, now, open_db
from bizsent.jobs import rows, states, views
from fakes.train import seed_store

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
ELSEWHERE = "another-machine"  # how a reader on another machine judges a row: by its heartbeat alone


@pytest.fixture
def world(tmp_path, model_dir):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[data]\ndir = "data"\n[train]\nbase_model = "{model_dir}"\nmax_pixels = 3136\nbatch_size = 2\n'
                   'grad_accum = 1\nval_fraction = 0.2\nlearning_rate = 5e-3\nsave_steps = 1\n', encoding="utf-8")
    settings = load_settings(cfg, environ={})
    db = open_db(settings.db_path)
    seed_store(db, settings.image_dir, n_train=6, n_test=3, n_unlabeled=0)
    yield cfg, settings, db
    db.close()


def cli(cfg: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg), *args]


def run(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli(cfg, *args), cwd=ROOT, env={**os.environ, "PYTHONPATH": PYTHONPATH},
                          capture_output=True, text=True, timeout=300)


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def seen_from_elsewhere(db, job_id: int) -> bool:
    """Is the job dead to a reader on another machine (no pid check possible)?"""
    job = rows.get(db, job_id)
    return liveness.is_dead(job["state"], job["heartbeat_at"], job["pid"], ELSEWHERE)


def test_killed_train_reads_dead_within_seconds_and_resumes_its_run_from_a_checkpoint(world):
    cfg, settings, db = world
    proc = subprocess.Popen(cli(cfg, "train", "--local", "--no-4bit", "--no-eval", "--max-steps", "6",
                                "--name", "killed"), cwd=ROOT, env={**os.environ, "PYTHONPATH": PYTHONPATH},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1)
    job_id = db.execute("SELECT id FROM jobs").fetchone()[0]
    trainer = Path(settings.data_dir / "runs" / "killed" / "trainer")
    wait_for(lambda: rows.get(db, job_id)["done"] >= 2 and any(trainer.glob("checkpoint-*")))
    # While it trains, its heartbeat keeps it alive even to a reader that cannot check its pid.
    assert views.one(db, job_id).status == "running" and not seen_from_elsewhere(db, job_id)
    run_id, run_job, run_state = db.execute("SELECT id, job_id, state FROM runs").fetchone()
    assert run_job == job_id and run_state == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert views.one(db, job_id).status == "dead"  # here, its vanished pid says so at once
    wait_for(lambda: seen_from_elsewhere(db, job_id), timeout=liveness.DEAD_AFTER_S + 5)
    assert views.one(db, job_id).resumable
    shown = run(cfg, "jobs", "show", str(job_id))
    assert "train dead" in shown.stdout and f"bizsent jobs resume {job_id}" in shown.stdout
    # A step logged after the last checkpoint (the kill came before the next save): the resume runs it again.
    saved = max(int(p.name.split("-")[1]) for p in trainer.glob("checkpoint-*"))
    db.execute("INSERT INTO metrics (run_id, kind, step, loss, created_at) VALUES (?, 'train', ?, 999.0, ?)",
               [run_id, saved + 1, now()])

    resumed = run(cfg, "train", "--local", "--job", str(job_id))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and f"run {run_id}:" in resumed.stdout
    job = rows.get(db, job_id)
    assert job["state"] == "done" and job["done"] == 6 and job["host"] == liveness.HOST
    # The same run row, now finished with its adapter; no second run was made.
    assert db.execute("SELECT id, job_id, state FROM runs").fetchall() == [(run_id, job_id, "done")]
    steps = [s for (s,) in db.execute("SELECT step FROM metrics WHERE run_id = ? AND kind = 'train'", [run_id])]
    assert len(steps) == len(set(steps)) and max(steps) == 6  # each step once: none from before the resume twice
    assert not db.execute("SELECT 1 FROM metrics WHERE loss = 999.0").fetchone()


def test_cancel_stops_a_detached_train_job_at_its_next_step(world):
    cfg, settings, db = world
    started = run(cfg, "train", "--local", "--no-4bit", "--no-eval", "--max-steps", "500", "--name", "long",
                  "--detach")
    assert started.returncode == 0, started.stderr
    job_id = db.execute("SELECT id FROM jobs").fetchone()[0]
    assert views.one(db, job_id).status in ("starting", "running")
    wait_for(lambda: rows.get(db, job_id)["done"] >= 1)
    pid = rows.get(db, job_id)["pid"]
    cancelled = run(cfg, "jobs", "cancel", str(job_id))
    assert cancelled.returncode == 0 and f"job {job_id} cancelled" in cancelled.stdout
    wait_for(lambda: not liveness.pid_alive(pid), timeout=60)
    job = rows.get(db, job_id)
    assert job["state"] == "cancelled" and job["done"] < 500
    assert db.execute("SELECT state, job_id FROM runs").fetchall() == [("cancelled", job_id)]
    listing = run(cfg, "jobs", "list").stdout
    assert f"{job_id:>4} train" in listing and "cancelled" in listing
    again = run(cfg, "jobs", "resume", str(job_id))
    assert again.returncode == 1 and "only a dead, queued or failed job" in again.stderr


def test_every_kind_is_registered_with_a_command_and_a_status_rule():
    assert {"label", "batch-collect", "train", "eval", "score-pool"} <= set(states.KINDS)
    batch = {"kind": "label", "state": "running", "params": {"mode": "batch"}, "heartbeat_at": None, "pid": None,
             "host": None}
    assert states.status(batch) == "waiting"  # a submitted batch has no process to die
    assert states.status({**batch, "params": {"mode": "live"}}) == "dead"  # a live run without a heartbeat
    assert states.status({**batch, "kind": "train", "state": "queued"}) == "queued"
    assert states.KINDS["train"].command(7) == ["train", "--local", "--job", "7"]
