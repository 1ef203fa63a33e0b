"""`bizsent label / batches / costs` as the user runs them (subprocesses) against the fake OpenAI server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.label import planning
from bizsent.core.store import open_db
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import FakeOpenAI, Server

BIZSENT = Path(sys.executable).with_name("bizsent")


@pytest.fixture
def world(tmp_path):
    fake = FakeOpenAI(latency_s=0.005)
    with Server(fake) as server:
        cfg = tmp_path / "config.toml"
        cfg.write_text(
            FAKE_CONFIG + f'[labeling]\nbudget_job_usd = 1.0\n[labeling.openai]\nbase_url = "{server.url}"\n'
            'model = "gpt-fake"\nrequests_per_minute = 60000\n', encoding="utf-8")
        settings = load_settings(cfg, environ={})
        db = open_db(settings.db_path)
        make_posts(db, settings.image_dir, 10, corrupt=1, human_test=3)
        yield fake, cfg, db


def bizsent(cfg: Path, *args: str, key: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "GEMINI_API_KEY")}
    if key:
        env["OPENAI_API_KEY"] = "sk-test"
    return subprocess.run([str(BIZSENT), "--config", str(cfg), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_dry_run_prints_the_estimate_and_spends_nothing(world):
    fake, cfg, db = world
    result = bizsent(cfg, "label", "--dry-run", key=False)
    assert result.returncode == 0, result.stderr
    assert "posts to label: 9" in result.stdout and "skipped, not sent: 1 (image corrupt" in result.stdout
    for provider in ("openai", "gemini", "compatible"):
        assert provider in result.stdout
    assert result.stdout.count(" live ") == 3 and result.stdout.count(" batch ") == 2
    assert "formula" in result.stdout
    assert fake.calls == [] and db.execute("SELECT count(*) FROM api_calls").fetchone()[0] == 0


def test_batch_estimate_has_no_batch_row_for_compatible_servers(world):

    _, cfg, db = world
    settings = load_settings(cfg, environ={})
    plan = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, True))
    rows = [(e.provider, e.mode) for e in plan.estimates]
    assert rows[0] == ("openai", "batch") and plan.chosen.mode == "batch"
    assert ("compatible", "live") in rows and ("compatible", "batch") not in rows


def test_missing_key_is_one_line_and_sends_nothing(world):
    fake, cfg, db = world
    result = bizsent(cfg, "label", "--yes", key=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "OPENAI_API_KEY" in result.stderr
    assert fake.calls == []


def test_estimate_over_the_cap_refuses_to_start(world):
    fake, cfg, db = world
    cfg.write_text(cfg.read_text().replace("budget_job_usd = 1.0", "budget_job_usd = 0.00001"))
    result = bizsent(cfg, "label", "--yes")
    assert result.returncode == 1 and "per-job cap" in result.stderr and "Traceback" not in result.stderr
    assert fake.calls == []


def test_live_run_then_calibrated_estimate_and_costs(world):
    fake, cfg, db = world
    result = bizsent(cfg, "label", "--yes", "--limit", "5")
    assert result.returncode == 0, result.stderr
    assert "labeled 5, failed 0, of 5" in result.stdout
    again = bizsent(cfg, "label", "--dry-run")
    assert "posts to label: 4" in again.stdout and "calibrated on 5 recorded calls" in again.stdout
    costs = bizsent(cfg, "costs")
    assert costs.returncode == 0 and "by provider:" in costs.stdout and "by day:" in costs.stdout
    assert "openai gpt-fake" in costs.stdout
    listing = bizsent(cfg, "batches", "list")
    assert " done " in listing.stdout and "gpt-fake" in listing.stdout


def test_batch_run_submits_collects_and_resubmits_failures(world):
    fake, cfg, db = world
    failed_once: set[str] = set()

    def batch_script(line):
        if len(failed_once) < 2 and line["custom_id"] not in failed_once:
            failed_once.add(line["custom_id"])
            return "error"
        return "ok"

    fake.batch_script = batch_script
    cfg.write_text(cfg.read_text() + 'reasoning_effort = "high"\n')
    result = bizsent(cfg, "label", "--batch", "--yes")
    assert result.returncode == 0, result.stderr and "submitted 9 requests" in result.stdout
    assert db.execute("SELECT count(*) FROM api_calls WHERE status = 'sent' AND mode = 'batch'").fetchone()[0] == 9
    first = bizsent(cfg, "batches", "collect").stdout
    assert "job 1 waiting: batch_1 in_progress" in first
    waited = bizsent(cfg, "batches", "collect", "--wait", "--interval", "0")
    assert waited.returncode == 0, waited.stderr
    assert "resubmitted 2" in waited.stdout
    assert waited.stdout.strip().splitlines()[-1].startswith("job 1 done: labeled 9, failed 0")
    assert db.execute("SELECT count(DISTINCT post_id) FROM labels"
                      " WHERE source = 'api' AND labeler LIKE 'openai:%'").fetchone()[0] == 9
    statuses = dict(db.execute("SELECT status, count(*) FROM api_calls GROUP BY status").fetchall())
    assert statuses == {"ok": 9, "error": 2}
    usd = db.execute("SELECT sum(usd), sum(tokens_in), sum(tokens_out) FROM api_calls").fetchone()
    assert usd[0] == pytest.approx((usd[1] * 0.25 + usd[2] * 2.0) / 1e6 * 0.5)  # batch discount applied
    assert set(fake.efforts) == {"high"}  # the configured reasoning_effort travels in every JSONL line
    show = bizsent(cfg, "batches", "show", "1")
    assert "batch_1" in show.stdout and "done" in show.stdout
    counts = json.loads(db.execute("SELECT counts FROM jobs WHERE id = 1").fetchone()[0])
    assert counts["estimate_usd"] > 0 and counts["skipped"]  # collects keep what submit estimated and skipped
