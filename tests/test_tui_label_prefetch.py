"""Issue 21.7: a label key whose next post was not prefetched (after a queue reload or a resize) reads that post
at once and alone, and draws it in one frame, never "loading…" first; the posts after it are prepared once it
is shown."""

from __future__ import annotations

import pytest
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens import label
from bizsent.tui.screens.label import PREFETCH, LabelScreen
from bizsent.tui.widgets.image_preview import ImagePreview
from bizsent.tui.widgets.label_view import LabelPostView
from fakes.tui import build_store, until


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    return build_store(db, settings.image_dir)


async def test_a_post_not_prefetched_is_drawn_once_ready_and_prepared_alone(settings, db, store, monkeypatch):
    monkeypatch.setattr(label, "HOLD_S", 30.0)  # a loaded test machine never outlasts the wait
    drawn: list[tuple[str, frozenset[int]]] = []  # (what the picture pane was given, posts being prepared then)
    show = ImagePreview.show

    def recording_show(preview: ImagePreview, picture) -> None:
        view = preview.screen.query_one(LabelPostView) if isinstance(preview.screen, LabelScreen) else None
        drawn.append((picture.reason, view.preparing if view else frozenset()))
        show(preview, picture)

    monkeypatch.setattr(ImagePreview, "show", recording_show)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        view = screen.query_one(LabelPostView)
        await until(pilot, lambda: len(screen.items) == PREFETCH and not view.preparing)
        screen.items.clear()  # as after a queue reload or a resize: the next post is not ready
        following = screen.queue[screen.pos + 1:screen.pos + PREFETCH + 1]
        drawn.clear()
        await pilot.press("3")
        await until(pilot, lambda: screen.current == following[0] and following[0] in screen.items)
        # The first picture drawn after the key is the post's own (no "loading" frame before it), and while it
        # was drawn nothing else was being prepared to compete with its paint.
        assert drawn[0] == ("", frozenset())
        assert screen.query_one(ImagePreview).picture is screen.items[following[0]][1]
        await until(pilot, lambda: set(following) <= set(screen.items))  # the rest follow once it is shown
        # Drawn once, by the key's handler: not also by the screen when the post came in during the wait, which
        # had the frame's after-refresh callbacks run before the widgets had asked for the frame.
        assert len(drawn) == 1
