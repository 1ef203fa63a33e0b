"""The bizsent console: one Textual app, one screen per capability (see tui.screens.SCREENS).

Number keys switch screens, `?` explains the current one, ctrl+p finds any action of any screen, and a
status bar shows the database, running jobs and spend, re-read by a timer-driven worker.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import sqlite_utils
from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.reactive import reactive

from core.config import Settings
from core.log import redact
from core.store import open_db
from tui.commands import ActionsProvider
from tui.messages import StatusUpdated, WriteFailed
from tui.queries import StatusInfo, reading, status_info
from tui.screens import SCREENS
from tui.widgets import image_preview  # noqa: F401  (textual-image must load before Textual starts)
from tui.writer import StoreWriter

T = TypeVar("T")

IDLE_GC_S = 2.0  # a full garbage collection runs after this long without a key press
GC_THRESHOLDS = (10_000, 20, 100)  # young collections stay cheap; full ones mostly wait for the idle pass


class BizsentApp(App):
    TITLE = "bizsent"
    CSS_PATH = Path(__file__).parent / "styles" / "app.tcss"  # absolute: subclasses elsewhere find it too
    MODES = {spec.mode: spec.make for spec in SCREENS}
    DEFAULT_MODE = SCREENS[0].mode
    COMMANDS = App.COMMANDS | {ActionsProvider}
    BINDINGS = [
        # F-keys switch screens everywhere, also where 1/2/3 are label keys (Label, Spot-check)
        *(Binding(f"{n},f{n}", f"switch_mode('{spec.mode}')", spec.title, show=False)
          for n, spec in enumerate(SCREENS, start=1)),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    status: reactive[StatusInfo] = reactive(StatusInfo(db_path=""), init=False)

    def __init__(self, settings: Settings, db_path: Path) -> None:
        super().__init__()
        self.settings = settings
        self.db_path = Path(db_path)
        # Create/migrate before the event loop starts, so every worker can open it read-only-style after.
        open_db(self.db_path).close()
        self.status = StatusInfo(db_path=str(self.db_path))
        self.writer = StoreWriter(self.db_path)
        self.screen_titles = [(spec.mode, spec.title) for spec in SCREENS]
        self._last_key = time.monotonic()

    def on_mount(self) -> None:
        # Full cyclic-GC passes stall the event loop for 50-150 ms: freeze what lives as long as the app
        # (imports, screens), make automatic full passes rare, and run them when the user pauses instead.
        self.call_after_refresh(gc.freeze)
        gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])
        self.set_interval(IDLE_GC_S, self._collect_when_idle)
        self.refresh_status()
        self.set_interval(self.settings.tui.refresh_s, self.refresh_status)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self._last_key = time.monotonic()
        await super().on_event(event)

    def _collect_when_idle(self) -> None:
        if time.monotonic() - self._last_key > IDLE_GC_S:
            gc.collect()

    def on_unmount(self) -> None:
        self.writer.close()

    @work(thread=True, exclusive=True, group="status")
    def refresh_status(self) -> None:
        try:
            with reading(self.db_path) as db:
                info = status_info(db, self.db_path)
        except Exception as exc:  # the bar reports a broken database; the console stays up
            info = StatusInfo(db_path=str(self.db_path), error=f"database: {exc}")
        self.post_message(StatusUpdated(info))

    def write(self, fn: Callable[[sqlite_utils.Database], T]) -> Future[T]:
        """Queue a store write on the single writer thread; a failure is shown, never silently dropped."""
        future = self.writer.submit(fn)
        future.add_done_callback(self._check_write)
        return future

    def _check_write(self, future: Future) -> None:
        if future.exception() is not None:  # runs on the writer thread: post_message is thread-safe
            self.post_message(WriteFailed(str(future.exception())))

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notification of every screen: scrubbed like the log (a provider's error can quote a key)."""
        super().notify(redact(message), title=redact(title), severity=severity, timeout=timeout, markup=markup)

    def on_write_failed(self, message: WriteFailed) -> None:
        self.notify(f"could not save: {message.error}", severity="error", timeout=10)

    def on_status_updated(self, message: StatusUpdated) -> None:
        self.status = message.info

    def action_help(self) -> None:
        from tui.screens.help import HelpModal, help_markdown  # markdown-it: only when help is asked for

        if isinstance(self.screen, HelpModal):
            return
        self.push_screen(HelpModal(help_markdown(self.screen, list(self.BINDINGS))))

    async def run_screen_action(self, mode: str, action: str) -> None:
        """Palette entries: go to the screen that owns the action, then run it there."""
        if self.current_mode != mode:
            await self.switch_mode(mode)
        await self.run_action(action, self.screen)
