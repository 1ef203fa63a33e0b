"""Gemini live labeling through the real google-genai SDK against the fake Gemini server."""

from __future__ import annotations

from fakes.gemini_server import FakeGemini, make_handler
from fakes.label_posts import make_posts
from fakes.openai_server import Server

from core.config import load_settings
from core.store import open_db
from jobs import labeling


def test_gemini_live_run_with_rate_limits_and_bad_json(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "g-test")
    fake = FakeGemini(script=lambda n, body: {0: "429", 1: "malformed"}.get(n, "ok"))
    with Server(fake, make_handler, suffix="") as server:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[data]\ndir = "data"\n[labeling.gemini]\nbase_url = "{server.url}"\nmodel = "gemini-fake"\n'
                       "requests_per_minute = 60000\n", encoding="utf-8")
        settings = load_settings(cfg, environ={})
        db = open_db(settings.db_path)
        make_posts(db, settings.image_dir, 5)
        plan = labeling.plan(db, settings, labeling.resolve(settings, "gemini", None, None, False))
        report = labeling.run_live(db, settings, plan, backoff_s=0.01)
    assert report.state == "done" and report.snapshot.done == 5
    labels = db.execute("SELECT labeler, label FROM labels WHERE source = 'gemini'").fetchall()
    assert len(labels) == 5 and {r[0] for r in labels} == {"gemini-fake@p1"}
    statuses = dict(db.execute("SELECT status, count(*) FROM api_calls GROUP BY status").fetchall())
    assert statuses == {"ok": 5, "error": 1, "invalid": 1}
    tokens = db.execute("SELECT min(tokens_in) FROM api_calls WHERE status = 'ok'").fetchone()[0]
    assert tokens > 258
    assert all(key for _, key in fake.calls)  # the ledger key travels with every request
