"""One owner per job (issue 19, point 1): a take-over moves the row's epoch on, and the process it replaced can no
longer write as the owner. Unit checks of the fence, then the user's case with real processes: Ctrl-Z a
`label --yes` run, resume its job once it shows dead, let the old process continue. Also point 2 (a heartbeat
only blocked is not a death; an import writes in short transactions) and point 9 (two resumes at once)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bizsent.core.collect.transfer import import_file
from bizsent.core.config import load_settings
from bizsent.core.errors import BizsentError, Superseded
from bizsent.core.label import ledger, planning
from bizsent.core.store import WRITE_CHUNK, liveness, open_db
from bizsent.jobs import control, labeling, rows, states
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import FakeOpenAI, Server

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _claim(db, job_id, key, epoch):
    return ledger.claim(db, key=key, job_id=job_id, post_id=1, provider="openai", model="m", prompt_version="p",
                        epoch=epoch)


def test_a_take_over_fences_every_write_of_the_process_it_replaced(db):
    db.execute("INSERT INTO posts (board, thread_no, post_no, text, source, scraped_at) VALUES"
               " ('biz', 1, 1, 'x', 'import', '2026-01-01')")
    job = rows.create(db, "label", {}, 2, {})
    old = rows.FIRST_EPOCH
    sent = _claim(db, job, "k1", old).call_id
    ledger.mark_sent(db, sent, old)
    pending = _claim(db, job, "k2", old).call_id
    new = rows.take_over(db, job, 2)  # what `jobs resume` does once the old process looks dead
    assert new == old + 1
    with pytest.raises(Superseded, match=f"job {job} was taken over"):
        _claim(db, job, "k3", old)
    with pytest.raises(Superseded):
        ledger.mark_sent(db, pending, old)
    with pytest.raises(Superseded):
        ledger.complete(db, sent, status="ok", usd=0.01, epoch=old)
    with pytest.raises(Superseded):
        rows.progress(db, job, done=1, failed=0, total=2, counts={}, epoch=old)
    with pytest.raises(Superseded):
        rows.finish(db, job, "done", None, old)
    assert rows.beat(db, job, old) is None and rows.beat(db, job, new) == "running"
    # The old process leaves what it had in flight maybe paid, with the cost of an answer that came back late.
    ledger.close_lost(db, sent, sent=True, usd=0.01)
    ledger.close_lost(db, pending, sent=False)
    got = dict(db.execute("SELECT id, status FROM api_calls").fetchall())
    assert got == {sent: ledger.MAYBE_PAID, pending: "abandoned"}
    assert ledger.maybe_paid(db) == (1, 0.01)
    assert rows.get(db, job)["state"] == "running" and rows.get(db, job)["epoch"] == new
    assert _claim(db, job, "k3", new).ok  # the new owner writes as before


def _world(tmp_path: Path, url: str, posts: int) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(FAKE_CONFIG + f'[labeling]\nmax_retries = 2\n[labeling.openai]\nbase_url = "{url}"\n'
                   'model = "gpt-fake"\nconcurrency = 8\nrequests_per_minute = 60000\n', encoding="utf-8")
    settings = load_settings(cfg, environ={})
    db = open_db(settings.db_path)
    make_posts(db, settings.image_dir, posts)
    db.close()
    return cfg


def _cli(cfg: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": PYTHONPATH}
    return subprocess.Popen([sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg),
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _query(db_path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db_path, timeout=30) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []


def _wait(what: str, check, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_stop_resume_continue_pays_twice_only_for_what_was_in_flight_and_the_ledger_says_so(tmp_path):
    fake = FakeOpenAI(latency_s=0.3)  # slow answers: the stopped process holds requests in flight
    with Server(fake) as server:
        cfg = _world(tmp_path, server.url, 60)
        db_path = load_settings(cfg, environ={}).db_path
        old = _cli(cfg, "label", "--yes")
        _wait("some answers", lambda: _query(db_path, "SELECT count(*) FROM api_calls WHERE status = 'ok'")
              and _query(db_path, "SELECT count(*) FROM api_calls WHERE status = 'ok'")[0][0] >= 8)
        old.send_signal(signal.SIGSTOP)  # Ctrl-Z
        try:
            in_flight = {r[0] for r in _query(db_path, "SELECT request_key FROM api_calls WHERE status = 'sent'")}

            def shown_dead() -> bool:
                from bizsent.jobs import views

                db = open_db(db_path, create=False)
                try:
                    return views.listing(db, "label")[0].status == "dead"
                finally:
                    db.close()

            _wait("the stopped job to show dead", shown_dead)
            resumed = subprocess.run([sys.executable, "-c", "from bizsent.cli import main; main()", "--config",
                                      str(cfg), "label", "--job", "1", "--yes"], cwd=ROOT, capture_output=True,
                                     text=True, timeout=300,
                                     env={**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": PYTHONPATH})
        finally:
            old.send_signal(signal.SIGCONT)
        out, err = old.communicate(timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert old.returncode == 1, (out, err)
    assert "Traceback" not in err and "job 1 was taken over by another process" in err
    assert len([line for line in err.strip().splitlines() if "taken over" in line]) == 1
    twice = {k for k, n in Counter(fake.billed_keys()).items() if n > 1}
    maybe = {r[0] for r in _query(db_path, "SELECT request_key FROM api_calls WHERE status = 'interrupted'")}
    assert twice <= maybe, "a request was paid twice without the ledger saying maybe paid"
    assert twice <= in_flight, "paid twice beyond what was in flight at the take-over"
    labeled = _query(db_path, "SELECT count(DISTINCT post_id) FROM labels WHERE source = 'api'")[0][0]
    assert labeled == 60


# ---- a heartbeat that is only blocked is not a death (point 2) ----

def test_a_stale_heartbeat_of_a_running_local_process_is_blocked_not_dead_but_a_stopped_one_is_dead(db):
    worker = subprocess.Popen(["sleep", "60"])
    try:
        job = rows.create(db, "label", {}, 1, {})
        late = (datetime.now(UTC) - timedelta(seconds=liveness.DEAD_AFTER_S + 5)).isoformat(timespec="seconds")
        db.execute("UPDATE jobs SET pid = ?, host = ?, heartbeat_at = ? WHERE id = ?",
                   [worker.pid, liveness.HOST, late, job])
        # Its beat waits behind a long write transaction: the job stays running, its claims stay live.
        assert states.status(rows.get(db, job)) == "running"
        assert liveness.is_dead("running", late, worker.pid, "another-machine")  # elsewhere only the beat tells
        worker.send_signal(signal.SIGSTOP)  # Ctrl-Z: nothing beats until it continues
        _wait("the stop to show", lambda: not liveness.pid_running(worker.pid))
        assert states.status(rows.get(db, job)) == "dead"
    finally:
        worker.kill()
        worker.wait()


def test_an_import_writes_in_short_transactions(db, settings, tmp_path):
    rows_n = 3 * WRITE_CHUNK + 7
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"post_no": n + 1, "text": f"post {n}", "label": "neutral"}) + "\n"
                            for n in range(rows_n)))
    commits = []
    db.conn.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
    try:
        report = import_file(db, path, image_dir=settings.image_dir)
    finally:
        db.conn.set_trace_callback(None)
    assert report.posts_new == rows_n and report.labels == {"human": rows_n}
    # Each transaction holds at most WRITE_CHUNK rows: a job's heartbeat waits for one chunk, never the file.
    assert len(commits) >= rows_n // WRITE_CHUNK + 1


# ---- resume: one at a time (point 9) ----

def test_two_resumes_at_once_one_is_refused(world_for_resume):
    db_path, cfg, job = world_for_resume
    barrier = threading.Barrier(2)
    results: list[object] = []

    def resume() -> None:
        conn = open_db(db_path, create=False)
        barrier.wait()
        try:
            results.append(control.resume(conn, db_path, cfg, job, db_path.parent / "logs"))
        except BizsentError as exc:
            results.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pids = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, BizsentError)]
    assert len(pids) == 1 and len(refused) == 1, results
    assert f"job {job} is starting" in str(refused[0])
    _wait("the resumed child to end", lambda: not liveness.pid_alive(pids[0]))


@pytest.fixture
def world_for_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake = FakeOpenAI()
    with Server(fake) as server:
        cfg = _world(tmp_path, server.url, 3)
        settings = load_settings(cfg, environ={})
        db = open_db(settings.db_path)
        params = planning.resolve(settings, "openai", None, None, False)
        job = labeling.queue(db, params)
        rows.finish(db, job, "failed", "the server could not be reached")
        db.close()
        yield settings.db_path, cfg, job


def test_any_job_kind_whose_row_was_taken_over_ends_superseded_and_leaves_the_row_to_its_new_owner(db):
    from bizsent.jobs.heartbeat import running

    job = rows.queue(db, "score-pool", {"run_id": 1})
    with pytest.raises(Superseded), running(db, job) as beat:
        mine = beat.epoch
        newer = rows.take_over(db, job, 0)  # what a resume elsewhere does while this one still works
    row = rows.get(db, job)
    assert newer == mine + 1 and row["state"] == "running" and row["epoch"] == newer  # not marked done by the old
