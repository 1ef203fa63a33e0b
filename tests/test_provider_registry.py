"""The provider registry: a provider defined in one module (tests/fakes/echo_provider.py) and registered labels
demo posts through the real planning and live-run code, with its own config section, key, price and labeler
name, and is told apart from the built-ins everywhere labels are read back."""

from __future__ import annotations

import json

import pytest
from bizsent.core.collect.transfer import export_file
from bizsent.core.config import load_settings
from bizsent.core.errors import BizsentError, ConfigError
from bizsent.core.label import planning, providers
from bizsent.core.label.agreement import render_agreement
from bizsent.core.labels import PROMPT_VERSION, origin
from bizsent.core.log import redact
from bizsent.core.store import open_db
from bizsent.core.store.browse import PostFilter, label_sources, post_ids
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel
from bizsent.jobs import labeling
from bizsent.tui.widgets.post_table import source_mark
from fakes.echo_provider import Echo
from fakes.label_posts import make_posts
from fakes.openai_server import FakeOpenAI, Server

KEY = "echo-test-key-0123456789"


@pytest.fixture
def echo():
    provider = providers.register(Echo())
    yield provider
    providers.unregister("echo")


@pytest.fixture
def fake():
    fake = FakeOpenAI(latency_s=0.01)
    with Server(fake) as server:
        fake.url = server.url
        yield fake


def settings_for(tmp_path, url: str):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[data]\ndir = "data"\n[labeling]\nprovider = "echo"\n'
                   f'[labeling.echo]\nbase_url = "{url}"\nrequests_per_minute = 60000\n', encoding="utf-8")
    return load_settings(cfg, environ={})


def test_a_registered_provider_labels_posts_through_the_real_labeling_code(echo, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-echo")
    settings = settings_for(tmp_path, fake.url)
    assert settings.labeling.section("echo").concurrency == 2 and settings.price("echo-vl-1").input_per_mtok == 0.05
    db = open_db(settings.db_path)
    ids = make_posts(db, settings.image_dir, 6, human_test=2)
    params = planning.resolve(settings, None, None, None, False)  # the config's provider: echo
    plan = planning.plan(db, settings, params)
    assert params.provider == "echo" and plan.chosen.provider == "echo" and plan.chosen.mode == "live"
    assert [e.provider for e in plan.estimates if e.mode == "live"][:2] == ["echo", "openai"]
    assert not any(e.provider == "echo" and e.mode == "batch" for e in plan.estimates)
    providers.require_key(settings, "echo")
    report = labeling.run_live(db, settings, plan, backoff_s=0.01)
    assert report.state == "done" and report.snapshot.done == 6
    rows = db.execute("SELECT post_id, source, labeler FROM labels WHERE source != 'human' ORDER BY post_id")
    rows = rows.fetchall()
    assert [r[0] for r in rows] == ids and {(r[1], r[2]) for r in rows} == {("api", f"echo:echo-vl-1@{PROMPT_VERSION}")}
    assert {origin(r[1], r[2]) for r in rows} == {"echo"}
    # its own key went to its own host, never OpenAI's
    assert set(fake.authorizations) == {f"Bearer {KEY}"}
    assert redact(f"key {KEY}") == "key <ECHO_API_KEY>"
    calls = db.execute("SELECT provider, model, status, usd FROM api_calls").fetchall()
    assert len(calls) == 6 and all(c[:3] == ("echo", "echo-vl-1", "ok") and c[3] > 0 for c in calls)
    # read back: export, the console's filters and marks, agreement
    out = tmp_path / "echo.jsonl"
    assert export_file(db, out, source="echo") == 6 and export_file(db, tmp_path / "o.jsonl", source="openai") == 0
    assert {json.loads(line)["labeler"] for line in out.read_text().splitlines()} == {
        f"echo:echo-vl-1@{PROMPT_VERSION}"}
    assert "echo" in label_sources(db) and source_mark("echo") == "E"
    assert sorted(post_ids(db, PostFilter(source="echo"))) == ids
    set_label(db, ids[0], NewLabel(label="bearish", source="api", labeler="openai:gpt-x@p3"))
    assert post_ids(db, PostFilter(source="openai")) == [ids[0]]
    assert f"echo:echo-vl-1@{PROMPT_VERSION}" in render_agreement(db)
    # a rerun has nothing left to send
    assert planning.plan(db, settings, planning.resolve(settings, "echo", None, None, False)).items == []


def test_a_registered_provider_is_checked_like_a_built_in(echo, fake, tmp_path, monkeypatch):
    monkeypatch.delenv("ECHO_API_KEY", raising=False)
    settings = settings_for(tmp_path, fake.url)
    with pytest.raises(ConfigError, match="ECHO_API_KEY is not set"):
        providers.require_key(settings, "echo")
    with pytest.raises(BizsentError, match="echo has no batch API"):
        planning.resolve(settings, "echo", None, None, True)
    bad = tmp_path / "bad.toml"
    bad.write_text("[labeling.echo]\nconcurrency = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="labeling.echo.concurrency"):
        load_settings(bad, environ={})


def test_without_registration_the_provider_is_unknown(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[labeling]\nprovider = "echo"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="labeling.provider"):
        load_settings(cfg, environ={})
    cfg.write_text('[labeling.echo]\nmodel = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting 'labeling.echo'"):
        load_settings(cfg, environ={})
    with pytest.raises(BizsentError, match="unknown provider 'echo'"):
        providers.get("echo")
