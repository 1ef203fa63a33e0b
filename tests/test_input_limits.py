"""Issue 19's smaller faults: a binary config file, infinite budget caps, short keys, a field of megabytes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from bizsent.core.collect.fields import MAX_FIELD_CHARS
from bizsent.core.collect.transfer import import_file
from bizsent.core.config import load_settings
from bizsent.core.errors import ConfigError
from bizsent.core.log import redact
from bizsent.core.store import open_db
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def test_a_binary_config_file_is_one_line_naming_the_file(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match=f"{cfg}: not a text file") as err:
        load_settings(cfg, environ={})
    assert "\n" not in str(err.value)
    result = subprocess.run([sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg),
                             "status"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": PYTHONPATH})
    assert result.returncode == 1 and "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert str(cfg) in result.stderr and result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("value", ["inf", "+inf", "nan", "1e309"])
def test_an_infinite_budget_cap_is_refused(tmp_path, value):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"[labeling]\nbudget_total_usd = {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="budget_total_usd"):
        load_settings(cfg, environ={})
    cfg.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="BIZSENT_LABELING__BUDGET_JOB_USD"):
        load_settings(cfg, environ={"BIZSENT_LABELING__BUDGET_JOB_USD": value})


def test_a_short_key_is_redacted_where_it_stands_alone(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k3y")
    said = "401: Bearer k3y is invalid (key=k3y); k3yboard and ak3y stay"
    assert redact(said) == "401: Bearer <OPENAI_API_KEY> is invalid (key=<OPENAI_API_KEY>); k3yboard and ak3y stay"
    monkeypatch.setenv("SOME_TOKEN", "1")  # not a declared key: a value this short is not scrubbed everywhere
    assert redact("1 of 1") == "1 of 1"


def test_a_field_larger_than_the_limit_is_a_row_error(db, settings, tmp_path):
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps({"post_no": 1, "text": "x" * (MAX_FIELD_CHARS + 1)}) + "\n"
                    + json.dumps({"post_no": 2, "text": "fine"}) + "\n", encoding="utf-8")
    report = import_file(db, path, image_dir=settings.image_dir)
    assert report.posts_new == 1 and report.rows_skipped == 1
    assert report.problems[0].startswith(f"huge.jsonl line 1: text is {MAX_FIELD_CHARS + 1:,} characters, more than")
    assert db.execute("SELECT post_no FROM posts").fetchall() == [(2,)]


def test_predict_on_an_endpoint_that_never_answers_says_what_it_waits_for_and_stops_at_the_bound(tmp_path):
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(image)
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"text": "wagmi", "image_path": str(image)}) + "\n", encoding="utf-8")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[data]\ndir = "data"\n[runpod]\nserverless_base = "http://127.0.0.1:{silent.getsockname()[1]}"\n'
                   "[serverless]\nwait_s = 1.0\n", encoding="utf-8")
    open_db(tmp_path / "data" / "bizsent.db").close()
    try:
        result = subprocess.run([sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg),
                                 "predict", "--file", str(posts), "--endpoint", "abc123def"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, "PYTHONPATH": PYTHONPATH, "RUNPOD_API_KEY": "rp-test-123456"})
    finally:
        silent.close()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "waiting for endpoint abc123def's answers: up to 2 s a request (serverless.wait_s)" in result.stderr
    assert "gave no answer for endpoint abc123def within 2 s (serverless.wait_s" in result.stderr
