"""The database taken away under each screen: the console stays up, says so in one line, logs the traceback,
and works again once the file is back."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest
from bizsent.core.log import setup_logging
from bizsent.core.store import now
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.batches import BatchesScreen
from bizsent.tui.screens.eval import EvalScreen
from bizsent.tui.screens.label import LabelScreen
from bizsent.tui.screens.posts import PostsScreen
from bizsent.tui.screens.spotcheck import SpotCheckScreen
from bizsent.tui.widgets.post_table import PostTable
from fakes.eval_runs import add_predictions, add_run, probs
from fakes.tui import build_store, toasts, until
from textual.widgets import DataTable

GONE = "is gone (moved or deleted?)"


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    ids = build_store(db, settings.image_dir)
    run = add_run(db)
    add_predictions(db, run, {ids[1]: probs(0.6, 0.1, 0.3), ids[4]: probs(0.2, 0.35, 0.45)})
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file: moving it moves the data
    return ids


@pytest.fixture
def log_path(settings):
    path = setup_logging(settings.data_dir)
    yield path
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, RotatingFileHandler)
                    and Path(h.baseFilename) == path]:
        root.removeHandler(handler)
        handler.close()


class TakenAway:
    """Moves the database file aside (as a user cleaning up a folder would) and back."""

    def __init__(self, path: Path) -> None:
        self.path, self.aside = path, path.with_suffix(".moved")

    def __enter__(self) -> TakenAway:
        self.path.rename(self.aside)
        return self

    def put_back(self) -> None:
        self.aside.rename(self.path)

    def __exit__(self, *exc) -> None:
        if self.aside.exists():
            self.put_back()


async def gone_reported(app: BizsentApp, pilot, log_path: Path) -> None:
    await until(pilot, lambda: any(GONE in t for t in toasts(app)))
    assert app.is_running
    shown = [t for t in toasts(app) if GONE in t]
    assert all("\n" not in t.strip() and "Traceback" not in t for t in shown)  # one line, no traceback
    await until(pilot, lambda: "Traceback (most recent call last)" in log_path.read_text(encoding="utf-8"))
    assert "StoreError" in log_path.read_text(encoding="utf-8")


async def test_posts_survives_and_reloads(settings, store, log_path):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        screen = app.screen
        assert isinstance(screen, PostsScreen)
        table = screen.query_one(PostTable)
        await until(pilot, lambda: len(table.ids) == len(store))
        with TakenAway(settings.db_path) as away:
            await pilot.press("l")  # label filter: bearish -> a new id list is read
            await gone_reported(app, pilot, log_path)
            away.put_back()
            # Nothing pressed: the failed load runs again when the database answers.
            await until(pilot, lambda: table.ids == [store[4]])
        assert app.is_running


async def test_label_survives_and_reloads(settings, db, store, log_path):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        await until(pilot, lambda: screen.current in screen.items)
        with TakenAway(settings.db_path) as away:
            await pilot.press("o")  # queue order: newest -> the queue is read again
            await gone_reported(app, pilot, log_path)
            away.put_back()
            # Nothing pressed: the queue asked for while the file was away is read once it is back.
            await until(pilot, lambda: screen.queue[:3] == [store[12], store[11], store[10]]
                        and screen.current in screen.items)
        assert screen.order == "newest"
        await pilot.press("1")
        await app.writer.drained()
        assert db.execute("SELECT post_id, label FROM labels WHERE source = 'human'").fetchall() == [
            (store[12], "bearish")]


async def test_batches_survives_and_polls_again(settings, db, store, log_path):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, BatchesScreen)
        await until(pilot, lambda: screen.loaded)
        with TakenAway(settings.db_path) as away:
            await gone_reported(app, pilot, log_path)  # the poll alone fails: no key needed
            away.put_back()
        db.execute("INSERT INTO jobs (kind, params, state, created_at) VALUES ('label', '{}', 'queued', ?)",
                   [now()])
        table = screen.query_one("#jobs", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        assert app.is_running


async def test_eval_survives_and_polls_again(settings, db, store, log_path):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, EvalScreen)
        runs = screen.query_one("#eval-runs", DataTable)
        await until(pilot, lambda: runs.row_count == 1)
        with TakenAway(settings.db_path) as away:
            await gone_reported(app, pilot, log_path)
            away.put_back()
        add_run(db)
        await until(pilot, lambda: runs.row_count == 2)
        assert app.is_running


async def test_spotcheck_survives_and_loads_again(settings, db, store, log_path):
    # Spot-check reads its list when it is shown: its load fails while the database is away, and is reported.
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await pilot.press("5")
        screen = app.screen
        assert isinstance(screen, SpotCheckScreen)
        await until(pilot, lambda: screen.loaded and len(screen.items) == 2)
        with TakenAway(settings.db_path) as away:
            await pilot.press("f1", "f5")  # coming back to Spot-check reads its list again
            assert isinstance(app.screen, SpotCheckScreen)
            await gone_reported(app, pilot, log_path)
            away.put_back()
        add_predictions(db, screen.run_id, {store[6]: probs(0.1, 0.15, 0.75)})
        await pilot.press("f1", "f5")  # coming back reads it again
        await until(pilot, lambda: any(it.post_id == store[6] for it in screen.items))
        assert app.is_running


async def test_writes_never_go_into_a_moved_database(settings, db, store, log_path):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await pilot.press("f2")
        screen = app.screen
        await until(pilot, lambda: screen.current in screen.items)
        await pilot.press("1")  # opens the writer's connection
        await app.writer.drained()
        with TakenAway(settings.db_path):
            await pilot.press("2")
            await app.writer.drained()
            await until(pilot, lambda: any("could not save" in t for t in toasts(app)))
        assert [r[0] for r in db.execute("SELECT label FROM labels WHERE source = 'human'")] == ["bearish"]
