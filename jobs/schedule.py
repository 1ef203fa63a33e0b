"""`bizsent scrape --every 60m`: collect, wait, collect again, for as long as the process lives.

- Rounds start `every` apart, measured on the wall clock from the start of the previous round. The wait is
  slept in short pieces and the wall clock read after each, because a sleeping laptop stops the monotonic clock
  that `time.sleep` counts: after a suspend the round that fell due runs at once, and missed rounds are not
  caught up (one round collects everything that is new).
- A round that fails on the network (4chan unreachable, the catalog not fetched) is tried again after
  `retry` (shorter than `every`), so a lost connection costs minutes, not an hour. A round that raises is
  logged with its traceback and reported in one line; the loop goes on.
- One loop per data folder: `schedule.lock` there is held (flock) for the loop's life, and a second loop exits
  at once naming the first one's pid. Requests stay at one per second across everything that collects into the
  folder (this loop, a plain `bizsent scrape`, a backfill) through the shared rate file (core.collect.fourchan).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bizsent.core.collect.fourchan import Clock
from bizsent.core.errors import ConfigError

LOCK_FILE = "schedule.lock"
SLEEP_PIECE_S = 30.0  # the longest single sleep: how late a round can start after the laptop wakes
DEFAULT_RETRY_S = 300.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
log = logging.getLogger(__name__)


class AlreadyCollecting(ConfigError):
    """Another loop holds this data folder's schedule lock."""


@dataclass(frozen=True, slots=True)
class Round:
    ok: bool  # False: retried after `retry` instead of `every`
    line: str  # what the round did, one line


def parse_every(text: str) -> float:
    """Seconds from "60m", "1h", "90s", "1.5h" or a bare number of seconds; one clear line when it is neither."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--every {text!r} is not a duration; write it like 60m, 1h or 90s")
    return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


@contextmanager
def loop_lock(data_dir: Path):
    """Hold the data folder's schedule lock, or raise AlreadyCollecting naming the holder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = (data_dir / LOCK_FILE).open("a+", encoding="ascii")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlreadyCollecting(f"scheduled collection already runs for {data_dir} (pid {holder}); stop it "
                                    "first, or use another data folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def run_every(once: Callable[[], Round], every_s: float, clock: Clock, *, retry_s: float = DEFAULT_RETRY_S,
              rounds: int | None = None, say: Callable[[str], None] = lambda _line: None,
              after: Callable[[Round, float | None], None] = lambda _round, _next_at: None) -> int:
    """Run `once` every `every_s` seconds (the rules in the module doc); stop after `rounds` if given.
    `after(round, next_at)` hears of each round and when the next one is due (None: it was the last).
    Returns the number of rounds run."""
    done = 0
    while rounds is None or done < rounds:
        started = clock.now()
        result = _guarded(once)
        done += 1
        say(result.line)
        last = rounds is not None and done >= rounds
        wait = every_s if result.ok else min(retry_s, every_s)
        after(result, None if last else started + wait)
        if last:
            break
        say(f"next round in {human(wait)}" + ("" if result.ok else " (the last one failed on the network)"))
        _sleep_until(clock, started + wait)
    return done


def _guarded(once: Callable[[], Round]) -> Round:
    try:
        return once()
    except Exception as exc:  # noqa: BLE001  (a long-lived loop outlives one bad round; the log keeps the trace)
        log.exception("scheduled round failed")
        return Round(ok=False, line=f"round failed: {type(exc).__name__}: {exc} (details in the log)")


def _sleep_until(clock: Clock, due: float) -> None:
    """Sleep in pieces until the wall clock reaches `due` (see the module doc on suspend)."""
    while (left := due - clock.now()) > 0:
        clock.sleep(min(left, SLEEP_PIECE_S))


def human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _read_images(db, db_path: Path, settings) -> str:
    from bizsent.core.collect.ocr import missing
    from bizsent.jobs.read_images import ensure_reading

    if not settings.images.read_text or missing():
        return ""
    started = ensure_reading(db, db_path, settings.source, settings.data_dir / "logs")
    return f"; {started}" if started else ""


def scrape_round(db_path: Path, settings, **scrape_args) -> Round:
    """One collection round: scrape (core.collect.ingest), then read the new posts' coin mentions, and start the
    image-text job for the new images (jobs.read_images) when it is on and none runs."""
    from bizsent.core.coins import catalog
    from bizsent.core.coins.tags import tag_posts
    from bizsent.core.collect.ingest import scrape
    from bizsent.core.store import open_db
    from bizsent.jobs.live_predict import live_round

    db = open_db(db_path)  # opened per round: a long-lived loop holds no connection while it sleeps
    try:
        report = scrape(db, settings, **scrape_args)
        tagged = tag_posts(db, catalog(settings.coins))
        predicted = live_round(db, settings)
        reading = _read_images(db, db_path, settings)
    finally:
        db.close()
    line = (f"round done: {report.posts_new} new posts, {report.images_ok} images, {tagged.mentions} coin "
            f"mentions; {report.candidates} labeling candidates in all; {predicted}{reading}")
    if report.problems:
        line += f"; {len(report.problems)} problem(s), first: {report.problems[0]}"
    return Round(ok=not report.problems, line=line)
