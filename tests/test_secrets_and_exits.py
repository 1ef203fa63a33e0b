"""Issue 8 §6: keys go only to their own host and never into the database, logs, responses or output; Ctrl-C,
bad overrides and a base model that cannot be fetched each end in one line. CLI tests run `bizsent` as the
user does (a subprocess) against the fake servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.errors import BizsentError, ConfigError
from bizsent.core.label import planning, providers
from bizsent.core.store import open_db
from bizsent.jobs import labeling
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import FakeOpenAI, Server

BIZSENT = Path(sys.executable).with_name("bizsent")
CANARY = "canary-openai-0123456789abcdefXYZ"  # redaction goes by value, not by shape
GEMINI_CANARY = "gm-canary-9876543210zyxwv"


def config(tmp_path: Path, url: str, extra: str = "") -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(FAKE_CONFIG + f'[labeling]\nmax_retries = 1\n[labeling.openai]\nbase_url = "{url}"\n'
                   f'model = "gpt-fake"\nrequests_per_minute = 60000\n'
                   f'[labeling.compatible]\nbase_url = "{url}"\nmodel = "qwen-fake"\nrequests_per_minute = 60000\n'
                   + extra, encoding="utf-8")
    return cfg


def bizsent(cfg: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIZSENT), "--config", str(cfg), *args], capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=timeout)


@pytest.fixture
def fake():
    fake = FakeOpenAI()
    with Server(fake) as server:
        fake.url = server.url
        yield fake


# -- the compatible provider's key ----------------------------------------------------------------------------

def test_a_compatible_server_never_gets_the_openai_key(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.delenv("BIZSENT_COMPATIBLE_API_KEY", raising=False)
    settings = load_settings(config(tmp_path, fake.url), environ={})
    db = open_db(settings.db_path)
    make_posts(db, settings.image_dir, 3)
    report = labeling.run_live(db, settings, planning.plan(db, settings, planning.resolve(
        settings, "compatible", None, None, False)))
    assert report.snapshot.done == 3
    assert fake.authorizations and not any(CANARY in (a or "") for a in fake.authorizations)
    # Its own variable, when set, is what it gets.
    monkeypatch.setenv("BIZSENT_COMPATIBLE_API_KEY", "local-server-key")
    fake.authorizations.clear()
    make_posts(db, settings.image_dir, 2, start=5000)
    labeling.run_live(db, settings, planning.plan(db, settings, planning.resolve(
        settings, "compatible", None, None, False)))
    assert fake.authorizations and set(fake.authorizations) == {"Bearer local-server-key"}


def test_a_key_over_plain_http_to_another_host_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BIZSENT_COMPATIBLE_API_KEY", "local-server-key")
    settings = load_settings(config(tmp_path, "http://10.11.12.13:8000/v1"), environ={})
    with pytest.raises(BizsentError, match="refusing to send BIZSENT_COMPATIBLE_API_KEY over plain http"):
        providers.require_key(settings, "compatible")
    https = load_settings(config(tmp_path, "https://vllm.example.org/v1"), environ={})
    providers.require_key(https, "compatible")  # https is fine, and so is loopback http (the test above)


# -- redaction: a server that echoes the key back -------------------------------------------------------------

def everything_stored(data_dir: Path, db_path: Path) -> str:
    """Every table's every row, and every file under the data folder (log, responses, job logs)."""
    out = []
    db = open_db(db_path, create=False)
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        out += [repr(row) for row in db.execute(f"SELECT * FROM [{table}]").fetchall()]
    db.close()
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.name.startswith("bizsent.db"):
            out.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(out)


