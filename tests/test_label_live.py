"""Live labeling against a fake OpenAI server through the real SDK: ledger, labels, retries, limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.label import ledger, planning
from bizsent.core.labels import PROMPT_VERSION
from bizsent.core.store import open_db
from bizsent.jobs import labeling
from fakes.label_posts import make_posts
from fakes.openai_server import FakeOpenAI, Server, last_user_text


def settings_for(tmp_path, url: str, **labeling_extra):
    cfg = tmp_path / "config.toml"
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in labeling_extra.items())
    cfg.write_text(
        '[prices."gpt-fake"]\ninput_per_mtok = 1.0\noutput_per_mtok = 4.0\n'
        '[prices."qwen-fake"]\ninput_per_mtok = 0.0\noutput_per_mtok = 0.0\n'
        '[data]\ndir = "data"\n[labeling]\n' + extra
        + f'[labeling.openai]\nbase_url = "{url}"\nmodel = "gpt-fake"\nconcurrency = 4\n'
        "requests_per_minute = 60000\n"
        f'[labeling.compatible]\nbase_url = "{url}"\nmodel = "qwen-fake"\nrequests_per_minute = 60000\n',
        encoding="utf-8")
    return load_settings(cfg, environ={})


@pytest.fixture
def fake():
    fake = FakeOpenAI(latency_s=0.01)
    with Server(fake) as server:
        fake.url = server.url
        yield fake


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def run(tmp_path, fake, n=12, corrupt=0, **extra):
    settings = settings_for(tmp_path, fake.url, **extra)
    db = open_db(settings.db_path)
    ids = make_posts(db, settings.image_dir, n, corrupt=corrupt, human_test=3)
    params = planning.resolve(settings, "openai", None, None, False)
    plan = planning.plan(db, settings, params)
    report = labeling.run_live(db, settings, plan, backoff_s=0.01)
    return settings, db, ids, plan, report


def test_live_run_labels_every_post_and_fills_the_ledger(tmp_path, fake):
    settings, db, ids, plan, report = run(tmp_path, fake, n=12, corrupt=2)
    assert report.state == "done" and report.snapshot.done == 10
    assert plan.skipped and sum(plan.skipped.values()) == 2 and all("corrupt" in r for r in plan.skipped)
    labels = db.execute("SELECT post_id, label, labeler, split FROM labels"
                        " WHERE source = 'api' AND labeler LIKE 'openai:%'").fetchall()
    assert len(labels) == 10 and {r[2] for r in labels} == {f"openai:gpt-fake@{PROMPT_VERSION}"}
    assert sum(r[3] == "test" for r in labels) == 3  # API labels of human test posts stay in the test split
    assert fake.efforts and set(fake.efforts) == {"minimal"}  # reasoning kept minimal by default
    calls = db.execute("SELECT status, tokens_in, tokens_out, usd, response_path, request_key FROM api_calls")
    calls = calls.fetchall()
    assert len(calls) == 10 and all(c[0] == "ok" and c[1] > 85 and c[3] > 0 for c in calls)
    assert all(json.loads(Path(c[4]).read_text())["usage"]["prompt_tokens"] == c[1] for c in calls)
    assert sorted(c[5] for c in calls) == sorted(fake.billed_keys())
    job = db.execute("SELECT state, done, total, progress, counts FROM jobs").fetchone()
    assert job[:4] == ("done", 10, 10, 1.0) and json.loads(job[4])["usd"] == pytest.approx(ledger.total_usd(db))
    # A rerun has nothing left to send.
    again = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False))
    assert again.items == []


def test_invalid_answers_are_recorded_and_retried(tmp_path, fake):
    bad = {0: "malformed", 1: "refusal", 2: "bad_label", 3: "empty"}
    fake.script = lambda n, body: bad.get(n, "ok")
    settings, db, ids, plan, report = run(tmp_path, fake, n=4, max_retries=2)
    assert report.snapshot.done == 4 and report.snapshot.failed == 0
    errors = dict(db.execute("SELECT status, count(*) FROM api_calls GROUP BY status").fetchall())
    assert errors == {"ok": 4, "invalid": 4}
    reasons = {r[0] for r in db.execute("SELECT error FROM api_calls WHERE status = 'invalid'")}
    assert any("refusal" in r for r in reasons) and "invalid JSON" in reasons and "empty response" in reasons
    assert any("label outside the set" in r for r in reasons)


def test_posts_that_never_get_a_valid_answer_fail_without_crashing(tmp_path, fake):
    fake.script = lambda n, body: "malformed" if "rekt" in last_user_text(body) else "ok"
    settings, db, ids, plan, report = run(tmp_path, fake, n=7, max_retries=1)
    assert report.state == "done" and report.snapshot.failed == 1 and report.snapshot.done == 6
    assert report.snapshot.errors == {"invalid JSON": 1}


def test_429_storm_loses_no_post(tmp_path, fake):
    fake.script = lambda n, body: "429" if n % 2 == 0 else "ok"
    settings, db, ids, plan, report = run(tmp_path, fake, n=20, max_retries=1)
    assert report.snapshot.done == 20 and report.snapshot.failed == 0
    assert db.execute("SELECT count(DISTINCT post_id) FROM labels"
                      " WHERE source = 'api' AND labeler LIKE 'openai:%'").fetchone()[0] == 20
    assert db.execute("SELECT count(*) FROM api_calls WHERE error = 'HTTP 429'").fetchone()[0] >= 10


def test_server_errors_are_retried(tmp_path, fake):
    fake.script = lambda n, body: "500" if n < 3 else "ok"
    settings, db, ids, plan, report = run(tmp_path, fake, n=3, max_retries=3)
    assert report.snapshot.done == 3


def test_budget_cap_stops_midway(tmp_path, fake):
    # Estimates are ~$0.0006 a post; the server bills ~$0.02 a post, so the $0.05 cap is crossed after a few.
    fake.extra_completion_tokens = 5000
    settings, db, ids, plan, report = run(tmp_path, fake, n=30, budget_job_usd=0.05)
    assert report.state == "cancelled" and report.error == "budget cap reached"
    assert 0 < report.snapshot.done < 30
    assert ledger.total_usd(db) <= 0.05 + 4 * 0.021  # at most the requests already in flight overshoot
    assert db.execute("SELECT state, error FROM jobs").fetchone() == ("cancelled", "budget cap reached")


def test_compatible_server_needs_no_key(tmp_path, fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    settings = settings_for(tmp_path, fake.url)
    db = open_db(settings.db_path)
    make_posts(db, settings.image_dir, 3)
    plan = planning.plan(db, settings, planning.resolve(settings, "compatible", None, None, False))
    report = labeling.run_live(db, settings, plan)
    assert report.snapshot.done == 3
    labelers = {r[0] for r in db.execute("SELECT labeler FROM labels"
                                         " WHERE source = 'api' AND labeler LIKE 'compatible:%'")}
    assert labelers == {f"compatible:qwen-fake@{PROMPT_VERSION}"}
    assert fake.efforts and set(fake.efforts) == {None}  # "default": no reasoning_effort sent to local servers
