"""The Spot-check screen through Textual's Pilot: ordering, accept and correct write human labels through the app's
writer (train split unless chosen), a post's existing human label keeps its split, undo puts things back."""

from __future__ import annotations

import pytest
from bizsent.core.evaluate.spotcheck import order_items
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.spotcheck import SpotCheckScreen
from bizsent.tui.widgets.image_preview import ImagePreview
from fakes.eval_runs import add_predictions, add_run, human, probs
from fakes.tui import build_store, open_screen, until


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    return build_store(db, settings.image_dir)


@pytest.fixture
def run(db, store):
    """Margins: post 5 0.02, post 4 0.10, post 1 0.30, post 6 0.60 (post 1 and 5 carry openai bullish)."""
    run_id = add_run(db)
    add_predictions(db, run_id, {store[1]: probs(0.6, 0.1, 0.3), store[4]: probs(0.2, 0.35, 0.45),
                                 store[5]: probs(0.4, 0.18, 0.42), store[6]: probs(0.1, 0.15, 0.75)})
    return run_id




async def open_spot(app: BizsentApp, pilot) -> SpotCheckScreen:
    return await open_screen(app, pilot, "spotcheck", SpotCheckScreen, lambda screen: screen.loaded)


def human_rows(db):
    return db.execute("SELECT post_id, label, split, labeler FROM labels WHERE source = 'human' ORDER BY post_id"
                      ).fetchall()


async def test_orders_by_uncertainty_then_by_disagreement(settings, db, store, run):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_spot(app, pilot)
        assert [it.post_id for it in screen.items] == [store[5], store[4], store[1], store[6]]
        assert [round(it.margin, 2) for it in screen.items] == [0.02, 0.1, 0.3, 0.6]
        await until(pilot, lambda: screen.query_one(ImagePreview).picture.image is not None)
        assert "margin 0.02" in str(screen.query_one("#spot-probs").content)
        assert "openai: bullish" in str(screen.query_one("#spot-labels").content)
        await pilot.press("o")
        # gemini says bearish on post 4 (model: bearish 0.2, so 0.8 away), openai bullish on posts 1 (0.7 away)
        # and 5 (0.58 away); post 6 has no API label and comes last.
        assert screen.order == "disagreement"
        assert [it.post_id for it in screen.items] == [store[4], store[1], store[5], store[6]]
        assert screen.current.post_id == store[4]


async def test_correct_and_accept_write_human_labels_and_undo_removes_them(settings, db, store, run):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_spot(app, pilot)
        assert "new label → TRAIN" in str(screen.query_one("#spot-head").content)
        await pilot.press("1")  # post 5 (model: bullish 0.42) corrected to bearish
        assert screen.current.post_id == store[4]  # the next item shows at once
        await pilot.press("a")  # post 4: the model's bullish accepted
        await app.writer.drained()
        assert human_rows(db) == [(store[4], "bullish", "train", "human"), (store[5], "bearish", "train", "human")]
        await pilot.press("u")
        await app.writer.drained()
        assert screen.current.post_id == store[4]
        assert human_rows(db) == [(store[5], "bearish", "train", "human")]
        await pilot.press("u")
        await app.writer.drained()
        assert screen.current.post_id == store[5] and screen.current.human is None
        assert human_rows(db) == []
        await pilot.press("t", "enter")  # no key puts a spot-checked post into the test split: it is not random
        await app.writer.drained()
        assert human_rows(db) == [(store[5], "bullish", "train", "human")]


async def test_existing_human_train_label_keeps_its_split_and_undo_restores_it(settings, db, store, run):
    human(db, store[5], "neutral", split="train")
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_spot(app, pilot)
        # Pool posts (no human label) come first; the labelled post 5 is last.
        assert [it.post_id for it in screen.items] == [store[4], store[1], store[6], store[5]]
        await pilot.press("j", "j", "j")
        assert screen.current.post_id == store[5] and screen.current.human.label == "neutral"
        assert "split keeps TRAIN" in str(screen.query_one("#spot-head").content)
        await pilot.press("3")
        await app.writer.drained()
        assert human_rows(db) == [(store[5], "bullish", "train", "human")]  # corrected in place, one human row
        await pilot.press("u")
        await app.writer.drained()
        assert human_rows(db) == [(store[5], "neutral", "train", "human")]
        assert screen.current.human.label == "neutral"


def test_order_items_is_stable_on_ties(db, store, run):
    from bizsent.core.evaluate.spotcheck import spot_items

    items = spot_items(db, run)
    tied = [*items, *(it for it in items)]
    ordered = order_items(tied, "uncertainty")
    assert [it.post_id for it in ordered][::2] == [store[5], store[4], store[1], store[6]]
    with pytest.raises(ValueError):
        order_items(items, "random")


# -- with predictions from the real pool scoring (tiny model), not inserted by hand ----------------------------


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    pytest.importorskip("torch")
    from fakes.pool_runs import fp32_run

    return fp32_run(tmp_path_factory)


@pytest.fixture
def scored(settings, db, store, shared_run):
    """The console's store scored by `score_pool` with a real run: every pool post has a prediction."""
    from bizsent.core.model.pool import pool_ids, score_pool
    from fakes.pool_runs import register_run

    run_id = register_run(db, shared_run)
    assert score_pool(db, settings, run_id).scored == len(pool_ids(db))
    return run_id


async def test_spot_check_lists_the_scored_pool_most_uncertain_first(settings, db, store, scored):
    from bizsent.core.model.pool import pool_ids

    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_spot(app, pilot)
        assert screen.run_id == scored
        assert {it.post_id for it in screen.items} == set(pool_ids(db)) and store[2] not in pool_ids(db)
        margins = [it.margin for it in screen.items]
        assert margins == sorted(margins) and all(it.human is None for it in screen.items)
        first = screen.current
        await pilot.press("a")
        await app.writer.drained()
        assert human_rows(db) == [(first.post_id, first.label, "train", "human")]


async def test_human_test_posts_are_not_listed_with_the_models_answer(settings, db, store, scored):
    """Correcting a test label after seeing the model's answer would move the test set towards the model."""
    from bizsent.core.evaluate.spotcheck import spot_items

    human(db, store[6], "bearish", split="test")  # labelled into the test set after the pool was scored
    human(db, store[4], "neutral", split="train")
    listed = {it.post_id for it in spot_items(db, scored)}
    assert store[6] not in listed and store[4] in listed
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_spot(app, pilot)
        assert store[6] not in {it.post_id for it in screen.items} and screen.items
        assert "correct a test label blind" in screen.HELP


async def test_p_scores_the_pool_in_a_detached_job_and_the_list_fills_in(settings, db, store, shared_run):
    from bizsent.core.model.pool import pool_ids
    from fakes.pool_runs import register_run

    run_id = register_run(db, shared_run)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_spot(app, pilot)
        assert screen.items == [] and "press `p`" in str(screen.query_one("#spot-text").content)
        from bizsent.tui.commands import _entries

        palette = [text for text, _, _ in _entries(app)]
        assert "Spot-check: score pool" in palette and "Label: score pool" in palette
        await pilot.press("p")
        await until(pilot, lambda: screen.job is not None, timeout=30)
        await until(pilot, lambda: screen.job.state == "done" and len(screen.items) == len(pool_ids(db)),
                    timeout=120)
        assert screen.run_id == run_id
        assert db.execute("SELECT kind, state, done, total FROM jobs").fetchall() == [
            ("score-pool", "done", len(pool_ids(db)), len(pool_ids(db)))]
