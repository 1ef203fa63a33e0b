"""The real console in a real terminal: open it in tmux, label five posts by keyboard, check the store."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from bizsent.core.store import open_db
from fakes.tui import build_store

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
BIZSENT = Path(sys.executable).parent / "bizsent"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def alive(session: str) -> bool:
    return subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0


def wait_for(session: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.2)
    size = tmux("display", "-p", "-t", session, "#{window_width}x#{window_height}").strip()
    raise AssertionError(f"{text!r} never appeared on the {size} pane; last screen:\n{screen}")


def test_label_five_posts_in_tmux(tmp_path, settings):
    db = open_db(settings.db_path)
    build_store(db, settings.image_dir)
    db.close()
    config = tmp_path / "config.toml"
    # no test reservation: 5% of a dozen posts is none, and this test labels five into the test split
    config.write_text('[data]\ndir = "data"\n[tui]\nimage_renderer = "halfcell"\n[labeling]\ntest_reserve = 0.0\n',
                      encoding="utf-8")
    session = f"bizsent-test-{uuid.uuid4().hex[:8]}"
    # A tmux server started from here inherits pytest's COLUMNS/LINES (80x24), which would override the
    # pane's real size: drop them so the console sizes itself from the terminal like a user's does.
    command = f"env -u COLUMNS -u LINES {BIZSENT} --config {config} --db {settings.db_path} tui"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", command)
    try:
        wait_for(session, "12 posts")
        posts = wait_for(session, "6 Pods")  # the list paints before the status bar under load
        # The status bar shortens the database path from the left as more screens take its room.
        assert "1 Posts" in posts and "6 Pods" in posts and str(settings.db_path)[-16:] in posts
        tmux("send-keys", "-t", session, "2")
        wait_for(session, "in queue")
        for key in ("1", "2", "3", "s", "1", "2"):
            tmux("send-keys", "-t", session, key)
            time.sleep(0.15)
        screen = wait_for(session, "5/50")
        assert "bear 2" in screen and "neut 2" in screen and "bull 1" in screen
        assert "split TEST" in screen and "sarcastic" in screen
        tmux("send-keys", "-t", session, "q")
        wait_for(session, "Quit bizsent?")  # on Label, q asks first
        tmux("send-keys", "-t", session, "y")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and alive(session):
            time.sleep(0.2)
        assert not alive(session)  # q, y quit the console
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    db = open_db(settings.db_path)
    rows = db.execute("SELECT label, split, sarcastic FROM labels WHERE source = 'human' ORDER BY id").fetchall()
    db.close()
    assert len(rows) == 5
    assert [r[0] for r in rows] == ["bearish", "neutral", "bullish", "bearish", "neutral"]
    assert {r[1] for r in rows} == {"test"}
    assert [r[2] for r in rows] == [0, 0, 0, 1, 0]
