"""The real console in a real terminal: open it in tmux, label five posts by keyboard, check the store; start it on
the Python running the suite (Textual runs tasks eagerly from 3.12 on, which Pilot's headless run does not show);
a console that dies ends in one line and a non-zero exit."""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest
from bizsent.core.store import open_db
from fakes.tmux import BIZSENT, close, tmux, wait_for
from fakes.tmux import console_command as command_line
from fakes.tui import build_store

pytestmark = [pytest.mark.terminal, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


def console_command(settings, config: Path, *argv: str) -> str:
    return command_line(config, settings.db_path, *argv)


def halfcell_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    # no test reservation: 5% of a dozen posts is none, and the label test answers five into the test split
    config.write_text('[data]\ndir = "data"\n[tui]\nimage_renderer = "halfcell"\n[labeling]\ntest_reserve = 0.0\n'
                      '[images]\nread_text = false\n',
                      encoding="utf-8")
    return config


def console_on_a_store(tmp_path: Path, settings) -> str:
    """The real console on the test store (fakes.tui) in a new 100x30 tmux session; returns the session's name."""
    db = open_db(settings.db_path)
    build_store(db, settings.image_dir)
    db.close()
    session = f"bizsent-test-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30",
         console_command(settings, halfcell_config(tmp_path), str(BIZSENT)))
    return session


def test_console_starts_and_searches_on_this_python(tmp_path, settings):
    session = console_on_a_store(tmp_path, settings)
    try:
        wait_for(session, "6 Pods")
        tmux("send-keys", "-t", session, "/")  # the search Input: the widget that died at start on 3.12+
        # Keys already queued go to the widget focused when they arrived: type once the cursor is in the box
        # (the right half of the top line), as a person does.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and int(tmux("display", "-p", "-t", session, "#{cursor_x}")) < 50:
            time.sleep(0.1)
        tmux("send-keys", "-t", session, "-l", "moon")
        tmux("send-keys", "-t", session, "Enter")
        screen = wait_for(session, " 1 posts │")
        assert "wagmi to the moon" in screen and "post number 5" not in screen  # what the search found, not all 12
        tmux("send-keys", "-t", session, "q")  # Enter gave the list the keys back
        screen = wait_for(session, "[exit ")
        assert "[exit 0]" in screen and "Traceback" not in screen and "Error" not in screen
    finally:
        close(session)


def test_a_console_that_dies_exits_1_with_one_line_naming_the_log(tmp_path, settings):
    """A bug anywhere in the console (stood in for by a Posts screen that cannot compose) ends it like every other
    command: the terminal gets back one line naming the log, the log gets the traceback, the exit status is 1."""
    open_db(settings.db_path).close()
    driver = tmp_path / "broken_console.py"
    driver.write_text(
        "from bizsent.tui.screens import posts\n"
        "def compose(self):\n"
        "    raise RuntimeError('a stand-in bug')\n"
        "    yield\n"
        "posts.PostsScreen.compose = compose\n"
        "from bizsent.cli import main\n"
        "main()\n", encoding="utf-8")
    session = f"bizsent-test-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", "250", "-y", "30",  # wide: the line names a long tmp path
         console_command(settings, halfcell_config(tmp_path), sys.executable, str(driver)))
    try:
        screen = wait_for(session, "[exit ")
    finally:
        close(session)
    lines = [line for line in screen.splitlines() if line.strip()]
    log = settings.data_dir / "bizsent.log"
    assert lines == [f"internal error: RuntimeError: a stand-in bug (traceback in the log: {log})", "[exit 1]"]
    assert "Traceback" in log.read_text(encoding="utf-8") and "a stand-in bug" in log.read_text(encoding="utf-8")


def test_label_five_posts_in_tmux(tmp_path, settings):
    session = console_on_a_store(tmp_path, settings)
    try:
        wait_for(session, "12 posts")
        posts = wait_for(session, "7 Trends")  # the list paints before the status bar under load
        # The status bar shortens the database path from the left as more screens take its room: with seven
        # screens at 100 columns, the file name is what is left.
        assert "1 Posts" in posts and "7 Trends" in posts and str(settings.db_path)[-10:] in posts
        tmux("send-keys", "-t", session, "2")
        wait_for(session, "in queue")
        answered = 0
        for key in ("1", "2", "3", "s", "1", "2"):  # s marks the next answer sarcastic
            tmux("send-keys", "-t", session, key)
            if key != "s":
                answered += 1
                screen = wait_for(session, f"{answered}/50")  # each answer is on screen before the next key
        assert "bear 2" in screen and "neut 2" in screen and "bull 1" in screen
        assert "split TEST" in screen and "sarcastic" in screen
        tmux("send-keys", "-t", session, "q")
        wait_for(session, "Quit bizsent?")  # on Label, q asks first
        tmux("send-keys", "-t", session, "y")
        assert "[exit 0]" in wait_for(session, "[exit ")  # q, y quit the console
    finally:
        close(session)
    db = open_db(settings.db_path)
    rows = db.execute("SELECT label, split, sarcastic FROM labels WHERE source = 'human' ORDER BY id").fetchall()
    db.close()
    assert len(rows) == 5
    assert [r[0] for r in rows] == ["bearish", "neutral", "bullish", "bearish", "neutral"]
    assert {r[1] for r in rows} == {"test"}
    assert [r[2] for r in rows] == [0, 0, 0, 1, 0]
