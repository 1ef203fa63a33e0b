"""Reading the image (issue 21.3) through Pilot on the real screens: `z` zooms the post on screen to the whole
terminal with the words read on it, `v` opens the desktop viewer (a stand-in xdg-open records what it was
asked) or says in one line why there is none, and the image's words show under the Label preview and are found
by Posts' `/`."""

from __future__ import annotations

import os
import stat

import pytest
from bizsent.core.store.image_text import save_image_text
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.label import LabelScreen
from bizsent.tui.screens.posts import PostsScreen
from bizsent.tui.screens.spotcheck import SpotCheckScreen
from bizsent.tui.screens.zoom import ZoomScreen
from bizsent.tui.viewer import NO_DISPLAY
from bizsent.tui.widgets.image_preview import ImagePreview
from bizsent.tui.widgets.post_table import PostTable
from fakes.eval_runs import add_predictions, add_run, probs
from fakes.tui import build_store, open_screen, until

WORDS = "Positionliquidated\nLINK-PERP LONG 100x"


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    ids = build_store(db, settings.image_dir)
    for no in ids:
        image_id = db.execute("SELECT image_id FROM posts WHERE id = ?", [ids[no]]).fetchone()[0]
        save_image_text(db, image_id, WORDS if no == 5 else "", "test-engine")
    return ids


async def zoom(app: BizsentApp, pilot) -> ZoomScreen:
    await pilot.press("z")
    screen = app.screen
    assert isinstance(screen, ZoomScreen)
    await until(pilot, lambda: screen.shown)
    return screen


def caption(screen: ZoomScreen) -> str:
    return str(screen.query_one("#zoom-caption").render())


async def test_z_on_label_fills_the_terminal_and_shows_the_words(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        label = app.screen
        assert isinstance(label, LabelScreen)
        await until(pilot, lambda: label.current is not None and label.current in label.items)
        while label.current != store[5]:  # the post whose image has words on it
            await pilot.press("x")
            await until(pilot, lambda: label.current in label.items)
        assert "Positionliquidated · LINK-PERP LONG 100x" in str(label.query_one("#label-image-text").render())
        small = label.query_one(ImagePreview).query_one("#cells").picture_size
        zoomed = await zoom(app, pilot)
        assert zoomed.post_id == store[5]
        preview = zoomed.query_one(ImagePreview)
        assert preview.showing == "cells"
        big = preview.query_one("#cells").picture_size
        assert big.width > small.width and big.height > small.height
        assert big.height >= 32 - 4  # the whole terminal but the caption
        assert "on the image: Positionliquidated · LINK-PERP LONG 100x" in caption(zoomed)
        await pilot.press("z")
        assert app.screen is label and label.current == store[5]
        await app.writer.drained()
        assert db.execute("SELECT count(*) FROM labels WHERE source = 'human'").fetchone()[0] == 0


async def test_z_on_posts_and_spot_check_zooms_the_selected_post(settings, db, store):
    run_id = add_run(db)
    add_predictions(db, run_id, {store[6]: probs(0.1, 0.15, 0.75)})
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        posts = app.screen
        assert isinstance(posts, PostsScreen)
        table = posts.query_one(PostTable)
        await until(pilot, lambda: len(table.ids) == 12)
        zoomed = await zoom(app, pilot)
        assert zoomed.post_id == table.current_id
        assert "on the image: (no text found)" in caption(zoomed)
        await pilot.press("escape")
        spot = await open_screen(app, pilot, "spotcheck", SpotCheckScreen, lambda screen: screen.loaded)
        zoomed = await zoom(app, pilot)
        assert zoomed.post_id == spot.current.post_id == store[6]


async def test_slash_on_posts_finds_the_words_on_the_image(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        table = app.screen.query_one(PostTable)
        await until(pilot, lambda: len(table.ids) == 12)
        await pilot.press("slash", *"position liq")
        await until(pilot, lambda: table.ids == [store[5]])


async def test_v_without_a_display_says_so_and_with_one_runs_the_viewer(settings, db, store, tmp_path,
                                                                        monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        table = app.screen.query_one(PostTable)
        await until(pilot, lambda: len(table.ids) == 12)
        await pilot.press("v")
        await until(pilot, lambda: NO_DISPLAY in [n.message for n in app._notifications])

        asked = tmp_path / "asked"
        opener = tmp_path / "bin" / "xdg-open"  # stands in for xdg-utils' xdg-open: records its argument
        opener.parent.mkdir()
        opener.write_text(f'#!/bin/sh\necho "$1" > {asked}\n')
        opener.chmod(opener.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("DISPLAY", ":99")
        monkeypatch.setenv("PATH", f"{opener.parent}{os.pathsep}{os.environ['PATH']}")
        await pilot.press("v")
        await until(pilot, lambda: asked.exists() and asked.read_text().strip() != "")
        path = db.execute("SELECT i.path FROM posts p JOIN images i ON i.id = p.image_id WHERE p.id = ?",
                          [table.current_id]).fetchone()[0]
        assert asked.read_text().strip() == path


async def test_a_zoom_left_open_on_one_screen_is_not_taken_by_another(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        table = app.screen.query_one(PostTable)
        await until(pilot, lambda: len(table.ids) == 12)
        on_posts = await zoom(app, pilot)
        await pilot.press("f2")  # switch screens with the zoom open
        label = app.screen
        assert isinstance(label, LabelScreen)
        await until(pilot, lambda: label.current is not None and label.current in label.items)
        on_label = await zoom(app, pilot)
        assert on_label is not on_posts and on_label.post_id == label.current
        await pilot.press("escape")
        assert app.screen is label
        await pilot.press("f1")
        assert app.screen is on_posts and on_posts.post_id == table.current_id  # still open where it was
        await pilot.press("escape")
        assert isinstance(app.screen, PostsScreen)
