"""`bizsent scrape --every`: the loop on an injectable clock, its lock, and the 1 request/second rule across
overlapping collections (real processes against the fake 4chan)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bizsent.core.errors import ConfigError
from bizsent.jobs.schedule import LOCK_FILE, AlreadyCollecting, Round, loop_lock, parse_every, run_every
from fakes.fourchan import FakeClock, FakeFourChan, biz_scenario

HOUR = 3600.0
CLI = [sys.executable, "-c", "from bizsent.cli import main; main()"]


class SuspendingClock(FakeClock):
    """A laptop that is closed for `suspend_s` during one sleep: the wall clock jumps, the sleep call returns."""

    def __init__(self, suspend_on_sleep: int, suspend_s: float) -> None:
        super().__init__()
        self.calls = 0
        self.suspend_on_sleep, self.suspend_s = suspend_on_sleep, suspend_s

    def sleep(self, seconds: float) -> None:
        self.calls += 1
        super().sleep(seconds)
        if self.calls == self.suspend_on_sleep:
            self.t += self.suspend_s


def recorder(clock: FakeClock, results: list[Round] | None = None, work_s: float = 0.0):
    starts: list[float] = []

    def once() -> Round:
        starts.append(clock.now())
        clock.t += work_s  # the round's own work takes time on the same clock
        outcome = results.pop(0) if results else Round(True, "ok")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return once, starts


@pytest.mark.parametrize(("text", "seconds"), [("60m", 3600), ("1h", 3600), ("90s", 90), ("1.5h", 5400),
                                               ("45", 45), ("2d", 172800)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0m", "-5m", "10x"])
def test_a_bad_duration_is_one_line(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a duration; write it like 60m"):
        parse_every(text)


def test_rounds_start_every_interval_from_the_last_start_however_long_a_round_takes() -> None:
    clock = FakeClock(start=0.0)
    once, starts = recorder(clock, work_s=600)
    assert run_every(once, HOUR, clock, rounds=3) == 3
    assert starts == [0.0, HOUR, 2 * HOUR]
    assert max(clock.sleeps) <= 30  # slept in short pieces, so a wake-up is noticed within one


def test_after_a_suspend_the_due_round_runs_at_once_and_missed_rounds_are_not_caught_up() -> None:
    clock = SuspendingClock(suspend_on_sleep=3, suspend_s=5 * HOUR)  # closed 90 s into the first wait
    once, starts = recorder(clock)
    run_every(once, HOUR, clock, rounds=3)
    woke = 90 + 5 * HOUR
    assert starts[0] == 1000.0
    assert starts[1] == pytest.approx(1000.0 + woke, abs=0.01)  # at once on waking, not 30 minutes later
    assert starts[2] == pytest.approx(starts[1] + HOUR)  # one round for the five missed, then the usual rhythm


def test_a_network_failure_is_retried_soon_and_an_exception_does_not_end_the_loop() -> None:
    clock = FakeClock(start=0.0)
    lines: list[str] = []
    once, starts = recorder(clock, [Round(False, "catalog.json: connection failed"), RuntimeError("disk gone"),
                                    Round(True, "ok")])
    assert run_every(once, HOUR, clock, retry_s=300, rounds=4, say=lines.append) == 4
    assert starts == [0.0, 300.0, 600.0, 600.0 + HOUR]
    assert "round failed: RuntimeError: disk gone (details in the log)" in lines
    assert "next round in 5 min (the last one failed on the network)" in lines


def test_one_loop_per_data_folder(tmp_path: Path) -> None:
    with loop_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid())
        with pytest.raises(AlreadyCollecting, match=f"already runs for {tmp_path} \\(pid {os.getpid()}\\)"), \
                loop_lock(tmp_path):
            pass
    with loop_lock(tmp_path):  # released when the loop ends
        pass


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_overlapping_collections_never_send_two_requests_within_a_second(tmp_path: Path) -> None:
    """A scheduled loop, a second loop (refused) and a plain scrape at the same time, on one data folder."""
    with FakeFourChan() as server:  # real clock: the requests come from several processes
        biz_scenario(server)
        for path in ("/biz/catalog.json", "/biz/thread/1001.json", "/biz/thread/2001.json"):
            server.delay[path] = 0.3  # slow answers: the processes are surely in flight together
        env = dict(os.environ, BIZSENT_SCRAPE__API_BASE=server.url, BIZSENT_SCRAPE__IMAGE_BASE=server.url)
        base = [*CLI, "--db", str(tmp_path / "x.db"), "scrape", "--no-images"]
        loop = subprocess.Popen([*base, "--every", "2s", "--rounds", "3"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: (tmp_path / LOCK_FILE).exists() and (tmp_path / LOCK_FILE).read_text().strip()
                      == str(loop.pid), "the loop to take its lock")
            second = subprocess.run([*base, "--every", "1h"], env=env, capture_output=True, text=True, timeout=60)
            plain = subprocess.run(base, env=env, capture_output=True, text=True, timeout=120)
            out, err = loop.communicate(timeout=120)
        finally:
            loop.kill()
        times = sorted(r.t for r in server.requests())
    assert second.returncode == 1 and second.stderr.strip().count("\n") == 0
    assert f"scheduled collection already runs for {tmp_path} (pid {loop.pid})" in second.stderr
    assert plain.returncode == 0, plain.stderr
    assert loop.returncode == 0, err
    assert out.count("round done:") == 3 and "coin mentions" in out and "predictions: " in out
    assert len(times) >= 6
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.95, gaps  # 1 request/second across all of them, the API's rule


def _collect_row(db_file: Path) -> dict | None:
    from bizsent.core.store import open_db
    from bizsent.jobs import rows

    if not db_file.exists():
        return None
    db = open_db(db_file, create=False)
    try:
        found = rows.listing(db, "collect")
        return found[-1] if found else None
    finally:
        db.close()


def test_the_loop_is_a_job_with_heartbeat_that_cancels_and_resumes(tmp_path: Path) -> None:
    """`scrape --every` writes a `collect` job row (heartbeat, rounds, next round); `bizsent jobs cancel` stops it
    while it waits; Ctrl-C leaves it queued and `bizsent jobs resume` runs the rounds it had left."""
    from bizsent.jobs.states import status
    from bizsent.jobs.views import listing

    db_file = tmp_path / "x.db"
    with FakeFourChan() as server:
        biz_scenario(server)
        env = dict(os.environ, BIZSENT_SCRAPE__API_BASE=server.url, BIZSENT_SCRAPE__IMAGE_BASE=server.url)
        base = [*CLI, "--db", str(db_file)]
        loop = subprocess.Popen([*base, "scrape", "--no-images", "--every", "1h"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: (_collect_row(db_file) or {}).get("done", 0) >= 1, "the first round")
            job = _collect_row(db_file)
            assert status(job) == "running" and job["pid"] == loop.pid and job["heartbeat_at"]
            assert job["counts"]["next_at"] > time.time() + 3000 and "round done" in job["counts"]["last"]
            from bizsent.core.store import open_db

            shown = next(v for v in listing(open_db(db_file, create=False)) if v.id == job["id"])
            assert shown.what.startswith("every 1 h, next ") and shown.resumable is False
            cancel = subprocess.run([*base, "jobs", "cancel", str(job["id"])], env=env, capture_output=True,
                                    text=True, timeout=60)
            assert cancel.returncode == 0, cancel.stderr
            loop.communicate(timeout=60)  # stops while it waits: not an hour later
        finally:
            loop.kill()
        assert _collect_row(db_file)["state"] == "cancelled"

        # An hour between rounds: Ctrl-C lands while it waits after round one, however slow the machine (with a
        # 1 s interval a loaded machine could finish both rounds between two looks)
        loop = subprocess.Popen([*base, "scrape", "--no-images", "--every", "1h", "--rounds", "2"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: (row := _collect_row(db_file)) is not None and row["id"] != job["id"]
                      and row["done"] + row["failed"] == 1, "the first round of the second loop")
            loop.send_signal(signal.SIGINT)
            loop.communicate(timeout=60)
        finally:
            loop.kill()
        second = _collect_row(db_file)
        assert second["state"] == "queued" and second["total"] == 2 and "resume" in second["error"]
        resume = subprocess.run([*base, "jobs", "resume", str(second["id"])], env=env, capture_output=True,
                                text=True, timeout=60)
        assert resume.returncode == 0, resume.stderr
        _wait_for(lambda: _collect_row(db_file)["state"] in ("done", "failed"), "the resumed loop to finish",
                  timeout=120)
    final = _collect_row(db_file)
    assert final["state"] == "done" and final["done"] + final["failed"] == 2  # the round left, not two more
    assert final["pid"] != loop.pid
