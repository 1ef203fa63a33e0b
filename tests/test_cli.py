"""The CLI's contract: exit codes and one-line errors, run as the user runs it (a subprocess)."""

import logging
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from bizsent.core.log import RedactSecrets, setup_logging

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
    from bizsent.core.label import ledger

    monkeypatch.setenv("OPENAI_API_KEY", "not-a-real-key-abcdefghij")
    db.execute("INSERT INTO api_calls (request_key, provider, model, created_at) VALUES ('k', 'openai', 'm', 'x')")
    ledger.complete(db, 1, status="error", error="401: Incorrect API key provided: not-a-real-key-abcdefghij")
    stored = db.execute("SELECT error FROM api_calls").fetchone()[0]
    assert "not-a-real-key-abcdefghij" not in stored and "<OPENAI_API_KEY>" in stored


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr


def test_unusable_data_folder_is_one_line_for_every_command(tmp_path):
    # Root-proof stand-in for a read-only project folder: a file where the data folder should be, so neither the
    # log nor the database can be created there.
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[data]\ndir = "{blocker}"\n')
    for args in (["status"], ["init"], ["export", str(tmp_path / "out.jsonl")]):
        assert f"data folder {blocker} is a file" in one_line_error(run("--config", str(cfg), *args))


def test_database_path_that_is_a_folder_or_garbage_is_one_line_naming_it(tmp_path):
    folder = tmp_path / "folder.db"
    folder.mkdir()
    assert f"database {folder} is a folder" in one_line_error(run("--db", str(folder), "status"))
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(os.urandom(8192))
    assert f"{corrupt} is not a bizsent database" in one_line_error(run("--db", str(corrupt), "status"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; see the root-proof test above")
def test_read_only_project_folder_is_one_line(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(0o555)
    try:
        error = one_line_error(run("--db", str(project / "data" / "x.db"), "status"))
        assert "does not exist" in error or "cannot create" in error
        error = one_line_error(run("--db", str(project / "data" / "x.db"), "init"))
        assert f"cannot create the data folder {project / 'data'}" in error
    finally:
        project.chmod(0o755)


def test_database_damaged_beyond_its_header_is_one_line_naming_it(tmp_path):
    path = tmp_path / "damaged.db"
    assert run("--db", str(path), "init").returncode == 0
    with closing(sqlite3.connect(path)) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'posts'").fetchone()[0]
    data = bytearray(path.read_bytes())
    data[(root - 1) * page:root * page] = os.urandom(page)  # the schema survives (the file opens), posts do not
    path.write_bytes(bytes(data))
    assert f"database {path} is damaged" in one_line_error(run("--db", str(path), "status"))
