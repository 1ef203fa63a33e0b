"""The CLI's contract: exit codes and one-line errors, run as the user runs it (a subprocess)."""

import logging
import subprocess
import sys
from pathlib import Path

from core.log import RedactSecrets, setup_logging

BIZSENT = Path(sys.executable).with_name("bizsent")


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIZSENT), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def test_init_creates_a_database_and_exits_zero(tmp_path):
    result = run("--db", str(tmp_path / "x.db"), "init")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.db").exists()


def test_usage_error_exits_two(tmp_path):
    assert run("--db", str(tmp_path / "x.db"), "--no-such-flag").returncode == 2


def test_bad_config_is_one_line_exit_one_without_traceback(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[scrape]\nrequests_per_second = 'fast'\n")
    result = run("--config", str(cfg), "init")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "scrape.requests_per_second" in result.stderr and "Traceback" not in result.stderr


def test_locked_or_foreign_database_is_one_line(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 200)
    result = run("--db", str(junk), "init")
    assert result.returncode == 1 and "not a bizsent database" in result.stderr
    assert "Traceback" not in result.stderr


def test_log_filter_scrubs_secret_values(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "not-a-real-key-1234567890")
    path = setup_logging(tmp_path)
    try:
        raise RuntimeError("401 for key not-a-real-key-1234567890")
    except RuntimeError:
        logging.getLogger("bizsent.test").exception("call failed with not-a-real-key-1234567890")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = path.read_text()
    assert "not-a-real-key-1234567890" not in text
    assert "<OPENAI_API_KEY>" in text and "RuntimeError" in text
    root = logging.getLogger()
    for handler in [h for h in root.handlers if any(isinstance(f, RedactSecrets) for f in h.filters)]:
        root.removeHandler(handler)


def test_the_ledger_never_stores_a_key_quoted_in_an_error(db, monkeypatch):
    from core import ledger

    monkeypatch.setenv("OPENAI_API_KEY", "not-a-real-key-abcdefghij")
    db.execute("INSERT INTO api_calls (request_key, provider, model, created_at) VALUES ('k', 'openai', 'm', 'x')")
    ledger.complete(db, 1, status="error", error="401: Incorrect API key provided: not-a-real-key-abcdefghij")
    stored = db.execute("SELECT error FROM api_calls").fetchone()[0]
    assert "not-a-real-key-abcdefghij" not in stored and "<OPENAI_API_KEY>" in stored
