"""Rules the console and the CLI share, each defined once in the engine: the human test set, the approval between
an estimate and money, total spend, where a human answer goes, whether a model is on this machine; and the
console's poll messages coalescing in the queue."""

from __future__ import annotations

import pytest
from bizsent.core.config import load_settings
from bizsent.core.label import ledger, planning
from bizsent.core.label.approval import NOTHING_TO_LABEL, approve
from bizsent.core.label.budget import BudgetError
from bizsent.core.label.human import answer_target
from bizsent.core.labels import RANDOM_SAMPLING
from bizsent.core.model.modeling import model_here
from bizsent.core.store import now, open_db
from bizsent.core.store.posts import HUMAN_TEST, human_test, set_label
from bizsent.core.store.records import NewLabel
from bizsent.core.store.summary import spend, summarize
from fakes.label_posts import make_posts


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = tmp_path / "config.toml"
    config.write_text('[prices."gpt-fake"]\ninput_per_mtok = 1.0\noutput_per_mtok = 4.0\n[data]\ndir = "data"\n'
                      '[labeling]\nfew_shot = 0\n[labeling.openai]\nbase_url = "http://127.0.0.1:9/v1"\n'
                      'model = "gpt-fake"\n[images]\nread_text = false\n', encoding="utf-8")
    settings = load_settings(config, environ={})
    db = open_db(settings.db_path)
    return settings, db, make_posts(db, settings.image_dir, 6, human_test=2)


def plan(settings, db, limit=None):
    return planning.plan(db, settings, planning.resolve(settings, "openai", None, limit, False))


def test_human_test_is_one_condition_with_or_without_an_alias(world):
    _, db, ids = world
    set_label(db, ids[3], NewLabel(label="bearish", source="api", split="test", labeler="openai:x"))
    set_label(db, ids[4], NewLabel(label="bearish", source="human", split="train", labeler="human"))
    plain = db.execute(f"SELECT count(*) FROM labels WHERE {HUMAN_TEST}").fetchone()[0]
    aliased = db.execute(f"SELECT count(*) FROM labels h WHERE {human_test('h')}").fetchone()[0]
    assert plain == aliased == 2  # the two human test labels; not the API label in test, not the human train one
    assert human_test("h") == "h.source = 'human' AND h.split = 'test'"


def test_approval_says_why_a_plan_may_not_start(world, monkeypatch):
    settings, db, _ = world
    assert approve(db, settings, plan(settings, db)).ok
    settings.labeling.budget_job_usd = 1e-9
    capped = approve(db, settings, plan(settings, db))
    assert isinstance(capped.error, BudgetError) and "per-job cap" in capped.blocker and not capped.nothing_to_do
    monkeypatch.delenv("OPENAI_API_KEY")
    keyless = approve(db, settings, plan(settings, db))
    assert keyless.blocker == "OPENAI_API_KEY is not set; export it in your shell to use openai"
    empty = plan(settings, db)
    empty.items.clear()
    nothing = approve(db, settings, empty)
    assert nothing.nothing_to_do and nothing.blocker == NOTHING_TO_LABEL


def test_total_spend_counts_api_calls_and_pods(world, tmp_path):
    settings, db, ids = world
    call = ledger.begin(db, key="k", job_id=None, post_id=ids[0], provider="openai", model="gpt-fake",
                        prompt_version="v", status="sent")
    ledger.complete(db, call, status="ok", tokens_in=10, tokens_out=2, usd=0.25)
    db.execute("INSERT INTO pods (pod_id, name, created_at, total_usd) VALUES ('p1', 'train', ?, 1.5)", [now()])
    money = spend(db)
    assert (money.api_usd, money.pods_usd, money.total_usd) == (0.25, 1.5, 1.75)
    assert summarize(db, tmp_path, {})["spend_usd"] == 1.75


def test_only_a_random_order_adds_to_the_test_split():
    assert answer_target(chosen_by_hand=False, order="random", disagree_first=False, split="test") == (
        "test", RANDOM_SAMPLING)
    assert answer_target(chosen_by_hand=False, order="newest", disagree_first=False, split="test") == (
        "train", "newest")
    assert answer_target(chosen_by_hand=False, order="random", disagree_first=True, split="test") == (
        "train", "disagree-first")
    assert answer_target(chosen_by_hand=True, order="random", disagree_first=False, split="test") == (
        "train", "picked")


def test_a_model_is_here_as_a_folder_or_in_the_hub_cache(tmp_path):
    assert model_here(str(tmp_path))
    assert not model_here("")
    assert not model_here("nobody/no-such-model")  # not cached; nothing is downloaded
    assert not model_here("not a repo name")


def test_polls_coalesce_but_other_messages_do_not():
    from bizsent.tui.app import BizsentApp, StatusInfo
    from bizsent.tui.screens.eval import EvalScreen
    from bizsent.tui.widgets.post_table import PostTable

    assert PostTable.RowHighlighted(2).can_replace(PostTable.RowHighlighted(1))
    assert not PostTable.RowHighlighted(2).can_replace(PostTable.RowsLoaded({}))
    assert BizsentApp.StatusUpdated(StatusInfo("a")).can_replace(BizsentApp.StatusUpdated(StatusInfo("b")))
    assert not BizsentApp.WriteFailed("x").can_replace(BizsentApp.WriteFailed("y"))  # every failure is shown
    newer = EvalScreen.Polled([], 1, 5, [], None)
    assert newer.can_replace(EvalScreen.Polled([], 1, 5, [], None))
    assert not newer.can_replace(EvalScreen.Polled([], 2, 5, [], None))  # another run's rows
    assert not newer.can_replace(EvalScreen.Polled([], 1, 0, [], None))  # another cursor



def test_a_run_whose_job_died_is_shown_dead(tmp_path):
    import os

    from bizsent.core.evaluate.runs import DEAD, runs_list
    from bizsent.core.model.events import create_run

    db = open_db(tmp_path / "runs.db")
    stamp = now()
    db.execute("INSERT INTO jobs (id, kind, state, created_at, heartbeat_at, pid) VALUES"
               " (1, 'train', 'running', ?, '2020-01-01T00:00:00+00:00', NULL), (2, 'train', 'running', ?, ?, ?)",
               [stamp, stamp, stamp, os.getpid()])
    killed = create_run(db, kind="train", name="killed", job_id=1)
    alive = create_run(db, kind="train", name="alive", job_id=2)
    foreground = create_run(db, kind="train", name="no job")
    states = {run.id: run.state for run in runs_list(db)}
    assert states == {killed: DEAD, alive: "running", foreground: "running"}
