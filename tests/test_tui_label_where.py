"""Issue 21.1: labels land exactly where the Label screen says, driven from the keyboard through Pilot."""

from __future__ import annotations

import pytest
from bizsent.core.store.history import label_history
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.confirm import ConfirmModal
from bizsent.tui.screens.label import LabelScreen
from bizsent.tui.widgets.post_table import PostTable
from fakes.tui import build_store, toasts, until
from textual.widgets import Static


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    return build_store(db, settings.image_dir)


def human_rows(db):
    return db.execute("SELECT post_id, label, split, sampling, labeler FROM labels WHERE source = 'human'"
                      " ORDER BY id").fetchall()


def flags(screen: LabelScreen) -> str:
    return str(screen.query_one("#label-flags", Static).content)


async def label_from_posts(app: BizsentApp, pilot, rows_down: int) -> LabelScreen:
    """F1, Home, `j` x rows_down, Enter: the post under the cursor opens in the Label screen."""
    await until(pilot, lambda: len(app.screen.query_one(PostTable).ids) == 12)
    await pilot.press("f1", "home", *["j"] * rows_down, "enter")
    screen = app.screen
    assert isinstance(screen, LabelScreen)
    await until(pilot, lambda: screen.queue_loaded and screen.current in screen.items)
    return screen


async def test_undo_then_answer_again_keeps_a_hand_picked_post_hand_picked(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await label_from_posts(app, pilot, 2)
        assert screen.current == store[10]  # newest first: 12, 11, 10
        await pilot.press("1")
        await app.writer.drained()
        assert human_rows(db) == [(store[10], "bearish", "train", "picked", "human")]
        await pilot.press("u")
        await until(pilot, lambda: screen.current == store[10])
        assert "TRAIN" in flags(screen) and "TEST" not in flags(screen)
        await pilot.press("1")
        await app.writer.drained()
        assert human_rows(db) == [(store[10], "bearish", "train", "picked", "human")]


async def test_undo_restores_the_split_the_undone_answer_had(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await until(pilot, lambda: len(app.screen.query_one(PostTable).ids) == 12)
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        await until(pilot, lambda: screen.current in screen.items)
        first = screen.current
        await pilot.press("2", "t", "u")  # a random test answer; the session turns to train; undo
        await until(pilot, lambda: screen.current == first)
        assert "TEST" in flags(screen)
        await pilot.press("3")
        await app.writer.drained()
        assert human_rows(db) == [(first, "bullish", "test", "random", "human")]


async def test_flags_line_says_train_for_a_post_opened_from_posts_also_after_a_restart(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await label_from_posts(app, pilot, 1)
        assert screen.split == "test" and screen.current == store[11]
        assert "TRAIN" in flags(screen) and "TEST" not in flags(screen)
        await app.writer.drained()
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        await until(pilot, lambda: screen.current == store[11] and screen.current in screen.items)
        assert "TRAIN" in flags(screen) and "TEST" not in flags(screen)
        await pilot.press("3")
        await app.writer.drained()
    assert human_rows(db) == [(store[11], "bullish", "train", "picked", "human")]


async def test_a_correction_replaces_an_imported_test_label_after_a_confirmation(settings, db, store):
    set_label(db, store[10], NewLabel(label="bullish", source="human", split="test", labeler="human:demo",
                                      sampling="random"), changed_by="demo")
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await label_from_posts(app, pilot, 2)
        assert screen.current == store[10]
        assert "TEST" in flags(screen)  # a correction keeps the label's split
        await pilot.press("1")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("escape")  # no: nothing changes, the post stays
        await until(pilot, lambda: app.screen is screen)
        await app.writer.drained()
        assert human_rows(db) == [(store[10], "bullish", "test", "random", "human:demo")]
        assert screen.current == store[10]
        await pilot.press("1")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: app.screen is screen and screen.current != store[10])
        await app.writer.drained()
        assert human_rows(db) == [(store[10], "bearish", "test", "random", "human:demo")]  # one human label
        changes = label_history(db, store[10], "human")
        assert [(c.change, c.old and c.old.label) for c in changes][-1] == ("update", "bullish")
        await pilot.press("u")
        await app.writer.drained()
        assert human_rows(db) == [(store[10], "bullish", "test", "random", "human:demo")]


async def test_ctrl_q_in_the_note_prompt_keeps_the_typed_note(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await until(pilot, lambda: len(app.screen.query_one(PostTable).ids) == 12)
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        await until(pilot, lambda: screen.current in screen.items)
        noted = screen.current
        await pilot.press("n", *"laser eyes", "ctrl+q")
        await until(pilot, lambda: not app.is_running)
    assert db.execute("SELECT post_id, text FROM notes").fetchall() == [(noted, "laser eyes")]


async def test_posts_enter_refuses_a_post_that_is_not_a_labeling_candidate(settings, db, store):
    db.execute("UPDATE posts SET text = '  ' WHERE id = ?", [store[11]])
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        posts = app.screen
        await until(pilot, lambda: len(posts.query_one(PostTable).ids) == 12)
        for rows_down, post_no, why in ((1, 11, "has no text"), (10, 2, "image is corrupt")):
            await pilot.press("home", *["j"] * rows_down)
            await until(pilot, lambda: posts.query_one(PostTable).current_id == store[post_no])  # noqa: B023
            await pilot.press("enter")
            await until(pilot, lambda: any(why in t for t in toasts(app)))  # noqa: B023
            assert app.screen is posts
    assert db.execute("SELECT count(*) FROM labels WHERE source = 'human'").fetchone()[0] == 0
