"""Gemini live labeling through the real google-genai SDK against the fake Gemini server."""

from __future__ import annotations

import pytest
from bizsent.core.config import load_settings
from bizsent.core.label import planning
from bizsent.core.labels import PROMPT_VERSION
from bizsent.core.store import open_db
from bizsent.jobs import batches, labeling, rows
from fakes.gemini_server import FakeGemini, make_handler
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import Server


def test_gemini_live_run_with_rate_limits_and_bad_json(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "g-test")
    fake = FakeGemini(script=lambda n, body: {0: "429", 1: "malformed"}.get(n, "ok"))
    with Server(fake, make_handler, suffix="") as server:
        cfg = tmp_path / "config.toml"
        cfg.write_text(FAKE_CONFIG + f'[labeling.gemini]\nbase_url = "{server.url}"\nmodel = "gemini-fake"\n'
                       "requests_per_minute = 60000\n", encoding="utf-8")
        settings = load_settings(cfg, environ={})
        db = open_db(settings.db_path)
        make_posts(db, settings.image_dir, 5)
        plan = planning.plan(db, settings, planning.resolve(settings, "gemini", None, None, False))
        report = labeling.run_live(db, settings, plan, backoff_s=0.01)
    assert report.state == "done" and report.snapshot.done == 5
    labels = db.execute("SELECT labeler, label FROM labels WHERE source = 'api' AND labeler LIKE 'gemini:%'").fetchall()
    assert len(labels) == 5 and {r[0] for r in labels} == {f"gemini:gemini-fake@{PROMPT_VERSION}"}
    statuses = dict(db.execute("SELECT status, count(*) FROM api_calls GROUP BY status").fetchall())
    assert statuses == {"ok": 5, "error": 1, "invalid": 1}
    tokens = db.execute("SELECT min(tokens_in) FROM api_calls WHERE status = 'ok'").fetchone()[0]
    assert tokens > 258
    assert all(key for _, key in fake.calls)  # the ledger key travels with every request
    assert fake.thinking and set(fake.thinking) == {0}  # thinking off by default


def gemini_world(tmp_path, fake, server, extra: str = ""):
    cfg = tmp_path / "config.toml"
    cfg.write_text(FAKE_CONFIG + f'[labeling]\nmax_retries = 2\n[labeling.gemini]\nbase_url = "{server.url}"\n'
                   f'model = "gemini-fake"\n{extra}', encoding="utf-8")
    settings = load_settings(cfg, environ={})
    db = open_db(settings.db_path)
    return settings, db


def test_gemini_batch_submits_collects_resubmits_failures_at_the_discount(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "g-test")
    failed_once: set[str] = set()

    def batch_script(request):
        text = request["contents"][-1]["parts"][-1]["text"]
        if len(failed_once) < 2 and text not in failed_once:
            failed_once.add(text)
            return "error"
        return "ok"

    fake = FakeGemini(batch_script=batch_script)
    with Server(fake, make_handler, suffix="") as server:
        settings, db = gemini_world(tmp_path, fake, server, "thinking_budget = 64\n")
        make_posts(db, settings.image_dir, 6, corrupt=1, human_test=2)
        plan = planning.plan(db, settings, planning.resolve(settings, "gemini", None, None, True))
        report = batches.submit(db, settings, plan)
        assert report.submitted == 5 and report.remote_ids == ["batches/job1"]
        assert db.execute("SELECT count(*) FROM api_calls WHERE status = 'sent' AND mode = 'batch'"
                          " AND batch_id = 'batches/job1'").fetchone()[0] == 5
        first = batches.collect(db, settings)
        assert "waiting: batches/job1 JOB_STATE_RUNNING" in first[0]
        lines = []
        batches.collect_until_done(db, settings, interval_s=0, echo=lines.append)
    assert "done: labeled 5, failed 0" in lines[-1]
    assert [b["id"] for b in rows.get(db, report.job_id)["params"]["batches"]] == ["batches/job1", "batches/job2"]
    labels = db.execute("SELECT count(DISTINCT post_id), min(labeler) FROM labels"
                        " WHERE source = 'api' AND labeler LIKE 'gemini:%'").fetchone()
    assert labels == (5, f"gemini:gemini-fake@{PROMPT_VERSION}")
    assert db.execute("SELECT count(*) FROM labels"
                      " WHERE source = 'api' AND labeler LIKE 'gemini:%' AND split = 'test'").fetchone()[0] == 2
    statuses = dict(db.execute("SELECT status, count(*) FROM api_calls GROUP BY status").fetchall())
    assert statuses == {"ok": 5, "error": 2}
    assert "internal error" in db.execute("SELECT error FROM api_calls WHERE status = 'error'").fetchone()[0]
    usd, tin, tout = db.execute("SELECT sum(usd), sum(tokens_in), sum(tokens_out) FROM api_calls").fetchone()
    assert tin > 5 * 258 and usd == pytest.approx((tin * 0.30 + tout * 2.50) / 1e6 * 0.5)  # the batch discount
    assert sorted(fake.billed_batch) == sorted(r[0] for r in db.execute(
        "SELECT request_key FROM api_calls WHERE status = 'ok'"))
    assert fake.thinking and set(fake.thinking) == {64}
    assert rows.get(db, report.job_id)["state"] == "done"


def test_gemini_batch_cancel_cancels_remotely_and_frees_the_posts(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "g-test")
    fake = FakeGemini(batch_steps=100)
    with Server(fake, make_handler, suffix="") as server:
        settings, db = gemini_world(tmp_path, fake, server)
        make_posts(db, settings.image_dir, 3)
        queued = labeling.queue(db, planning.resolve(settings, "gemini", None, None, True))
        plan = planning.plan(db, settings, labeling.job_params(db, settings, queued))
        report = batches.submit(db, settings, plan, job_id=queued)
        assert report.job_id == queued and rows.get(db, queued)["state"] == "running"
        assert labeling.cancel(db, report.job_id, settings) == f"job {report.job_id} cancelled"
        assert fake.batches["job1"]["metadata"]["state"] == "BATCH_STATE_CANCELLED"
        assert rows.get(db, report.job_id)["state"] == "cancelled"
        assert db.execute("SELECT count(*) FROM api_calls WHERE status = 'cancelled'").fetchone()[0] == 3
        again = batches.submit(db, settings, planning.plan(db, settings, plan.params))
    assert again.submitted == 3  # cancelled requests no longer block the posts
