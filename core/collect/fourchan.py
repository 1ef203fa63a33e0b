"""A polite client for 4chan's read-only JSON API and image host (https://github.com/4chan/4chan-API).

The API rules: at most one request per second, and If-Modified-Since on anything fetched repeatedly.
One `RateLimiter` spaces EVERY request (API and images) from the end of the previous one, so network
jitter can never make two requests arrive closer together than the limit allows. The limit is per data
folder, not per process: a file there is locked around each request and holds the time the last one ended,
so two scrapes at once, or one restarted right after a kill, still keep to it. Failures never raise:
timeouts, 5xx, 429 and connection errors are retried a bounded number of times with backoff, then come
back as a `Fetched` with status 0 and a one-line reason for the caller to record.
"""

from __future__ import annotations

import fcntl
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import sqlite_utils
from bizsent.core.config import ScrapeSettings
from bizsent.core.store import now

RETRIES = 3  # attempts per request before giving up with a reason
BACKOFF_S = 2.0  # wait before the second attempt; doubles after each failure
RETRY_STATUS = {429, 500, 502, 503, 504}


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()  # wall clock: the shared rate file compares times taken in different processes

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class RateLimiter:
    """At most `per_second` requests per second, measured from the end of one request to the next start.

    With `shared` (a file), every limiter using that file keeps the limit together, across processes: `wait`
    locks the file (flock, released by `done`, so a request in flight holds it) and reads when the last request
    ended; `done` writes it. A wait is never longer than one interval, whatever the file says, so a clock set
    back (or a fake clock in tests) cannot stall a scrape.
    """

    def __init__(self, per_second: float, clock: Clock, shared: Path | None = None) -> None:
        self.interval = 1.0 / per_second
        self.clock = clock
        self._next_at: float | None = None
        self._file = shared.open("a+", encoding="ascii") if shared is not None else None
        self._held = False

    def wait(self) -> None:
        if self._file is not None:
            self._lock()
            ended = self._last_end()
            if ended is not None:
                self._next_at = max(self._next_at or 0.0, ended + self.interval)
        if self._next_at is not None:
            delay = min(self._next_at - self.clock.now(), self.interval)
            if delay > 0:
                self.clock.sleep(delay)

    def done(self) -> None:
        ended = self.clock.now()
        self._next_at = ended + self.interval
        if self._file is not None:
            self._lock()
            self._file.seek(0)
            self._file.truncate()
            self._file.write(repr(ended))
            self._file.flush()
            self._held = False
            fcntl.flock(self._file, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops a lock still held (a request that raised past `done`)
            self._file = None

    def _lock(self) -> None:
        if not self._held:
            fcntl.flock(self._file, fcntl.LOCK_EX)
            self._held = True

    def _last_end(self) -> float | None:
        self._file.seek(0)
        try:
            return float(self._file.read())
        except ValueError:  # a new (empty) file
            return None


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    status: int  # HTTP status of the last attempt; 0 when no usable response arrived
    body: bytes = b""
    last_modified: str | None = None
    reason: str = ""  # one line, set whenever status is 0 (and for refused downloads)

    def json(self) -> Any:
        return json.loads(self.body)


def catalog_url(s: ScrapeSettings) -> str:
    return f"{s.api_base.rstrip('/')}/{s.board}/catalog.json"


def threads_url(s: ScrapeSettings) -> str:
    return f"{s.api_base.rstrip('/')}/{s.board}/threads.json"


def archive_url(s: ScrapeSettings) -> str:
    return f"{s.api_base.rstrip('/')}/{s.board}/archive.json"


def thread_url(s: ScrapeSettings, thread_no: int) -> str:
    return f"{s.api_base.rstrip('/')}/{s.board}/thread/{thread_no}.json"


def image_url(s: ScrapeSettings, tim: int, ext: str) -> str:
    return f"{s.image_base.rstrip('/')}/{s.board}/{tim}{ext}"


def thumb_url(s: ScrapeSettings, tim: int) -> str:
    return f"{s.image_base.rstrip('/')}/{s.board}/{tim}s.jpg"


class FourChanClient:
    """Rate-limited GETs with conditional requests and bounded retries. Use as a context manager."""

    def __init__(self, settings: ScrapeSettings, clock: Clock | None = None,
                 transport: httpx.BaseTransport | None = None, shared_limit: Path | None = None) -> None:
        """`shared_limit`: the file that makes the rate limit hold across processes (see RateLimiter)."""
        self.settings = settings
        self.clock = clock or RealClock()
        self.limiter = RateLimiter(settings.requests_per_second, self.clock, shared_limit)
        self.http = httpx.Client(
            timeout=settings.timeout_s, follow_redirects=True, transport=transport,
            headers={"User-Agent": settings.user_agent},
        )

    def __enter__(self) -> FourChanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()
        self.limiter.close()

    def get(self, url: str, *, if_modified_since: str | None = None, max_bytes: int | None = None) -> Fetched:
        """GET `url` politely. 304 means unchanged since `if_modified_since`; status 0 means it failed."""
        headers = {"If-Modified-Since": if_modified_since} if if_modified_since else {}
        backoff = BACKOFF_S
        reason = ""
        for attempt in range(1, RETRIES + 1):
            self.limiter.wait()
            try:
                result = self._once(url, headers, max_bytes)
            except httpx.TimeoutException:
                reason = f"timed out after {self.settings.timeout_s:g}s"
            except httpx.HTTPError as exc:
                reason = f"connection failed ({type(exc).__name__}: {str(exc) or 'no detail'})"
            else:
                if result.status not in RETRY_STATUS:
                    return result
                reason = f"server answered HTTP {result.status}"
            finally:
                self.limiter.done()
            if attempt < RETRIES:
                self.clock.sleep(backoff)
                backoff *= 2
        return Fetched(url=url, status=0, reason=f"{reason} ({RETRIES} attempts)")

    def _once(self, url: str, headers: dict[str, str], max_bytes: int | None) -> Fetched:
        with self.http.stream("GET", url, headers=headers) as resp:
            modified = resp.headers.get("Last-Modified")
            if resp.status_code != 200:
                return Fetched(url=url, status=resp.status_code, last_modified=modified)
            declared = int(resp.headers.get("Content-Length") or 0)
            if max_bytes is not None and declared > max_bytes:
                return Fetched(url=url, status=200, reason=_too_big(declared, max_bytes))
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    return Fetched(url=url, status=200, reason=_too_big(size, max_bytes))
                chunks.append(chunk)
            return Fetched(url=url, status=200, body=b"".join(chunks), last_modified=modified)


def _too_big(size: int, limit: int) -> str:
    return (f"larger than scrape.max_image_mb ({size / 2**20:.1f} MB > {limit / 2**20:g} MB);"
            " raise the limit to accept it")


def cached_last_modified(db: sqlite_utils.Database, url: str) -> str | None:
    row = db.execute("SELECT last_modified FROM http_cache WHERE url = ?", [url]).fetchone()
    return row[0] if row else None


def remember(db: sqlite_utils.Database, url: str, last_modified: str | None) -> None:
    """Keep the Last-Modified of `url` for the next If-Modified-Since. Call only once its content is stored."""
    if last_modified:
        db.execute(
            "INSERT INTO http_cache (url, last_modified, fetched_at) VALUES (?, ?, ?)"
            " ON CONFLICT (url) DO UPDATE SET last_modified = excluded.last_modified,"
            " fetched_at = excluded.fetched_at",
            [url, last_modified, now()],
        )
