"""The real console in a real terminal: a tmux session to type into and read back (capture-pane), as a person
would; shared by the tmux tests (tests/test_tmux_console.py, tests/test_tmux_day.py)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

BIZSENT = Path(sys.executable).parent / "bizsent"
# A tmux server of this test process's own (-L): the suite runs in several processes, and a shared server would
# give every session the environment of whichever process happened to start it.
TMUX = ["tmux", "-L", f"bizsent-test-{os.getpid()}"]


def tmux(*args: str) -> str:
    return subprocess.run([*TMUX, *args], check=True, capture_output=True, text=True).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def cursor(session: str) -> tuple[int, int]:
    """Where the terminal's cursor is (x, y): in the text field that has the focus."""
    x, y = tmux("display", "-p", "-t", session, "#{cursor_x} #{cursor_y}").split()
    return int(x), int(y)


def wait_until(session: str, seen: Callable[[str], bool], what: str, timeout: float = 60.0) -> str:
    """Read the pane until `seen(screen)` holds; the screen it held on."""
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = screen(session)
        if seen(shown):
            return shown
        time.sleep(0.1)
    size = tmux("display", "-p", "-t", session, "#{window_width}x#{window_height}").strip()
    raise AssertionError(f"{what} never appeared on the {size} pane; last screen:\n{shown}")


def wait_for(session: str, text: str, timeout: float = 60.0) -> str:
    return wait_until(session, lambda shown: text in shown, repr(text), timeout)


def wait_match(session: str, pattern: str, timeout: float = 60.0) -> re.Match[str]:
    found: list[re.Match[str]] = []

    def seen(shown: str) -> bool:
        found[:] = [m for m in [re.search(pattern, shown)] if m]
        return bool(found)

    wait_until(session, seen, f"/{pattern}/", timeout)
    return found[0]


def press(session: str, *keys: str) -> None:
    """Keys as tmux names them (`Enter`, `F1`, `j`); one at a time, in order."""
    for key in keys:
        tmux("send-keys", "-t", session, key)


def type_text(session: str, text: str) -> None:
    tmux("send-keys", "-t", session, "-l", text)


def console_command(config: Path, db_path: Path, *argv: str, env: Mapping[str, str] | None = None) -> str:
    """The console in a shell that prints its exit status and then stays, so the pane can still be read.

    A tmux server started from here inherits pytest's COLUMNS/LINES (80x24), which would override the pane's real
    size: drop them so the console sizes itself from the terminal like a user's does. The tmux server may be
    another test's (or the user's), with its own environment: what the console needs is set on its command line.
    """
    settings = [f"{name}={value}" for name, value in (env or {}).items()]
    line = " ".join(shlex.quote(part) for part in ["env", "-u", "COLUMNS", "-u", "LINES", *settings, *argv,
                                                   "--config", str(config), "--db", str(db_path), "tui"])
    then = '; echo "[exit $?]"; sleep 600'
    return "sh -c " + shlex.quote(line + then)


def open_console(command: str, size: tuple[int, int]) -> str:
    """A new detached tmux session of `size` running `command`; its name."""
    session = f"bizsent-test-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), command)
    return session


def close(session: str) -> None:
    subprocess.run([*TMUX, "kill-session", "-t", session], capture_output=True)
