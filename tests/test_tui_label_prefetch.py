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



async def test_an_answer_to_a_post_still_loading_is_refused_in_one_line(settings, db, store, monkeypatch):
    """§1 of issue 21: a label lands only on the post the screen shows. A post that outlasts the key's wait (its
    image on a slow disk: here a FIFO that gives its bytes only when the test writes them) shows "loading…"; a
    label or skip pressed then is refused and nothing is written, and the same key works once the post shows."""
    import os
    import threading
    from pathlib import Path

    from bizsent.core.label.queue import label_posts

    app = BizsentApp(settings=settings, db_path=settings.db_path)
    notices: list[str] = []
    notify = app.notify
    monkeypatch.setattr(app, "notify", lambda message, **kw: (notices.append(str(message)), notify(message, **kw)))
    human = "SELECT count(*) FROM labels WHERE source = 'human' AND post_id = ?"
    skips = "SELECT count(*) FROM skips WHERE post_id = ?"
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        view = screen.query_one(LabelPostView)
        await until(pilot, lambda: len(screen.items) == PREFETCH and not view.preparing)
        nxt = screen.queue[screen.pos + 1]
        image = label_posts(db, [nxt])[0].image_path
        data = Path(image).read_bytes()
        os.remove(image)
        os.mkfifo(image)
        feeder = threading.Thread(target=lambda: Path(image).write_bytes(data), daemon=True)
        try:
            screen.items.pop(nxt)
            await pilot.press("1")  # answers the post on screen; the next one is still being read
            await until(pilot, lambda: screen.current == nxt and view.shown is None)
            for key in ("1", "x"):  # a label, a skip
                await pilot.press(key)
            assert screen.current == nxt
            assert db.execute(human, [nxt]).fetchone()[0] == 0 and db.execute(skips, [nxt]).fetchone()[0] == 0
            assert notices.count(f"post {nxt} is still loading: answer it once it shows") == 2
        finally:
            feeder.start()  # the reader waits in open() until a writer comes: never leave it waiting
        await until(pilot, lambda: view.shown == nxt)
        feeder.join()
        await pilot.press("1")
        await until(pilot, lambda: db.execute(human, [nxt]).fetchone()[0] == 1)
