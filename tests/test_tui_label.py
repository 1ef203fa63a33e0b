"""The Label screen through Textual's Pilot: keys write the right rows, undo takes them back, notes stay put."""

from __future__ import annotations

import pytest
from fakes.tui import build_store

from tui.app import BizsentApp
from tui.screens.label import LabelScreen
from tui.widgets.image_preview import ImagePreview


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"  # explicit renderer: stable output whatever the terminal
    return build_store(db, settings.image_dir)


async def until(pilot, condition, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached in time")


async def open_label(app: BizsentApp, pilot) -> LabelScreen:
    await pilot.press("2")
    screen = app.screen
    assert isinstance(screen, LabelScreen)
    await until(pilot, lambda: screen.current is not None and screen.current in screen.items)
    return screen


def human_rows(db):
    return db.execute(
        "SELECT post_id, label, split, sarcastic, unsure, labeler FROM labels WHERE source = 'human' ORDER BY id"
    ).fetchall()


async def test_label_keys_write_rows_and_undo_removes_them(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        first = screen.current
        await pilot.press("s", "w", "1")
        second = screen.current
        assert second != first
        await pilot.press("t", "3")
        await app.writer.drained()
        assert human_rows(db) == [
            (first, "bearish", "test", 1, 1, "human"),
            (second, "bullish", "train", 0, 0, "human"),
        ]
        assert dict(screen.counts) == {"bearish": 1, "bullish": 1}

        await pilot.press("u")
        await app.writer.drained()
        assert screen.current == second
        assert human_rows(db) == [(first, "bearish", "test", 1, 1, "human")]
        await pilot.press("u")
        await app.writer.drained()
        assert screen.current == first
        assert (screen.sarcastic, screen.unsure) == (True, True)  # the flags come back with the post
        assert human_rows(db) == []
        await pilot.press("2")
        await app.writer.drained()
        assert human_rows(db) == [(first, "neutral", "train", 1, 1, "human")]


async def test_skip_writes_a_skip_and_undo_removes_it(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        skipped = screen.current
        await pilot.press("x")
        await app.writer.drained()
        assert db.execute("SELECT post_id, source FROM skips").fetchall() == [(skipped, "human")]
        assert human_rows(db) == []
        await pilot.press("u")
        await app.writer.drained()
        assert db.execute("SELECT count(*) FROM skips").fetchone()[0] == 0
        assert screen.current == skipped


async def test_note_stays_with_its_post(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        noted = screen.current
        await pilot.press("n")
        await pilot.press(*"pink wojak", "enter")
        await pilot.press("1")
        next_post = screen.current
        await pilot.press("n", "escape")  # a cancelled note writes nothing
        await app.writer.drained()
        assert db.execute("SELECT post_id, text FROM notes").fetchall() == [(noted, "pink wojak")]
        assert next_post != noted
        assert human_rows(db)[0][:2] == (noted, "bearish")  # the `1` after the note labelled the noted post


async def test_queue_holds_only_unlabelled_candidates_and_hides_other_labels(settings, db, store):
    from core.posts import set_label
    from core.records import NewLabel

    set_label(db, store[5], NewLabel(label="neutral", source="human", split="test", labeler="human"))
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        assert store[2] not in screen.queue  # corrupt image: not a candidate
        assert store[5] not in screen.queue  # already has a human label
        assert sorted(screen.queue) == sorted(pid for no, pid in store.items() if no not in (2, 5))
        shown = " ".join(str(w.render()) for w in screen.query("Static"))
        assert "gpt-test" not in shown and "openai" not in shown  # no anchoring on other labellers
        preview = screen.query_one(ImagePreview)
        assert preview.picture.image is not None and preview.showing == "cells"
        await pilot.pause()
        assert preview.query_one("#cells").region.height > 5  # the large image really is drawn


async def test_filter_order_and_session_progress(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        await pilot.press("f", *"moon", "enter")
        await until(pilot, lambda: screen.queue == [store[3]])
        await pilot.press("3")
        assert screen.current is None
        await pilot.press("f", "ctrl+u", *"openai:bullish", "enter")
        await until(pilot, lambda: screen.order == "filter" and store[1] in screen.queue)
        assert store[3] not in screen.queue  # answered this session
        assert all(no % 2 for no, pid in store.items() if pid in screen.queue)
        assert screen.query_one("#goal").progress == 1