def test_a_key_echoed_in_error_bodies_reaches_no_table_file_or_output(tmp_path, fake):
    fake.script = lambda n, body: "echo_auth"
    cfg = config(tmp_path, fake.url)
    settings = load_settings(cfg, environ={})
    db = open_db(settings.db_path)
    make_posts(db, settings.image_dir, 3)
    db.close()
    env = {**os.environ, "OPENAI_API_KEY": CANARY, "GEMINI_API_KEY": GEMINI_CANARY}
    live = bizsent(cfg, "label", "--yes", env=env)
    assert any(CANARY in (a or "") for a in fake.authorizations)  # the server did get it, and echoed it
    assert "<OPENAI_API_KEY>" in live.stdout + live.stderr  # the echo was shown, scrubbed
    fake.echo_auth_on_upload = True
    batch = bizsent(cfg, "label", "--batch", "--yes", env=env)
    assert batch.returncode == 1 and "refused the batch" in batch.stderr
    listing = bizsent(cfg, "batches", "show", "2", env=env)
    costs = bizsent(cfg, "costs", env=env)
    outputs = "".join(r.stdout + r.stderr for r in (live, batch, listing, costs))
    stored = everything_stored(settings.data_dir, settings.db_path)
    assert list((settings.data_dir / "responses").rglob("*.json"))  # the error bodies were kept...
    assert "<OPENAI_API_KEY>" in stored  # ...and the job rows and ledger say what happened
    for secret in (CANARY, GEMINI_CANARY):
        assert secret not in outputs and secret not in stored


# -- Ctrl-C ---------------------------------------------------------------------------------------------------

def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, fake):
    fake.latency_s = 30.0
    cfg = config(tmp_path, fake.url)
    settings = load_settings(cfg, environ={})
    db = open_db(settings.db_path)
    make_posts(db, settings.image_dir, 3)
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    proc = subprocess.Popen([str(BIZSENT), "--config", str(cfg), "label", "--yes"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while not fake.calls and time.monotonic() < deadline:  # requests are in flight
            time.sleep(0.05)
        assert fake.calls
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == "interrupted; everything already written is kept"
    assert sum("interrupt" in line.lower() for line in lines) == 1
    assert "Aborted" not in err and "Traceback" not in err
    job = db.execute("SELECT state, error FROM jobs").fetchone()
    assert job[0] == "queued" and "bizsent label --job 1" in job[1]  # resumable at once, not "running"


def test_ctrl_c_at_a_prompt_is_the_same_one_line(tmp_path, fake):
    cfg = config(tmp_path, fake.url)
    settings = load_settings(cfg, environ={})
    make_posts(open_db(settings.db_path), settings.image_dir, 3)
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    proc = subprocess.Popen([str(BIZSENT), "--config", str(cfg), "label"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        buffer = ""
        while "send 3 requests" not in buffer and time.monotonic() < deadline:
            buffer += os.read(proc.stdout.fileno(), 4096).decode()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert [line for line in err.splitlines() if line.strip()] == ["interrupted; everything already written is kept"]
    assert fake.calls == []


# -- a bad BIZSENT_* override -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value", "key"), [
    ("BIZSENT_LABEL__XYZ", "1", "label"),  # no such section
    ("BIZSENT_TRAIN__LORA_R", "sixteen", "train.lora_r"),  # wrong type
    ("BIZSENT_SCRAPE__BOARD__X", "1", "board"),  # a setting used as a section
])
def test_a_bad_environment_override_is_blamed_on_the_variable(tmp_path, name, value, key):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[scrape]\nboard = 'biz'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={name: value})
    message = str(err.value)
    assert message.startswith(f"environment variable {name}:") and key in message
    assert str(cfg) not in message and "\n" not in message


def test_a_bad_environment_override_on_the_command_line_exits_one(tmp_path):
    env = {**os.environ, "BIZSENT_LABELING__FEW_SHOT": "many"}
    result = subprocess.run([str(BIZSENT), "--db", str(tmp_path / "x.db"), "init"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 1 and "environment variable BIZSENT_LABELING__FEW_SHOT" in result.stderr
    assert result.stderr.strip().count("\n") == 0


# -- train --local with a base model that is neither on disk nor reachable ---------------------------------------

@pytest.mark.parametrize("offline", [False, True])
def test_train_with_an_unreachable_base_model_fails_in_seconds_and_leaves_no_run(tmp_path, offline):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[data]\ndir = "data"\n', encoding="utf-8")
    settings = load_settings(cfg, environ={})
    db = open_db(settings.db_path)
    make_posts(db, settings.image_dir, 15, human_test=6, human_train=9)
    db.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9")  # an empty cache, a dead hub
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    model = "someone/not-a-cached-model"
    result = subprocess.run([str(BIZSENT), "--config", str(cfg), "train", "--local", "--base-model", model],
                            capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and model in line and f"hf download {model}" in line
    db = open_db(settings.db_path, create=False)
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
