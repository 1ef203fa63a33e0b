"""`bizsent backfill`: past /biz/ threads from an archive mirror (archive.base_url, warosu's shape), with images.

Day by day, oldest first: the mirror's search lists the threads started that day (page after page, until a page
lists nothing new), then each thread page is read (core.collect.archive_html) and its posts stored with source
'archive', then their images are fetched. Every request, pages and images alike, goes through one polite client
at archive.requests_per_second, a limit shared by everything using this data folder (`archive.rate`, as
`4chan.rate` is for 4chan's API).

Resumable: a thread is marked done in the same transaction that stores its posts, and a day once all its threads
are, so a backfill killed at any point goes on with the next thread, never fetching or storing one twice. A
thread page that is gone (404) is marked missing and counted; network trouble leaves it for the next run; a page
in a layout this reader does not know stops the backfill with one line (LayoutError).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlite_utils
from bizsent.core.collect.archive_html import listed_threads, thread_posts
from bizsent.core.collect.fourchan import Clock, FourChanClient
from bizsent.core.collect.ingest import ScrapeReport, fetch_images
from bizsent.core.config import ArchiveSettings, Settings
from bizsent.core.errors import ConfigError
from bizsent.core.store import now, transaction
from bizsent.core.store.posts import write_posts

RATE_FILE = "archive.rate"  # in the data folder: the one archive request rate every backfill there shares
THREADS_PER_LISTING = 24  # for the estimate only: results per search page on warosu (a guess)
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    days: list[date]  # still to do
    days_done: int
    requests: int  # estimated
    hours: float
    gigabytes: float

    def summary(self) -> str:
        if not self.days:
            return f"backfill: all {self.days_done} day(s) already done; nothing to fetch"
        done = f" ({self.days_done} already done)" if self.days_done else ""
        return (f"backfill: {len(self.days)} day(s) to fetch{done}, about {self.requests:,} requests: about "
                f"{self.hours:.1f} h at the archive's limit and {self.gigabytes:.1f} GB of images (estimates from "
                "archive.threads_per_day and archive.images_per_thread); no money is spent")


@dataclass
class BackfillReport:
    days_done: int = 0
    threads_stored: int = 0
    threads_skipped: int = 0  # done by an earlier run
    threads_missing: int = 0  # 404 on the archive: final
    threads_failed: int = 0  # network or server trouble: retried by the next run
    posts_new: int = 0
    posts_updated: int = 0
    images: ScrapeReport = field(default_factory=ScrapeReport)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        i = self.images
        lines = [
            f"days: {self.days_done} done; threads: {self.threads_stored} stored, {self.threads_skipped} done before, "
            f"{self.threads_missing} missing on the archive, {self.threads_failed} failed (retried by the next run)",
            f"posts: {self.posts_new} new, {self.posts_updated} updated (source 'archive')",
            f"images: {i.images_ok} ok, {i.images_failed} failed on the network, {i.images_corrupt} corrupt, "
            f"{i.images_missing} missing",
        ]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s), retried by the next run; first: {self.problems[0]}")
        return "\n".join(lines)


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a date; write it as YYYY-MM-DD") from None


def plan(db: sqlite_utils.Database, settings: Settings, start: date, end: date) -> Plan:
    """What a backfill of [start, end] (UTC days, both included) has left to do, and what it will take."""
    if end < start:
        raise ConfigError(f"--to {end} is before --from {start}; give the earlier date first")
    if end > date.today():
        raise ConfigError(f"--to {end} is in the future; the archive has nothing from it yet")
    a = settings.archive
    every = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    done = {r[0] for r in db.execute("SELECT key FROM archive_pages WHERE board = ? AND kind = 'day'", [a.board])}
    todo = [d for d in every if d.isoformat() not in done]
    images = len(todo) * a.threads_per_day * a.images_per_thread if a.download_images else 0
    requests = len(todo) * (a.threads_per_day + math.ceil(a.threads_per_day / THREADS_PER_LISTING) + 1) + images
    return Plan(days=todo, days_done=len(every) - len(todo), requests=int(requests),
                hours=requests / a.requests_per_second / 3600, gigabytes=images * a.mb_per_image / 1024)


def listing_url(a: ArchiveSettings, day: date, offset: int) -> str:
    """The mirror's search for threads started on `day` (Fuuka's search form; the parameter names are a guess
    checked against warosu's form, see tests/fakes/archive.py)."""
    return (f"{a.base_url.rstrip('/')}/{a.board}/?task=search2&search_op=op&search_datefrom={day.isoformat()}"
            f"&search_dateto={day.isoformat()}&offset={offset}")


