"""Screenshot comparison for the console's tests: the screen as Textual draws it, saved through Rich's SVG export
(what `App.export_screenshot()` does, with a fixed id so the same screen gives the same bytes) and as plain text,
against tests/snapshots/NAME.svg and NAME.txt.

pytest-textual-snapshot is not used: its newest release (1.1.0) pins syrupy 4.8.0, which requires pytest < 9.

`pytest tests/test_tui_snapshots.py --snapshot-update` rewrites the stored files after an intended change (the
option is added in tests/conftest.py). A mismatch fails naming the screen and size, with a diff of the text (or a
note that only colours or styles changed) and an HTML page showing the stored and the new screen side by side under
tests/snapshots/report/ (not committed).
"""

from __future__ import annotations

import difflib
import html
import io
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from textual.app import App

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
REPORT = SNAPSHOTS / "report"
UPDATE_HINT = ".venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update"
SVG_ID = "bizsent"  # Rich draws a random id into every SVG by default


@dataclass(frozen=True, slots=True)
class Screenshot:
    svg: str
    text: str


def take(app: App, title: str) -> Screenshot:
    """The current screen (and the screens under a dialog) as SVG and as text, as App.export_screenshot draws it."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    text = console.export_text(clear=False)
    return Screenshot(console.export_svg(title=title, unique_id=SVG_ID), "\n".join(line.rstrip()
                                                                                   for line in text.splitlines()))


def mismatch(name: str, stored: Screenshot, new: Screenshot) -> str | None:
    """None when the screenshots are the same; else the failure message (and the report page written)."""
    if stored == new:
        return None
    REPORT.mkdir(parents=True, exist_ok=True)
    (REPORT / f"{name}.svg").write_text(new.svg, encoding="utf-8")
    (REPORT / f"{name}.txt").write_text(new.text, encoding="utf-8")
    page = REPORT / f"{name}.html"
    page.write_text(report_page(name), encoding="utf-8")
    if stored.text == new.text:
        what = "the text is the same; colours or styles changed"
    else:
        what = "\n".join(difflib.unified_diff(stored.text.splitlines(), new.text.splitlines(), "stored", "new",
                                              lineterm="", n=1))
    return (f"screen {name} differs from tests/snapshots/{name}.svg: see {page} (stored beside new);"
            f" if the change is intended: {UPDATE_HINT}\n{what}")


def report_page(name: str) -> str:
    title = html.escape(name)
    return (f"<!doctype html><meta charset='utf-8'><title>{title}</title><h1>{title}</h1>"
            "<table><tr><th>stored</th><th>new</th></tr>"
            f"<tr><td><img src='../{title}.svg' width='100%'></td><td><img src='{title}.svg' width='100%'></td></tr>"
            "</table>")


def load(name: str) -> Screenshot | None:
    svg, text = SNAPSHOTS / f"{name}.svg", SNAPSHOTS / f"{name}.txt"
    if not (svg.exists() and text.exists()):
        return None
    return Screenshot(svg.read_text(encoding="utf-8"), text.read_text(encoding="utf-8"))


def save(name: str, shot: Screenshot) -> None:
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    (SNAPSHOTS / f"{name}.svg").write_text(shot.svg, encoding="utf-8")
    (SNAPSHOTS / f"{name}.txt").write_text(shot.text, encoding="utf-8")


def check(name: str, shot: Screenshot, update: bool) -> None:
    """Compare `shot` with the stored screenshot `name` (or store it, with `update`); fail with the report."""
    stored = load(name)
    if update:
        if stored != shot:
            save(name, shot)
        return
    if stored is None:
        raise AssertionError(f"no stored screenshot tests/snapshots/{name}.svg: {UPDATE_HINT}")
    message = mismatch(name, stored, shot)
    if message:
        raise AssertionError(message)
