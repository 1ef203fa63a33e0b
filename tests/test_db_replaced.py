"""A database file replaced under a running job (issue 19, point 3): the job stops with one line before writing
into the wrong file, and `bizsent recover` puts back every paid answer that only its saved response kept."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.store import DatabaseReplaced, check_identity, open_db, transaction
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import FakeOpenAI, Server

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def test_a_write_transaction_refuses_a_file_that_is_not_the_one_opened(tmp_path):
    path = tmp_path / "d.db"
    db = open_db(path)
    check_identity(db)
    path.rename(tmp_path / "moved.db")
    path.write_bytes(os.urandom(8192))
    with pytest.raises(DatabaseReplaced, match="was moved or replaced"), transaction(db):
        db.execute("INSERT INTO notes (post_id, text, created_at) VALUES (1, 'x', 'now')")
    db.close()


def _cli(cfg: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg),
                             *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": PYTHONPATH})


def _answered(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM api_calls WHERE status = 'ok'").fetchone()[0]


def test_a_job_whose_database_is_replaced_stops_in_one_line_and_recover_restores_every_paid_answer(tmp_path):
    fake = FakeOpenAI(latency_s=0.2)
    with Server(fake) as server:
        cfg = tmp_path / "config.toml"
        cfg.write_text(FAKE_CONFIG + f'[labeling.openai]\nbase_url = "{server.url}"\nmodel = "gpt-fake"\n'
                       "concurrency = 8\nrequests_per_minute = 60000\n", encoding="utf-8")
        settings = load_settings(cfg, environ={})
        db = open_db(settings.db_path)
        make_posts(db, settings.image_dir, 80)
        db.close()
        job = _cli(cfg, "label", "--yes")
        deadline = time.monotonic() + 120
        while _answered(settings.db_path) < 10:
            assert time.monotonic() < deadline and job.poll() is None, "the job never got going"
            time.sleep(0.02)
        good = tmp_path / "moved.db"
        settings.db_path.rename(good)  # the user moves the database away and something else lands at its path
        settings.db_path.write_bytes(os.urandom(64 * 1024))
        out, err = job.communicate(timeout=120)
    assert job.returncode == 1, out[-500:] + err[-2000:]
    assert "Traceback" not in err and err.count("error:") == 1 and "was moved or replaced" in err
    settings.db_path.unlink()
    good.rename(settings.db_path)  # the good copy goes back
    recovered = subprocess.run([sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg),
                                "recover"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                               env={**os.environ, "PYTHONPATH": PYTHONPATH})
    assert recovered.returncode == 0, recovered.stderr
    with sqlite3.connect(settings.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        answered = {r[0] for r in conn.execute("SELECT request_key FROM api_calls WHERE status = 'ok'")}
        labels = conn.execute("SELECT count(DISTINCT post_id) FROM labels WHERE source = 'api'").fetchone()[0]
    saved = {p.stem.rsplit("-", 1)[0] for p in (settings.data_dir / "responses").glob("*/*.json")}
    assert saved and saved <= answered, "a paid answer is still missing from the database"
    assert labels == len(answered)
    again = subprocess.run([sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg),
                            "recover"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": PYTHONPATH})
    assert "0 answers restored" in again.stdout
