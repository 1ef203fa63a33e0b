"""Issue 8 §5: labels are filed under a name that says exactly what produced them, and priced by their model.

Real SDK against the fake OpenAI server; the few-shot examples, the prompt version, the price table and the
batch collect all run unmocked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.errors import ConfigError
from bizsent.core.label import planning
from bizsent.core.labels import PROMPT_VERSION
from bizsent.core.store import open_db
from bizsent.jobs import batches, labeling
from bizsent.jobs.label_views import estimate_view
from fakes.label_posts import make_posts


def write_config(path: Path, url: str, *, few_shot: int = 0, price_in: float = 1.0, price_out: float = 4.0,
                 model: str = "gpt-fake") -> Path:
    path.write_text(
        f'[prices."gpt-fake"]\ninput_per_mtok = {price_in}\noutput_per_mtok = {price_out}\nbatch_discount = 0.5\n'
        '[prices."gpt-cheap"]\ninput_per_mtok = 0.1\noutput_per_mtok = 0.4\n'
        f'[data]\ndir = "data"\n[labeling]\nfew_shot = {few_shot}\n'
        f'[labeling.openai]\nbase_url = "{url}"\nmodel = "{model}"\nrequests_per_minute = 60000\n',
        encoding="utf-8")
    return path


@pytest.fixture
def fake(monkeypatch, fake_openai):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return fake_openai


def world(tmp_path, fake, n=6, human_train=6, **kw):
    settings = load_settings(write_config(tmp_path / "config.toml", fake.url, **kw), environ={})
    db = open_db(settings.db_path)
    ids = make_posts(db, settings.image_dir, n + human_train, human_train=human_train)
    return settings, db, ids


def test_few_shot_version_counts_the_examples_sent_and_hashes_which(tmp_path, fake):
    # 6 human train labels, two per class: fs4 sends 4 (2+1+1), not 3; the name says 4 and which posts.
    settings, db, ids = world(tmp_path, fake, few_shot=4)
    plan = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False))
    assert len(plan.examples) == 4
    assert sorted(e.answer.label for e in plan.examples) == ["bearish", "bearish", "bullish", "neutral"]
    assert re.fullmatch(rf"{PROMPT_VERSION}-fs4\.[0-9a-f]{{8}}", plan.params.prompt_version)
    assert plan.params.labeler == f"openai:gpt-fake@{plan.params.prompt_version}"
    assert plan.params.examples == tuple(e.post_id for e in plan.examples)
    # Asking for more than there is: the name says what was actually sent, and the plan says so in one line.
    settings5 = load_settings(write_config(tmp_path / "c5.toml", fake.url, few_shot=5), environ={})
    plan5 = planning.plan(db, settings5, planning.resolve(settings5, "openai", None, None, False))
    assert plan5.params.prompt_version.startswith(f"{PROMPT_VERSION}-fs5.")
    settings9 = load_settings(write_config(tmp_path / "c9.toml", fake.url, few_shot=9), environ={})
    plan9 = planning.plan(db, settings9, planning.resolve(settings9, "openai", None, None, False))
    assert plan9.params.prompt_version.startswith(f"{PROMPT_VERSION}-fs6.")
    assert any("asked for 9 example(s), sending 6" in note for note in plan9.notes)
    assert "asked for 9" in plan9.render()


def test_an_unreadable_example_image_is_reported_and_not_counted(tmp_path, fake):
    settings, db, ids = world(tmp_path, fake, few_shot=3)
    first = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False))
    broken = first.examples[0].post_id
    path = db.execute("SELECT i.path FROM posts p JOIN images i ON i.id = p.image_id WHERE p.id = ?",
                      [broken]).fetchone()[0]
    Path(path).unlink()
    plan = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False))
    assert broken not in plan.params.examples
    assert any("unreadable" in n and str(broken) in n for n in plan.notes)
    # another example of the same class took its place: a different set of posts, so a different name
    assert plan.params.prompt_version != first.params.prompt_version
    report = labeling.run_live(db, settings, plan, backoff_s=0.01)
    assert report.state == "done"
    labelers = {r[0] for r in db.execute("SELECT labeler FROM labels WHERE source = 'api' AND labeler LIKE 'openai:%'")}
    assert labelers == {plan.params.labeler}


def test_a_changed_example_label_changes_the_labeler_name(tmp_path, fake):
    settings, db, ids = world(tmp_path, fake, few_shot=3)
    before = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False)).params
    post = before.examples[0]
    db.execute("UPDATE labels SET sarcastic = 1 WHERE post_id = ? AND source = 'human'", [post])
    after = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False)).params
    assert after.examples == before.examples and after.prompt_version != before.prompt_version


def test_batch_collect_files_labels_under_the_jobs_own_name_model_and_price(tmp_path, fake):
    settings, db, ids = world(tmp_path, fake, n=4, few_shot=3)
    plan = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, True))
    submitted = batches.submit(db, settings, plan)
    assert submitted.submitted == len(plan.items) == 10  # 4 unlabeled + 6 human-train posts
    # Between submit and collect the user edits the config: no few-shot, another price, another model.
    later = load_settings(write_config(tmp_path / "config.toml", fake.url, few_shot=0, price_in=50.0,
                                       price_out=90.0, model="gpt-cheap"), environ={})
    batches.collect_until_done(db, later, echo=lambda line: None, sleep=lambda s: None)
    labels = db.execute("SELECT labeler FROM labels WHERE source = 'api' AND labeler LIKE 'openai:%'").fetchall()
    assert len(labels) == 10 and {r[0] for r in labels} == {plan.params.labeler}
    assert "-fs3." in plan.params.labeler
    calls = db.execute("SELECT model, prompt_version, tokens_in, tokens_out, usd FROM api_calls"
                       " WHERE status = 'ok'").fetchall()
    assert len(calls) == 10
    for model, version, tin, tout, usd in calls:
        assert (model, version) == ("gpt-fake", plan.params.prompt_version)
        assert usd == pytest.approx((tin * 1.0 + tout * 4.0) / 1e6 * 0.5)  # the price it was submitted at
    recorded = json.loads(db.execute("SELECT params FROM jobs").fetchone()[0])
    assert recorded["price"]["input_per_mtok"] == 1.0 and recorded["examples"] == list(plan.params.examples)


def test_a_model_without_a_price_is_refused_in_one_line(tmp_path, fake):
    settings, db, ids = world(tmp_path, fake)
    with pytest.raises(ConfigError) as err:
        planning.resolve(settings, "openai", "gpt-5-nano", None, False)
    message = str(err.value)
    assert "\n" not in message and "no price known for model gpt-5-nano" in message
    assert '[prices."gpt-5-nano"]' in message and "input_per_mtok" in message
    # The new-job dialog shows the same line instead of an estimate at another model's prices.
    view = estimate_view(db, settings, "openai", "gpt-5-nano", None, False)
    assert view.plan is None and view.blocker == message


def test_the_dialog_prices_the_model_typed_not_the_provider_default(tmp_path, fake):
    settings, db, ids = world(tmp_path, fake)
    default = estimate_view(db, settings, "openai", "gpt-fake", None, False).plan
    cheap = estimate_view(db, settings, "openai", "gpt-cheap", None, False).plan
    assert default is not None and cheap is not None
    e, c = default.chosen, cheap.chosen
    assert (e.tokens_in, e.tokens_out) == (c.tokens_in, c.tokens_out)
    assert e.usd == pytest.approx((e.tokens_in * 1.0 + e.tokens_out * 4.0) / 1e6)
    assert c.usd == pytest.approx((c.tokens_in * 0.1 + c.tokens_out * 0.4) / 1e6)
    batch = estimate_view(db, settings, "openai", "gpt-cheap", None, True).plan
    assert batch is not None and batch.chosen.usd == pytest.approx(c.usd * 0.5)


def test_the_repo_defaults_have_prices(tmp_path):
    settings = load_settings(Path(__file__).parent.parent / "config.toml", environ={})
    for provider in ("openai", "gemini", "compatible"):
        settings.price(getattr(settings.labeling, provider).model)
    assert settings.labeling.gemini.model == "gemini-2.5-flash-lite"
    lite = settings.price("gemini-2.5-flash-lite")
    assert (lite.input_per_mtok, lite.output_per_mtok, lite.batch_discount) == (0.10, 0.40, 0.5)
    mini = settings.price("gpt-5-mini")
    assert (mini.input_per_mtok, mini.output_per_mtok, mini.batch_discount) == (0.25, 2.00, 0.5)


def test_old_per_provider_price_keys_say_where_prices_went(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[labeling.openai]\nusd_per_mtok_in = 0.25\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r'prices belong to models now.*\[prices\."MODEL"\]'):
        load_settings(cfg, environ={})
