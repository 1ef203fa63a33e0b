"""`bizsent backfill` against a fake warosu-shaped archive: pages read as they are, images, resume, failures."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from bizsent.core.collect.archive import backfill, plan
from bizsent.core.collect.archive_html import LayoutError, thread_posts
from bizsent.core.config import Settings
from fakes.archive import FakeArchive
from fakes.fourchan import FakeClock

DAY1, DAY2 = date(2026, 11, 2), date(2026, 11, 3)
CLI = [sys.executable, "-c", "from bizsent.cli import main; main()"]


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def scenario(fake: FakeArchive) -> None:
    """Day 1: three threads (two listing pages), one of them gone from the archive; day 2: one thread."""
    fake.add_thread(5000, at(DAY1, 1))
    fake.add_thread(5100, at(DAY1, 5), replies=3)
    fake.add_thread(5200, at(DAY1, 9))
    fake.missing.add(5200)
    fake.add_thread(6000, at(DAY2, 2), replies=1)


@pytest.fixture
def fake():
    with FakeArchive(clock=FakeClock().now) as server:
        scenario(server)
        yield server


@pytest.fixture
def cfg(settings: Settings, fake: FakeArchive) -> Settings:
    settings.archive.base_url = fake.url
    return settings


def test_a_thread_page_is_read_as_warosu_writes_it(fake: FakeArchive) -> None:
    url = f"{fake.url}/biz/thread/5100"
    posts = thread_posts(fake._thread(5100), board="biz", url=url)
    assert [p.post_no for p in posts] == [5100, 5101, 5102, 5103]
    op = posts[0]
    assert op.is_op and op.thread_no == 5100 and op.subject == "thread 5100" and op.source == "archive"
    assert op.time == int(at(DAY1, 5).timestamp())
    assert op.text == "post 5100 about link & eth\nsecond line"
    assert op.image.url == f"{fake.url}/data/biz/img/5100123.jpg" and (op.image.width, op.image.height) == (64, 48)
    assert posts[1].image is None and posts[1].thread_no == 5100 and not posts[1].is_op
    assert posts[2].image.url == f"{fake.url}/data/biz/img/5102123.jpg"  # a relative link, made absolute


def test_backfill_stores_posts_and_images_with_source_archive_and_a_rerun_fetches_nothing(db, cfg) -> None:
    clock = FakeClock()
    todo = plan(db, cfg, DAY1, DAY2)
    assert todo.days == [DAY1, DAY2] and todo.requests > 0 and "no money is spent" in todo.summary()
    report = backfill(db, cfg, todo.days, clock=clock)
    assert (report.days_done, report.threads_stored, report.threads_missing) == (2, 3, 1)
    assert report.posts_new == 3 + 4 + 2 and report.images.images_ok == 2 + 2 + 1
    rows = db.execute("SELECT p.source, i.status FROM posts p LEFT JOIN images i ON i.id = p.image_id").fetchall()
    assert {source for source, _ in rows} == {"archive"}
    assert sum(status == "ok" for _, status in rows) == 5
    again = plan(db, cfg, DAY1, DAY2)
    assert again.days == [] and "already done" in again.summary()


def test_a_changed_layout_stops_with_one_line_and_keeps_what_came_before(db, cfg, fake: FakeArchive) -> None:
    fake.redesigned.add(5100)
    with pytest.raises(LayoutError) as err:
        backfill(db, cfg, [DAY1], clock=FakeClock())
    message = str(err.value)
    assert "\n" not in message and f"{fake.url}/biz/thread/5100 is not in the layout bizsent reads" in message
    assert db.execute("SELECT count(*) FROM posts").fetchone()[0] == 3  # thread 5000, before it
    fake.redesigned.clear()
    backfill(db, cfg, [DAY1], clock=FakeClock())  # fixed: goes on with 5100, not 5000 again
    assert len(fake.requests("/biz/thread/5000")) == 1 and len(fake.requests("/biz/thread/5100")) == 2


def test_the_cli_refuses_without_an_answer_and_says_a_bad_date_in_one_line(tmp_path: Path, fake: FakeArchive) -> None:
    env = dict(os.environ, BIZSENT_ARCHIVE__BASE_URL=fake.url)
    base = [*CLI, "--db", str(tmp_path / "x.db"), "backfill"]
    asked = subprocess.run([*base, "--from", "2026-11-02", "--to", "2026-11-03"], env=env, capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert asked.returncode == 1 and "2 day(s) to fetch" in asked.stdout and "nothing was done" in asked.stderr
    bad = subprocess.run([*base, "--from", "yesterday", "--to", "2026-11-03"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: --from 'yesterday' is not a date; write it as YYYY-MM-DD"
    assert fake.requests() == []


def _threads_done(db_file: Path) -> int:
    try:
        with sqlite3.connect(db_file, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM archive_pages WHERE kind = 'thread'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_killed_backfill_resumes_without_duplicates_at_one_request_per_second(tmp_path: Path) -> None:
    with FakeArchive() as server:  # real clock: requests from two processes, one after the other
        scenario(server)
        env = dict(os.environ, BIZSENT_ARCHIVE__BASE_URL=server.url)
        db_file = tmp_path / "x.db"
        command = [*CLI, "--db", str(db_file), "backfill", "--from", "2026-11-02", "--to", "2026-11-03", "--yes"]
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _threads_done(db_file) < 1:
            assert time.monotonic() < deadline and first.poll() is None, "the first run stored no thread"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        done_before = _threads_done(db_file)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        times = sorted(r.t for r in server.requests())
        thread_requests = {no: len(server.requests(f"/biz/thread/{no}")) for no in (5000, 5100, 5200, 6000)}
    assert second.returncode == 0, second.stderr
    assert done_before < 4  # killed midway
    with sqlite3.connect(db_file) as conn:
        states = dict(conn.execute("SELECT key, state FROM archive_pages WHERE kind = 'thread'").fetchall())
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT post_no) FROM posts").fetchone()
        pending = conn.execute("SELECT count(*) FROM images WHERE status != 'ok'").fetchone()[0]
    assert total == distinct == 9 and pending == 0
    assert states == {"5000": "done", "5100": "done", "5200": "missing", "6000": "done"}
    assert thread_requests[5000] == 1  # stored before the kill: never fetched again
    assert all(n <= 2 for n in thread_requests.values())  # at most the one in flight at the kill, twice
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.95, gaps
