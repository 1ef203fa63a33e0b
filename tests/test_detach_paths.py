"""--detach from any folder with relative paths (issue 19, point 7): the child runs elsewhere, so every path is
made absolute before it starts; `label` and `score-pool` have --detach like every job command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bizsent.core.store import liveness, open_db
from bizsent.jobs import rows, training
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import FakeOpenAI, Server

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _wait(check, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_label_detach_with_relative_config_and_db_runs_to_the_end(tmp_path):
    fake = FakeOpenAI()
    with Server(fake) as server:
        (tmp_path / "config.toml").write_text(
            FAKE_CONFIG + f'[labeling.openai]\nbase_url = "{server.url}"\nmodel = "gpt-fake"\n'
            "requests_per_minute = 60000\n", encoding="utf-8")
        db_file = tmp_path / "elsewhere" / "d.db"
        db = open_db(db_file)
        make_posts(db, tmp_path / "images", 5)
        result = subprocess.run(
            [sys.executable, "-c", "from bizsent.cli import main; main()", "--config", "config.toml", "--db",
             "elsewhere/d.db", "label", "--yes", "--detach"], cwd=tmp_path, capture_output=True, text=True,
            timeout=120, env={**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": PYTHONPATH})
        assert result.returncode == 0, result.stderr
        assert "started in the background" in result.stdout
        job = rows.listing(db, "label")[0]
        _wait(lambda: rows.get(db, job["id"])["state"] not in ("queued", "running"))
        assert rows.get(db, job["id"])["state"] == "done", rows.get(db, job["id"])["error"]
        assert db.execute("SELECT count(*) FROM labels WHERE source = 'api'").fetchone()[0] == 5
        _wait(lambda: not liveness.pid_alive(rows.get(db, job["id"])["pid"]))


def test_job_params_record_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    train = training.train_params("t", bundle=Path("bundles/b1"), base_model="model", max_steps=1, four_bit=None,
                                  evaluate=False, resume=True)
    assert train["bundle"] == str(tmp_path / "bundles" / "b1") and train["base_model"] == str(tmp_path / "model")
    hub = training.train_params("t", bundle=None, base_model="Qwen/Qwen2.5-VL-7B-Instruct", max_steps=1,
                                four_bit=None, evaluate=False, resume=True)
    assert hub["base_model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and hub["bundle"] is None
    assert training.eval_params("zero-shot", bundle=Path("b"), cryptobert=None)["bundle"] == str(tmp_path / "b")
