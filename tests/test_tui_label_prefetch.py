"""Issue 21.7: a label key whose next post was not prefetched reads that post at once and alone, so nothing else
competes with it before it is on screen; the posts after it are prepared once it is shown."""

from __future__ import annotations

import pytest
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.label import PREFETCH, LabelScreen
from bizsent.tui.widgets.label_view import LabelPostView
from fakes.tui import build_store, until


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    return build_store(db, settings.image_dir)


async def test_a_post_not_prefetched_is_read_at_the_key_and_alone(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        view = screen.query_one(LabelPostView)
        await until(pilot, lambda: len(screen.items) == PREFETCH and not view.preparing)
        screen.items.clear()  # as after a queue reload or a resize: the next post is not ready
        following = screen.queue[screen.pos + 1:screen.pos + PREFETCH + 1]
        screen.action_answer("bullish")
        # Before this frame is painted (no event-loop turn yet) the next post is on its way, and only it.
        assert view.preparing == {following[0]}
        await until(pilot, lambda: following[0] in screen.items)
        await until(pilot, lambda: set(following) <= set(screen.items))  # the rest follow once it is shown
        assert screen.current == following[0]
