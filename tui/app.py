"""The bizsent console: one Textual app, one screen per capability (see tui.screens.SCREENS).

Number keys switch screens, `?` explains the current one, ctrl+p finds any action of any screen, and a
status bar shows the database, running jobs and spend, re-read by a timer-driven worker. A worker that fails
becomes one notification and a traceback in the log; what failed runs again once the database is back.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import StoreError
from bizsent.core.log import log_file, redact
from bizsent.core.store import open_db
from bizsent.core.store.summary import spend
from bizsent.tui import resume
from bizsent.tui.commands import ActionsProvider
from bizsent.tui.keys import with_ids
from bizsent.tui.screens import SCREENS
from bizsent.tui.screens.prompt import PromptModal
from bizsent.tui.style import LIGHT_ANSI
from bizsent.tui.widgets import image_preview  # noqa: F401  (textual-image must load before Textual starts)
from bizsent.tui.workers import BackgroundFailed, background, reading
from bizsent.tui.writer import StoreWriter
from textual import events
from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.reactive import reactive

T = TypeVar("T")
log = logging.getLogger("bizsent.tui")

IDLE_GC_S = 2.0  # a full garbage collection runs after this long without a key press
GC_THRESHOLDS = (10_000, 20, 100)  # young collections stay cheap; full ones mostly wait for the idle pass
THEMES = {"dark": "textual-dark", "light": "textual-light"}  # tui.theme -> Textual's theme
REPORT_EVERY_S = 30.0  # the same failure (a poll while the database is gone) is shown and logged this often


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """What the status bar shows besides the screens."""

    db_path: str
    running_jobs: int = 0
    spend_usd: float = 0.0
    pods_billing: int = 0
    pods_usd_per_hour: float = 0.0
    pods_stopped: int = 0
    stopped_usd_per_month: float = 0.0  # the stopped pods' volumes (RunPod shows them at $0.00/h)
    error: str = ""


class BizsentApp(App):
    TITLE = "bizsent"
    CSS_PATH = Path(__file__).parent / "styles" / "app.tcss"  # absolute: subclasses elsewhere find it too
    # No DEFAULT_MODE: the app starts on Textual's blank default screen and switches to the first screen on mount.
    # On Python 3.12+ Textual runs tasks eagerly, and the first mode's widgets start mounting before its screen
    # is on the stack: an Input there asks for `app.screen` and the console dies with "No screens on stack".
    MODES = {spec.mode: spec.make for spec in SCREENS}
    COMMANDS = App.COMMANDS | {ActionsProvider}
    BINDINGS = with_ids("app", [
        # F-keys switch screens everywhere, also where 1/2/3 are label keys (Label, Spot-check)
        *(Binding(f"{n},f{n}", f"switch_mode('{spec.mode}')", spec.title, show=False)
          for n, spec in enumerate(SCREENS, start=1)),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        # Textual's own ctrl+q and Tab, with ids so the keymap can add keys for them (Textual's stay too)
        Binding("ctrl+q", "quit", "quit", show=False, priority=True, id="app.quit_anywhere"),
        Binding("tab", "focus_next", "next pane", show=False),
        Binding("shift+tab", "focus_previous", "previous pane", show=False),
    ])

    status: reactive[StatusInfo] = reactive(StatusInfo(db_path=""), init=False)

    @dataclass
    class StatusUpdated(Message):
        """One read of the status bar's figures; a newer one replaces an older one still queued."""

        info: StatusInfo

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, BizsentApp.StatusUpdated)

    @dataclass
    class OrphansFound(Message):
        """The start-up survey of the RunPod account found orphan pods billing, or could not read the account:
        one warning line."""

        text: str

    @dataclass
    class WriteFailed(Message):
        """A write on the writer thread raised: one line for the user."""

        error: str

    def __init__(self, settings: Settings, db_path: Path) -> None:
        super().__init__()
        self.settings = settings
        self.db_path = Path(db_path)
        # Create/migrate before the event loop starts, so every worker can open it read-only-style after.
        open_db(self.db_path).close()
        self.status = StatusInfo(db_path=str(self.db_path))
        self.theme = THEMES[settings.tui.theme]
        self.ansi_theme_light = LIGHT_ANSI
        self.resume = resume.load(self.db_path)  # the screen and rows where the user left the console
        self.keymap = dict(settings.tui.keymap)  # binding id -> keys (tui.keys); help and footers show these
        self.set_keymap(self.keymap)
        self.writer = StoreWriter(self.db_path)
        self.screen_titles = [(spec.mode, spec.title) for spec in SCREENS]
        self._last_key = time.monotonic()
        self._reported: dict[str, float] = {}  # failure line -> when it was last shown
        self._retries: dict[tuple[int, str], tuple[DOMNode, Callable[[], object]]] = {}
        self._store_down = False
        self.crashed: Exception | None = None  # what stopped the console, for the CLI to report in one line

    async def on_mount(self) -> None:
        modes = [spec.mode for spec in SCREENS]
        await self.switch_mode(self.resume.mode if self.resume.mode in modes else modes[0])
        # Full cyclic-GC passes stall the event loop for 50-150 ms: freeze what lives as long as the app
        # (imports, screens), make automatic full passes rare, and run them when the user pauses instead.
        self.call_after_refresh(gc.freeze)
        gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])
        self.set_interval(IDLE_GC_S, self._collect_when_idle)
        self.refresh_status()
        self.set_interval(self.settings.tui.refresh_s, self.refresh_status)
        self.check_orphans()
        if self.settings.images.read_text:
            self.read_new_images()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self._last_key = time.monotonic()
        await super().on_event(event)

    def _collect_when_idle(self) -> None:
        if time.monotonic() - self._last_key > IDLE_GC_S:
            gc.collect()

    def on_unmount(self) -> None:
        self.writer.close()
        self.resume.mode = self.current_mode or self.resume.mode
        try:
            resume.save(self.db_path, self.resume)
        except OSError as exc:  # a read-only folder: the next start opens on the first screen, nothing else lost
            log.warning("could not keep where the console was left: %s", exc)

    def note_position(self, mode: str, at: object) -> None:
        """A screen's row moved (a post, job, run or pod id): the next start returns to it."""
        self.resume.at[mode] = at

    def position(self, mode: str) -> object:
        """Where `mode` was left at the last quit (None: nowhere in particular)."""
        return self.resume.at.get(mode)

    @background("reading the status", group="status", exclusive=True)
    def refresh_status(self) -> None:
        from bizsent.core.pods.views import billing, stored
        from bizsent.jobs.views import running_count  # the liveness rule decides, not a row's stored state

        try:
            with reading(self.db_path) as db:
                pods, usd_per_hour = billing(db)
                stopped, usd_per_month = stored(db, self.settings)
                info = StatusInfo(str(self.db_path), running_count(db), spend(db).total_usd, pods, usd_per_hour,
                                  stopped, usd_per_month)
        except Exception as exc:  # the bar reports a broken database; the console stays up
            info = StatusInfo(db_path=str(self.db_path), error=f"database: {exc}")
        self.post_message(self.StatusUpdated(info))

    @background("checking the RunPod account for orphan pods", group="orphans", exclusive=True)
    def check_orphans(self) -> None:
        """Pods of bizsent's that nobody will stop bill by the hour: say so at start-up. Without a key this
        costs nothing; with one, the survey runs here, never before the first paint (httpx loads in here)."""
        from bizsent.core.pods import views

        if not views.key_is_set():
            return
        with reading(self.db_path) as db:
            account = views.survey_account(db, self.settings)
        if account.pods is None:  # RunPod did not answer: one quiet line, the console carries on
            notice: str | None = f"could not check for orphan pods: {account.note}"
        else:
            notice = views.orphan_notice(account)
        if notice:
            self.post_message(self.OrphansFound(notice))

    @background("starting the image-text job", group="read-images", exclusive=True)
    def read_new_images(self) -> None:
        """Images that arrived since the last start get their words read by a job (it outlives the console)."""
        from contextlib import closing

        from bizsent.core.store import open_db
        from bizsent.jobs.read_images import ensure_reading

        with closing(open_db(self.db_path, create=False)) as db:
            ensure_reading(db, self.db_path, self.config_path(), self.settings.data_dir / "logs")

    def on_bizsent_app_orphans_found(self, message: BizsentApp.OrphansFound) -> None:
        self.notify(message.text, severity="warning", timeout=20)

    def config_path(self) -> Path | None:
        """The config file the console was started with, so a job it starts detached reads the same settings."""
        source = self.settings.source
        return source if source is not None and source.exists() else None

    def write(self, fn: Callable[[sqlite_utils.Database], T]) -> Future[T]:
        """Queue a store write on the single writer thread; a failure is shown, never silently dropped."""
        future = self.writer.submit(fn)
        future.add_done_callback(self._check_write)
        return future

    def _check_write(self, future: Future) -> None:
        if future.exception() is not None:  # runs on the writer thread: post_message is thread-safe
            self.post_message(self.WriteFailed(str(future.exception())))

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notification of every screen: scrubbed like the log (a provider's error can quote a key)."""
        super().notify(redact(message), title=redact(title), severity=severity, timeout=timeout, markup=markup)

    def on_bizsent_app_write_failed(self, message: BizsentApp.WriteFailed) -> None:
        error = message.error
        if not self.db_path.exists():  # StoreError's own advice (`bizsent init`) would start a new, empty one
            error = f"the database {self.db_path} is gone (moved or deleted?); put it back and answer again"
        self.notify(f"could not save: {error}", severity="error", timeout=10)

    def on_bizsent_app_status_updated(self, message: BizsentApp.StatusUpdated) -> None:
        self.status = message.info
        was_down, self._store_down = self._store_down, bool(message.info.error)
        if was_down and not self._store_down:
            self._run_failed_again()

    def _handle_exception(self, error: Exception) -> None:
        # Textual paints the traceback over the terminal once the app has exited, and the process would exit 0:
        # keep the error instead, so the CLI ends like every command does (one line, exit 1, traceback in the log).
        # Headless (under Pilot) Textual's own handling stays, so a test sees the exception.
        if self.crashed is None:
            self.crashed = error
        super()._handle_exception(error)
        if not self.is_headless:
            self._exit_renderables.clear()

    # -- background failures ---------------------------------------------------------------------------------

    def on_background_failed(self, message: BackgroundFailed) -> None:
        self.report_failure(message.node, message.what, message.error)
        if message.retry is not None:
            self._retries[(id(message.node), message.what)] = (message.node, message.retry)
        self._note_store_failure(message.error)

    def _note_store_failure(self, error: BaseException) -> None:
        # The database could not be opened or is gone: the next status poll that reads it counts as its return,
        # even if the file came back before that poll could see it missing. A failing query on a healthy
        # database (a bug) does not, so it is not re-run every second.
        if isinstance(error, StoreError) or not self.db_path.exists():
            self._store_down = True
        self.refresh_status()  # the bar says at once what is wrong, and notices the return soon

    def report_failure(self, node: DOMNode, what: str, error: BaseException) -> None:
        """One line on screen saying what to do, the traceback in the log; the same failure at most every
        REPORT_EVERY_S seconds (a poll fails every second while the database is gone)."""
        line = failure_line(node, what, error, self.db_path)
        now = time.monotonic()
        if now - self._reported.get(line, -REPORT_EVERY_S) < REPORT_EVERY_S:
            return
        self._reported[line] = now
        log.error("%s", line, exc_info=(type(error), error, error.__traceback__))
        self.notify(line, severity="error", timeout=10)

    def _run_failed_again(self) -> None:
        """The database answers again: run what failed meanwhile (the first loads of a screen, say) once more."""
        retries, self._retries = self._retries, {}
        self._reported.clear()
        for node, retry in retries.values():
            if node.is_attached:
                retry()
        if retries:
            self.notify("the database is back", timeout=4)

    async def action_quit(self) -> None:
        # ctrl+q is a priority key: it reaches the app even from a prompt. What was typed there (a note) is kept.
        if isinstance(self.screen, PromptModal):
            self.screen.keep_typed()
        await super().action_quit()

    def action_help(self) -> None:
        from bizsent.tui.screens.help import HelpModal, help_markdown  # markdown-it: only when help is asked for

        if isinstance(self.screen, HelpModal):
            return
        self.push_screen(HelpModal(help_markdown(self.screen, list(self.BINDINGS), self.keymap)))

    async def run_screen_action(self, mode: str, action: str) -> None:
        """Palette entries: go to the screen that owns the action, then run it there."""
        if self.current_mode != mode:
            await self.switch_mode(mode)
        await self.run_action(action, self.screen)


def failure_line(node: DOMNode, what: str, error: BaseException, db_path: Path) -> str:
    """The notification for a failed worker: one line, no traceback."""
    if not db_path.exists():
        return f"the database {db_path} is gone (moved or deleted?): put it back and the console carries on"
    screen = getattr(node, "screen", node)  # a widget's worker: name its screen
    where = getattr(screen, "TITLE", None) or type(screen).__name__
    text = redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
    if isinstance(error, StoreError | sqlite3.Error):
        return f"{where}: {what} failed: {text}; it runs again once the database answers"
    where_log = log_file() or "the log"
    return f"{where}: {what} failed ({type(error).__name__}: {text}); traceback in {where_log}"


class BizsentNode:
    """Mixin for the console's screens and widgets: `self.bizsent` is the running BizsentApp, typed, where
    Textual's `self.app` is any App. Its settings, database path, single writer and status are read through it."""

    @property
    def bizsent(self) -> BizsentApp:
        assert isinstance(self, DOMNode), "BizsentNode mixes into screens and widgets only"
        app = self.app
        if not isinstance(app, BizsentApp):
            raise TypeError(f"{type(self).__name__} belongs to the bizsent console, not to {type(app).__name__}")
        return app

    def poll_while_shown(self, poll: Callable[[], object]) -> None:
        """Call `poll` every tui.refresh_s while this node's screen is on show: a screen in the background reads
        nothing (each screen reads again when it is shown)."""
        assert isinstance(self, DOMNode), "BizsentNode mixes into screens and widgets only"
        node = self

        def tick() -> None:
            if node.screen.is_current:
                poll()

        node.set_interval(self.bizsent.settings.tui.refresh_s, tick)

