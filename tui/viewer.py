"""Opening an image in the desktop's own viewer (`v` on every screen with a preview): `open` on macOS,
`xdg-open` where a display is set (X11 `DISPLAY` or Wayland `WAYLAND_DISPLAY`); over SSH without one, one line
saying so. The viewer runs in a session of its own, so closing the console leaves it open."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

NO_DISPLAY = ("no desktop display here (DISPLAY and WAYLAND_DISPLAY are unset, e.g. over SSH): "
              "z shows the image as large as this terminal allows")


def viewer_command(path: str, platform: str = sys.platform, env: Mapping[str, str] | None = None) -> list[str] | str:
    """The command that opens `path` in the desktop viewer, or one line saying why there is none."""
    env = os.environ if env is None else env
    if platform == "darwin":
        return ["open", path]
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return NO_DISPLAY
    opener = shutil.which("xdg-open", path=env.get("PATH"))
    if opener is None:
        return "xdg-open is not installed (package xdg-utils): z shows the image in the terminal"
    return [opener, path]


def open_in_viewer(path: str | None) -> str:
    """Open `path` in the desktop viewer; one line saying what happened."""
    if not path or not Path(path).exists():
        return "this post has no image file to open"
    command = viewer_command(path)
    if isinstance(command, str):
        return command
    subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    return f"opened {Path(path).name} in the desktop viewer"
