"""Screenshots of every screen and dialog of the console at 80x24 and 160x45 (issue 21), on the demo store of
tests.fakes.demo_store (the demo posts, two recorded runs, jobs, a pod; every timestamp fixed), compared with the
files under tests/snapshots/ (tests/screenshots.py). After an intended change to the looks:

    .venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update

What would differ between runs is fixed through the app's own settings: half-block images (tui.image_renderer),
no polling after a screen's first read (tui.refresh_s), the database opened by a relative path (the status bar
shows it), Inputs that do not blink; the store's timestamps are fixed, so dates and ages read the same any day.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import sqlite_utils
from bizsent.core.config import load_settings
from bizsent.core.store import open_db, use_fixed_clock
from bizsent.core.store.history import actor
from bizsent.core.store.posts import CANDIDATE_SQL, set_label
from bizsent.core.store.records import NewLabel
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.label_review import WRITER
from fakes.demo_store import AT, build_demo_store
from screenshots import Screenshot, check, take
from textual.widgets import Input

SIZES = [(80, 24), (160, 45)]
SETTLE_S = 60.0  # a loaded machine computes Eval's bootstrap intervals slowly
DB = Path("data") / "bizsent.db"  # relative to the test's folder: the status bar shows it, the same everywhere
CONFIG = ('[data]\ndir = "data"\n[labeling]\ntest_reserve = 0.0\n[images]\nread_text = false\n'
          # One read per screen when it is shown, no timer-driven re-reads while the screenshot is taken.
          '[tui]\nrefresh_s = 3600\nimage_renderer = "halfcell"\n')


@dataclass(frozen=True, slots=True)
class Shot:
    """One screenshot: open `mode`, wait until `ready` is on screen, then for each (keys, text) step press the keys
    and wait until the text shows."""

    name: str
    mode: str
    ready: str
    steps: tuple[tuple[tuple[str, ...], str], ...] = ()
    prepare: Callable[[sqlite_utils.Database], None] | None = None  # a change to this test's copy of the store


def answered_this_session(db: sqlite_utils.Database) -> None:
    """An answer of the Label screen's session, written when the session starts (the fixed clock's time): the
    answers list then shows it. Written here rather than by a key, since the label history is stamped by SQLite's
    own clock."""
    pid = db.execute(f"SELECT p.id FROM posts p JOIN images i ON i.id = p.image_id WHERE {CANDIDATE_SQL} AND NOT"
                     " EXISTS (SELECT 1 FROM labels l WHERE l.post_id = p.id AND l.source LIKE 'human%')"
                     " ORDER BY p.id DESC LIMIT 1").fetchone()[0]
    set_label(db, pid, NewLabel(label="bullish", source="human", split="train", labeler="human", sarcastic=True),
              changed_by=actor(WRITER))
    db.execute("UPDATE label_history SET changed_at = ? WHERE post_id = ?", [AT, pid])
    db.conn.commit()


LABEL_READY = "κ:"  # the Label screen's last line (answers, pace, self-agreement), read a moment after the post
SHOTS = [
    Shot("posts", "posts", "90 posts"),
    Shot("label", "label", LABEL_READY),
    Shot("jobs", "batches", "RESOURCE_EXHAUSTED"),
    Shot("eval", "eval", "demo-tiny"),
    Shot("compare", "eval", "demo-tiny", ((("c", "j", "c", "v"), "disagree on"),)),
    Shot("spotcheck", "spotcheck", "demo-tiny"),
    Shot("pods", "pods", "demo7pod3x9k"),
    Shot("trends", "trends", "top movers"),
    Shot("zoom", "label", LABEL_READY, ((("z",), "on the image"),)),
    Shot("help", "posts", "90 posts", ((("question_mark",), "keys"),)),
    Shot("label-answers", "label", "bullS (b)", ((("b",), "answers this session"),), prepare=answered_this_session),
    Shot("label-filter", "label", LABEL_READY, ((("f",), "filter"),)),
    Shot("label-quit", "label", LABEL_READY, ((("q",), "Quit bizsent?"),)),
    Shot("jobs-new", "batches", "RESOURCE_EXHAUSTED", ((("n",), "estimate"),)),
]


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    """The demo store, built once; each test opens its own copy (the console writes where it was left)."""
    folder = tmp_path_factory.mktemp("demo-store")
    (folder / "config.toml").write_text(CONFIG, encoding="utf-8")
    settings = load_settings(folder / "config.toml", environ={})
    db = open_db(settings.db_path)
    build_demo_store(db, settings)
    db.close()
    return folder


@pytest.fixture
def fixed_clock():
    """What the console writes (a session's start, a note) is stamped with the store's fixed time."""
    use_fixed_clock(datetime.fromisoformat(AT))
    yield
    use_fixed_clock(None)


async def drawn(app: BizsentApp, pilot, shows: str, name: str) -> Screenshot:
    """The screen once `shows` is on it, no worker is busy, every widget has handled what it was sent (a table
    sizes its columns when idle) and three frames in a row are the same."""
    frames: list[Screenshot] = []
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        await pilot.pause(0.02)
        await pilot.wait_for_scheduled_animations()
        for field in app.screen.query(Input):
            field.cursor_blink = False
        if any(worker.is_running or worker.state.name == "PENDING" for worker in app.workers):
            frames.clear()
            continue
        frames = [*frames[-2:], take(app, "bizsent")]
        if shows in frames[-1].text and len(frames) == 3 and frames[0] == frames[1] == frames[2]:
            return frames[-1]
    raise AssertionError(f"screen {name}: {shows!r} never showed on a settled screen in {SETTLE_S:.0f} s:\n"
                         + (frames[-1].text if frames else "(a worker was busy all along)"))


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("shot", SHOTS, ids=lambda shot: shot.name)
async def test_screen_looks_as_stored(demo_folder, tmp_path, monkeypatch, fixed_clock, snapshot_update, shot, size):
    shutil.copytree(demo_folder, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(tmp_path / "config.toml", environ={})
    if shot.prepare is not None:
        db = open_db(settings.db_path)
        shot.prepare(db)
        db.close()
    app = BizsentApp(settings=settings, db_path=DB)
    async with app.run_test(size=size) as pilot:
        await app.switch_mode(shot.mode)
        name = f"{shot.name}-{size[0]}x{size[1]}"
        screen = await drawn(app, pilot, shot.ready, name)
        for keys, shows in shot.steps:
            await pilot.press(*keys)
            screen = await drawn(app, pilot, shows, name)
    check(name, screen, snapshot_update)
