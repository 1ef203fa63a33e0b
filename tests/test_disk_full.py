"""A full disk (issue 19, point 6) on a small tmpfs: one line naming the folder and what is free, no traceback
(not even from the log file that cannot be written either), and nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.store import WRITE_CHUNK, open_db
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import FakeOpenAI, Server

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs (needs root and mount rights; skipped with the reason where there are none)."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(where)], capture_output=True,
                             text=True) if shutil.which("mount") else None
    if mounted is None or mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() if mounted else 'no mount'}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(folder: Path, leave_bytes: int) -> Path:
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))
    return filler


def _cli(cfg: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": PYTHONPATH, **(env or {})})


def _one_line_disk_full(result: subprocess.CompletedProcess, folder: Path) -> None:
    assert result.returncode == 1, result.stdout[-500:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "cannot rollback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is full" in errors[0] and "MB free" in errors[0] and str(folder) in errors[0]


def test_import_on_a_full_disk_is_one_line_and_every_written_chunk_is_whole(small_disk, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[data]\ndir = "{small_disk / "data"}"\n', encoding="utf-8")
    settings = load_settings(cfg, environ={})
    open_db(settings.db_path).close()
    source = tmp_path / "posts.jsonl"  # the file itself is elsewhere: only the database's disk is full
    source.write_text("".join(json.dumps({"post_no": n + 1, "text": f"post {n} " + "moon " * 40,
                                          "label": "bullish"}) + "\n" for n in range(20_000)), encoding="utf-8")
    filler = _fill(small_disk, 600_000)
    result = _cli(cfg, "import", str(source), "--split", "train")
    _one_line_disk_full(result, small_disk / "data")
    filler.unlink()
    with sqlite3.connect(settings.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        posts, labels = conn.execute("SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM labels)").fetchone()
    assert posts == labels and posts % WRITE_CHUNK == 0 and posts < 20_000  # whole chunks only
    again = _cli(cfg, "import", str(source), "--split", "train")  # with room again, the rerun completes it
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(settings.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 20_000


def test_label_on_a_full_disk_stops_in_one_line_and_resumes_paying_twice_only_for_maybe_paid(small_disk, tmp_path):
    fake = FakeOpenAI()
    with Server(fake) as server:
        cfg = tmp_path / "config.toml"
        cfg.write_text(FAKE_CONFIG.replace('dir = "data"', f'dir = "{small_disk / "data"}"')
                       + f'[labeling]\nmax_retries = 1\n[labeling.openai]\nbase_url = "{server.url}"\n'
                       'model = "gpt-fake"\nconcurrency = 4\nrequests_per_minute = 60000\n', encoding="utf-8")
        settings = load_settings(cfg, environ={})
        assert str(settings.db_path).startswith(str(small_disk))
        db = open_db(settings.db_path)
        make_posts(db, tmp_path / "images", 120)  # images elsewhere: the responses and the ledger fill the disk
        db.close()
        filler = _fill(small_disk, 150_000)
        env = {"OPENAI_API_KEY": "sk-test"}
        result = _cli(cfg, "label", "--yes", env=env)
        _one_line_disk_full(result, small_disk / "data")
        filler.unlink()
        job = _cli(cfg, "jobs", "list")
        assert "running" not in job.stdout, job.stdout  # failed (resumable) or dead: never shown running
        resumed = _cli(cfg, "label", "--yes", env=env)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
    with sqlite3.connect(settings.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        labeled = conn.execute("SELECT count(DISTINCT post_id) FROM labels WHERE source = 'api'").fetchone()[0]
        maybe = {r[0] for r in conn.execute("SELECT request_key FROM api_calls WHERE status = 'interrupted'")}
        still_open = conn.execute("SELECT count(*) FROM api_calls WHERE status IN ('pending', 'sent')").fetchone()[0]
    assert labeled == 120 and still_open == 0
    twice = {k for k, n in Counter(fake.billed_keys()).items() if n > 1}
    assert twice <= maybe
