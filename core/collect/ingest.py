"""`bizsent scrape`: pull threads from 4chan's API into the store, then download their images.

Incremental: a thread whose catalog `last_modified` matches the stored one costs no request; the others
are asked for with If-Modified-Since. Resumable: a thread's Last-Modified (and the catalog's) is only
remembered after its posts are committed, so a run killed midway is finished by the next one, and
`save_posts` keys posts by (board, post_no), so nothing is ever stored twice.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils
from bizsent.core.collect.fourchan import (
    Clock,
    Fetched,
    FourChanClient,
    archive_url,
    cached_last_modified,
    catalog_url,
    image_url,
    remember,
    thread_url,
    thumb_url,
)
from bizsent.core.collect.html_text import clean_text
from bizsent.core.collect.images import Cached, cache_image, record
from bizsent.core.collect.video import first_frame, is_video
from bizsent.core.config import ScrapeSettings, Settings
from bizsent.core.store import now, transaction
from bizsent.core.store.posts import CANDIDATE_SQL, save_posts
from bizsent.core.store.records import ImageRef, NewPost

Progress = Callable[[str], None]
RATE_FILE = "4chan.rate"  # in the data folder: the one request-rate limit every scrape there shares
# Network failures in a row after which the image pass stops: the host or the network is down, and each
# further image would cost its retries and backoff (about 6 s) for nothing. The next run goes on.
NETWORK_GIVE_UP = 5


@dataclass
class ScrapeReport:
    threads_seen: int = 0  # listed by the catalog/archive
    threads_fetched: int = 0
    threads_unchanged: int = 0  # skipped by catalog last_modified or answered 304
    threads_gone: int = 0  # 404: pruned before we got to it
    threads_failed: int = 0  # network/server trouble; retried by the next run
    catalog_unchanged: bool = False
    posts_new: int = 0
    posts_updated: int = 0
    posts_skipped: int = 0  # already stored, unchanged
    images_ok: int = 0
    images_corrupt: int = 0
    images_unsupported: int = 0
    images_missing: int = 0
    images_failed: int = 0  # network trouble (timeout, connection, 5xx): left pending, retried by the next run
    images_pending: int = 0  # database-wide, after this run
    candidates: int = 0  # database-wide: posts with an image on disk and text
    posts_without_image: int = 0  # database-wide
    posts_without_text: int = 0  # database-wide
    images_stopped: int = 0  # left for the next run after too many network failures in a row
    corrupt_retry_min: float = 60  # scrape.retry_failed_after_min, for the summary
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        board = "catalog unchanged since the last run; " if self.catalog_unchanged else ""
        lines = [
            f"threads: {board}{self.threads_seen} listed, {self.threads_fetched} fetched, "
            f"{self.threads_unchanged} unchanged, {self.threads_gone} gone, {self.threads_failed} failed",
            f"posts: {self.posts_new} new, {self.posts_updated} updated, {self.posts_skipped} already stored",
            f"images: {self.images_ok} ok, {self.images_failed} failed on the network (retried by the next run), "
            f"{self.images_corrupt} corrupt (retried after {self.corrupt_retry_min:g} min, "
            f"scrape.retry_failed_after_min), {self.images_unsupported} unsupported and {self.images_missing} "
            f"missing (final); {self.images_pending} still pending",
            f"database: {self.candidates} labeling candidates (image + text); "
            f"{self.posts_without_image} posts without an image and {self.posts_without_text} without text "
            "are kept but never labeled",
        ]
        if self.images_stopped:
            lines.append(f"image downloads stopped after {NETWORK_GIVE_UP} network failures in a row; "
                         f"{self.images_stopped} left for the next run")
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s), retried by the next run; first: {self.problems[0]}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ThreadRef:
    no: int
    state: str  # live | archived
    last_modified: int | None = None
    replies: int | None = None


def scrape(
    db: sqlite_utils.Database,
    settings: Settings,
    *,
    max_threads: int | None = None,
    include_archive: bool | None = None,
    download_images: bool | None = None,
    images_only: bool = False,
    progress: Progress | None = None,
    client: FourChanClient | None = None,
    clock: Clock | None = None,
) -> ScrapeReport:
    """One scrape run: changed threads (newest-bumped first, at most `max_threads` fetched), then images."""
    s = settings.scrape
    report = ScrapeReport(corrupt_retry_min=s.retry_failed_after_min)
    say = progress or (lambda _line: None)
    owned = client is None
    client = client or FourChanClient(s, clock, shared_limit=settings.data_dir / RATE_FILE)
    try:
        if not images_only:
            budget = s.max_threads if max_threads is None else max_threads
            budget = _walk(db, s, client, catalog_url(s), _catalog_refs, budget, report, say)
            if budget > 0 and (s.include_archive if include_archive is None else include_archive):
                _walk(db, s, client, archive_url(s), _archive_refs, budget, report, say)
        if images_only or (s.download_images if download_images is None else download_images):
            fetch_images(db, settings, client, report, say)
    finally:
        if owned:
            client.close()
    _count_totals(db, report)
    return report


def _catalog_refs(data: Any) -> list[ThreadRef]:
    return [ThreadRef(no=t["no"], state="live", last_modified=t.get("last_modified"), replies=t.get("replies"))
            for page in data for t in page.get("threads", [])]


def _archive_refs(data: Any) -> list[ThreadRef]:
    return [ThreadRef(no=int(no), state="archived") for no in reversed(data)]  # newest first


def _walk(db: sqlite_utils.Database, s: ScrapeSettings, client: FourChanClient, list_url: str,
          parse: Callable[[Any], list[ThreadRef]], budget: int, report: ScrapeReport, say: Progress) -> int:
    """Fetch the changed threads of one listing (catalog or archive); return the fetch budget left."""
    name = list_url.rsplit("/", 1)[-1]
    listing = client.get(list_url, if_modified_since=cached_last_modified(db, list_url))
    if listing.status == 304:
        report.catalog_unchanged = report.catalog_unchanged or name == "catalog.json"
        say(f"{name}: unchanged since the last run")
        return budget
    try:
        refs = parse(listing.json()) if listing.status == 200 else None
    except (ValueError, KeyError, TypeError, AttributeError):
        refs = None
    if refs is None:
        _problem(report, say, f"{name}: {_why(listing) if listing.status != 200 else 'not the expected JSON'}")
        return budget
    known = {row[0]: row[1:] for row in db.execute(
        "SELECT thread_no, last_modified, state, fetched_at FROM threads WHERE board = ?", [s.board])}
    todo = [ref for ref in refs if _changed(ref, known.get(ref.no))]
    report.threads_seen += len(refs)
    report.threads_unchanged += len(refs) - len(todo)
    say(f"{name}: {len(refs)} threads, {len(todo)} new or changed")
    complete = True
    for i, ref in enumerate(todo, 1):
        if budget <= 0:
            say(f"{name}: stopping at max_threads; the next run continues")
            complete = False
            break
        budget -= 1
        complete = _fetch_thread(db, s, client, ref, report, say, f"[{i}/{len(todo)}]") and complete
    if complete:
        remember(db, list_url, listing.last_modified)
    return budget


def _changed(ref: ThreadRef, known: tuple | None) -> bool:
    if known is None:
        return True
    last_modified, state, fetched_at = known
    if ref.state == "archived":
        return state not in ("archived", "gone")  # archived threads never change again
    return fetched_at is None or last_modified != ref.last_modified


def _fetch_thread(db: sqlite_utils.Database, s: ScrapeSettings, client: FourChanClient, ref: ThreadRef,
                  report: ScrapeReport, say: Progress, position: str) -> bool:
    """Fetch and store one thread; False when it must be retried by a later run."""
    url = thread_url(s, ref.no)
    got = client.get(url, if_modified_since=cached_last_modified(db, url))
    if got.status == 304:
        _mark_thread(db, s.board, ref, ref.state)
        report.threads_unchanged += 1
        say(f"thread {ref.no} {position}: unchanged (304)")
        return True
    if got.status == 404:
        _mark_thread(db, s.board, ref, "gone")
        report.threads_gone += 1
        say(f"thread {ref.no} {position}: gone (404)")
        return True
    try:
        raw = got.json()["posts"] if got.status == 200 else None
        posts = posts_from_thread(s, raw) if raw else None
    except (ValueError, KeyError, TypeError, AttributeError):
        posts = None
    if posts is None:
        report.threads_failed += 1
        _problem(report, say, f"thread {ref.no}: {_why(got) if got.status != 200 else 'not valid thread JSON'}")
        return False
    counts = save_posts(db, posts)
    state = "archived" if raw[0].get("archived") else ref.state
    with transaction(db):
        _mark_thread(db, s.board, ref, state, got.last_modified, len(raw) - 1)
        remember(db, url, got.last_modified)
    report.threads_fetched += 1
    report.posts_new += counts.new
    report.posts_updated += counts.updated
    report.posts_skipped += counts.unchanged
    say(f"thread {ref.no} {position}: {counts.new} new, {counts.updated} updated, "
        f"{counts.unchanged} already stored")
    return True


def posts_from_thread(s: ScrapeSettings, raw: list[dict[str, Any]]) -> list[NewPost]:
    """The posts of one thread JSON (`{"posts": [...]}`'s list) as records for save_posts."""
    out = []
    for p in raw:
        image = None
        if p.get("tim") and p.get("ext") and not p.get("filedeleted"):
            image = ImageRef(url=image_url(s, p["tim"], p["ext"]), thumb_url=thumb_url(s, p["tim"]),
                             md5=p.get("md5"), width=p.get("w"), height=p.get("h"))
        com = p.get("com") or ""
        resto = p.get("resto") or 0
        out.append(NewPost(board=s.board, thread_no=resto or p["no"], post_no=p["no"], text=clean_text(com),
                           html=com, subject=clean_text(p.get("sub")), time=p.get("time"), is_op=not resto,
                           image=image))
    return out


def _mark_thread(db: sqlite_utils.Database, board: str, ref: ThreadRef, state: str,
                 http_last_modified: str | None = None, replies: int | None = None) -> None:
    db.execute(
        "INSERT INTO threads (board, thread_no, last_modified, http_last_modified, replies, state, fetched_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (board, thread_no) DO UPDATE SET"
        " last_modified = coalesce(excluded.last_modified, last_modified),"
        " http_last_modified = coalesce(excluded.http_last_modified, http_last_modified),"
        " replies = coalesce(excluded.replies, replies), state = excluded.state, fetched_at = excluded.fetched_at",
        [board, ref.no, ref.last_modified, http_last_modified, replies if replies is not None else ref.replies,
         state, now()],
    )


def fetch_images(db: sqlite_utils.Database, settings: Settings, client: FourChanClient, report: ScrapeReport,
                 say: Progress, source: str | None = None) -> None:
    """Download every pending image, and every corrupt one last tried longer ago than the retry window.

    Pending includes network failures (timeout, connection error, 5xx), which are retried at once by the next
    run; a corrupt download waits scrape.retry_failed_after_min, since the host usually serves the same bytes.
    Covers scraped posts and imported ones whose rows carry an http(s) URL (e.g. an archive mirror); with
    `source`, only the images of posts from that source (the archive backfill fetches its own, at its host's rate).
    """
    s = settings.scrape
    cutoff = (datetime.now(UTC) - timedelta(minutes=s.retry_failed_after_min)).isoformat(timespec="seconds")
    rows = db.execute(
        "SELECT id, url, md5 FROM images WHERE (url LIKE 'http://%' OR url LIKE 'https://%') AND (status = 'pending'"
        " OR (status = 'corrupt' AND (last_attempt_at IS NULL OR last_attempt_at <= ?)))"
        + (" AND id IN (SELECT image_id FROM posts WHERE source = ?)" if source else "") + " ORDER BY id DESC",
        [cutoff, source] if source else [cutoff],
    ).fetchall()
    failures_in_a_row = 0
    for i, (image_id, url, md5) in enumerate(rows, 1):
        if failures_in_a_row >= NETWORK_GIVE_UP:
            report.images_stopped = len(rows) - i + 1
            say(f"images: {NETWORK_GIVE_UP} network failures in a row; the next run retries the "
                f"{report.images_stopped} left")
            break
        result = _download(settings, client, url, md5 if url.startswith(s.image_base) else None)
        record(db, image_id, result)
        failed = result.status == "pending"
        failures_in_a_row = failures_in_a_row + 1 if failed else 0
        if failed:
            report.images_failed += 1
        else:
            key = f"images_{result.status}"
            setattr(report, key, getattr(report, key) + 1)
        detail = f" ({result.reason})" if result.reason else ""
        say(f"image {i}/{len(rows)} {url.rsplit('/', 1)[-1]}: "
            f"{'failed, retried by the next run' if failed else result.status}{detail}")


def _download(settings: Settings, client: FourChanClient, url: str, md5: str | None) -> Cached:
    """Fetch and cache one image; the outcome as the images row should record it."""
    video = is_video(url)
    got = client.get(url, max_bytes=int(settings.scrape.max_image_mb * 2**20))
    if got.status in (404, 410):
        return Cached(status="missing", reason=f"not on the server any more (HTTP {got.status})")
    if got.status != 200:
        return Cached(status="pending", reason=_why(got))
    if got.reason:
        return Cached(status="corrupt", reason=got.reason)
    if not video:
        return cache_image(settings.image_dir, got.body, settings.images.thumbnail_px, md5=md5)
    frame, status, reason = first_frame(got.body)
    if frame is None:
        return Cached(status=status, reason=reason)
    png = io.BytesIO()
    frame.save(png, "PNG")  # the first frame stands for the video, as a still every reader can open
    return cache_image(settings.image_dir, png.getvalue(), settings.images.thumbnail_px)


def _why(got: Fetched) -> str:
    return got.reason or f"HTTP {got.status}"


def _problem(report: ScrapeReport, say: Progress, line: str) -> None:
    report.problems.append(line)
    say(line)


def _count_totals(db: sqlite_utils.Database, report: ScrapeReport) -> None:
    def one(sql: str) -> int:
        return db.execute(sql).fetchone()[0]

    report.candidates = one(
        f"SELECT count(*) FROM posts p LEFT JOIN images i ON i.id = p.image_id WHERE {CANDIDATE_SQL}")
    report.posts_without_image = one("SELECT count(*) FROM posts WHERE image_id IS NULL")
    report.posts_without_text = one("SELECT count(*) FROM posts WHERE trim(text) = ''")
    report.images_pending = one("SELECT count(*) FROM images WHERE status = 'pending'")