def thread_page_url(a: ArchiveSettings, no: int) -> str:
    return f"{a.base_url.rstrip('/')}/{a.board}/thread/{no}"


def backfill(db: sqlite_utils.Database, settings: Settings, days: list[date], *, clock: Clock | None = None,
             progress: Progress | None = None) -> BackfillReport:
    """Fetch the given days (see the module doc). LayoutError stops it; everything stored before stays."""
    a = settings.archive
    say = progress or (lambda _line: None)
    report = BackfillReport()
    polite = settings.scrape.model_copy(update={"requests_per_second": a.requests_per_second,
                                                "timeout_s": a.timeout_s})
    with FourChanClient(polite, clock, shared_limit=settings.data_dir / RATE_FILE) as client:
        for day in days:
            threads = _list_day(db, a, client, day, report, say)
            if threads is None:
                continue
            complete = True
            for i, no in enumerate(threads, 1):
                complete = _thread(db, settings, client, no, report, say, f"{day} [{i}/{len(threads)}]") and complete
            if complete:
                _mark(db, a.board, "day", day.isoformat(), "done", len(threads))
                report.days_done += 1
        if a.download_images:  # images of a thread stored just before an earlier run was killed
            fetch_images(db, settings, client, report.images, say, source="archive")
    return report


def _list_day(db: sqlite_utils.Database, a: ArchiveSettings, client: FourChanClient, day: date,
              report: BackfillReport, say: Progress) -> list[int] | None:
    """Every thread the mirror lists for `day`; None when a listing page could not be read (retried later)."""
    threads: list[int] = []
    for page in range(1, 10_000):
        got = client.get(listing_url(a, day, len(threads)))  # Fuuka's offset counts results (one per thread)
        if got.status != 200:
            report.problems.append(f"{day}: listing page {page}: {got.reason or f'HTTP {got.status}'}")
            say(report.problems[-1])
            return None
        fresh = [no for no in listed_threads(got.body.decode("utf-8", "replace"), a.board) if no not in threads]
        if not fresh:
            break
        threads += fresh
    say(f"{day}: {len(threads)} threads listed")
    return threads


def _thread(db: sqlite_utils.Database, settings: Settings, client: FourChanClient, no: int, report: BackfillReport,
            say: Progress, position: str) -> bool:
    """Fetch, store and fetch the images of one thread; False when it must be retried by a later run."""
    a = settings.archive
    known = db.execute("SELECT state FROM archive_pages WHERE board = ? AND kind = 'thread' AND key = ?",
                       [a.board, str(no)]).fetchone()
    if known:
        report.threads_skipped += 1
        return True
    url = thread_page_url(a, no)
    got = client.get(url)
    if got.status == 404:
        _mark(db, a.board, "thread", str(no), "missing", 0)
        report.threads_missing += 1
        say(f"thread {no} {position}: not on the archive (404)")
        return True
    if got.status != 200:
        report.threads_failed += 1
        report.problems.append(f"thread {no}: {got.reason or f'HTTP {got.status}'}")
        say(report.problems[-1])
        return False
    posts = thread_posts(got.body.decode("utf-8", "replace"), board=a.board, url=url)
    with transaction(db):
        counts = write_posts(db, posts)
        _mark(db, a.board, "thread", str(no), "done", len(posts))
    report.threads_stored += 1
    report.posts_new += counts.new
    report.posts_updated += counts.updated
    say(f"thread {no} {position}: {counts.new} new posts")
    if a.download_images:
        fetch_images(db, settings, client, report.images, say, source="archive")
    return True


def _mark(db: sqlite_utils.Database, board: str, kind: str, key: str, state: str, posts: int) -> None:
    db.execute("INSERT INTO archive_pages (board, kind, key, state, posts, fetched_at) VALUES (?, ?, ?, ?, ?, ?)"
               " ON CONFLICT (board, kind, key) DO UPDATE SET state = excluded.state, posts = excluded.posts,"
               " fetched_at = excluded.fetched_at", [board, kind, key, state, posts, now()])
