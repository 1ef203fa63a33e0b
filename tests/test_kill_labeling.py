"""SIGKILL the real `bizsent label` process at random points of a 300-post run, restart, check the ledger.

Every post must end with exactly one label, and the only requests the fake server billed twice must be
those the ledger marked 'interrupted' (in flight at a kill): at most `concurrency` per kill, and reported.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bizsent.core.config import load_settings
from bizsent.core.store import open_db
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import FakeOpenAI, Server

ROOT = Path(__file__).resolve().parent.parent
# The children run this checkout (the test's own PYTHONPATH first found it).
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
CONCURRENCY = 8


def launch(cfg: Path) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": PYTHONPATH}
    return subprocess.Popen(
        [sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg), "label", "--provider",
         "openai", "--yes"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answered(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=10) as conn:
        try:
            return conn.execute("SELECT count(*) FROM api_calls WHERE status = 'ok'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def newest_job(db_path: Path) -> dict:
    from bizsent.jobs import views

    db = open_db(db_path, create=False)
    try:
        job = views.listing(db, "label")[0]
    finally:
        db.close()
    return {"status": job.status, "id": job.id}


def test_sigkill_and_resume_pays_twice_only_for_requests_in_flight(tmp_path):
    fake = FakeOpenAI(latency_s=0.03)
    rng = random.Random(int(os.environ.get("KILL_SEED", "11")))
    with Server(fake) as server:
        cfg = tmp_path / "config.toml"
        cfg.write_text(
            FAKE_CONFIG + f'[labeling]\nmax_retries = 2\n[labeling.openai]\nbase_url = "{server.url}"\n'
            f'model = "gpt-fake"\nconcurrency = {CONCURRENCY}\nrequests_per_minute = 60000\n', encoding="utf-8")
        settings = load_settings(cfg, environ={})
        db = open_db(settings.db_path)
        make_posts(db, settings.image_dir, 300)
        db.close()
        kills, said = 0, ""
        for target in sorted(rng.sample(range(20, 260), 3)):
            proc = launch(cfg)
            deadline = time.monotonic() + 60
            while answered(settings.db_path) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                # The killed run's job reads dead at once on this machine, and to any other once its heartbeat
                # is older than the liveness limit; only then do its claims count as dead.
                assert newest_job(settings.db_path)["status"] == "dead"
            said += proc.communicate()[1]
        final = launch(cfg)
        out, err = final.communicate(timeout=120)
        assert final.returncode == 0, err
        said += err
    db = open_db(settings.db_path)
    per_post = db.execute("SELECT p.id, count(l.id) FROM posts p LEFT JOIN labels l ON l.post_id = p.id"
                          " AND l.source = 'api' AND l.labeler LIKE 'openai:%' GROUP BY p.id").fetchall()
    assert len(per_post) == 300 and all(n == 1 for _, n in per_post)
    billed = Counter(fake.billed_keys())
    twice = {k for k, n in billed.items() if n > 1}
    interrupted = [r[0] for r in db.execute("SELECT request_key FROM api_calls WHERE status = 'interrupted'")]
    assert kills >= 1
    assert twice <= set(interrupted)
    assert len(interrupted) <= CONCURRENCY * kills
    # Nothing whose answer was recorded was ever sent again.
    ok_keys = Counter(r[0] for r in db.execute("SELECT request_key FROM api_calls WHERE status = 'ok'"))
    assert all(n == 1 for n in ok_keys.values()) and len(ok_keys) == 300
    # Every run that resent in-flight requests said so, with their number, before sending anything.
    reported = [int(m) for m in re.findall(r"(\d+) request\(s\) were in flight", said)]
    assert sum(reported) == len(interrupted)
