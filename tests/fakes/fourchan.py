"""A fake 4chan (read-only JSON API + image host) on 127.0.0.1 for tests and bench/ingest.py.

Threads, catalog, threads.json and archive.json are generated in 4chan's real JSON format by code here
(no recorded files). It honours If-Modified-Since with 304, can 404 a thread, answer 503 a few times,
answer slowly, and serve broken images (truncated JPEG, zero bytes, HTML with 200, 404), an animated GIF
and a .webm. Every request is logged with a timestamp from `clock` (pass a fake clock's `now` to check
rate limiting without waiting).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np
from PIL import Image

PER_PAGE = 15
T0 = 1_700_000_000  # unix time of the first generated post


class FakeClock:
    """Time that only moves when someone sleeps; records every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@dataclass
class Logged:
    t: float
    path: str
    status: int
    if_modified_since: str | None


@dataclass
class File:
    status: int
    body: bytes
    content_type: str = "image/jpeg"


@dataclass
class FakeFourChan:
    board: str = "biz"
    clock: Callable[[], float] = time.monotonic
    threads: dict[int, list[dict]] = field(default_factory=dict)  # thread no -> posts, OP first
    archived: list[int] = field(default_factory=list)  # thread numbers listed by archive.json, oldest first
    gone: set[int] = field(default_factory=set)  # listed in the catalog, but the thread JSON 404s
    files: dict[str, File] = field(default_factory=dict)  # "/biz/123.jpg" -> response
    catalog_bumps: dict[int, int] = field(default_factory=dict)  # thread no -> catalog-only last_modified
    fail: dict[str, int] = field(default_factory=dict)  # path -> number of 503 answers still to give
    delay: dict[str, float] = field(default_factory=dict)  # path -> seconds to wait before answering
    log: list[Logged] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---- lifecycle ----
    def __enter__(self) -> FakeFourChan:
        self._server = serve(_handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    # ---- content ----
    def add_thread(self, posts: list[dict], archived: bool = False) -> int:
        no = posts[0]["no"]
        if archived:
            posts[0].update(archived=1, archived_on=posts[-1]["time"] + 3600, closed=1)
            self.archived.append(no)
        self.threads[no] = posts
        self._count(no)
        return no

    def add_reply(self, thread_no: int, post: dict) -> None:
        with self._lock:
            self.threads[thread_no].append(post)
            self._count(thread_no)

    def add_file(self, post: dict, body: bytes, ext: str = ".jpg", status: int = 200,
                 content_type: str = "image/jpeg", md5_of: bytes | None = None) -> dict:
        """Attach a file to `post` (4chan fields) served as `body`; md5 is of `md5_of` (default: body)."""
        tim = post["no"] * 1000 + 123
        width, height = _size(md5_of if md5_of is not None else body)
        post.update(tim=tim, ext=ext, filename=f"file{post['no']}", fsize=len(body),
                    md5=base64.b64encode(hashlib.md5(md5_of if md5_of is not None else body).digest()).decode(),
                    w=width, h=height, tn_w=min(width, 125), tn_h=min(height, 125))
        self.files[f"/{self.board}/{tim}{ext}"] = File(status, body, content_type)
        return post

    def last_modified(self, no: int) -> int:
        return max(p["time"] for p in self.threads[no])

    def _count(self, no: int) -> None:
        op, replies = self.threads[no][0], self.threads[no][1:]
        op.update(replies=len(replies), images=sum(1 for p in replies if "tim" in p))

    def requests(self, pattern: str = "") -> list[Logged]:
        with self._lock:
            return [r for r in self.log if pattern in r.path]

    # ---- responses ----
    def respond(self, path: str, ims: str | None) -> tuple[int, bytes, str, int | None]:
        """(status, body, content type, last-modified unix time or None)."""
        b = re.escape(self.board)
        if path == f"/{self.board}/catalog.json":
            live = self._live()
            return self._json(self._catalog(live), max((self._catalog_lm(n) for n in live), default=T0), ims)
        if path == f"/{self.board}/threads.json":
            live = self._live()
            pages = [{"page": i // PER_PAGE + 1, "threads": [
                {"no": n, "last_modified": self._catalog_lm(n), "replies": self.threads[n][0]["replies"]}
                for n in live[i:i + PER_PAGE]]} for i in range(0, len(live), PER_PAGE)]
            return self._json(pages, max((self._catalog_lm(n) for n in live), default=T0), ims)
        if path == f"/{self.board}/archive.json":
            return self._json(self.archived, max((self.last_modified(n) for n in self.archived), default=T0), ims)
        match = re.fullmatch(rf"/{b}/thread/(\d+)\.json", path)
        if match:
            no = int(match.group(1))
            if no in self.gone or no not in self.threads:
                return 404, b"404 Not Found", "text/html", None
            return self._json({"posts": self.threads[no]}, self.last_modified(no), ims)
        if path in self.files:
            f = self.files[path]
            return f.status, f.body, f.content_type, None
        return 404, b"404 Not Found", "text/html", None

    def _live(self) -> list[int]:
        """Live threads in bump order (newest activity first), like the catalog."""
        live = [n for n in self.threads if n not in self.archived]
        return sorted(live, key=self._catalog_lm, reverse=True)

    def _catalog_lm(self, no: int) -> int:
        return max(self.last_modified(no), self.catalog_bumps.get(no, 0))

    def _catalog(self, live: list[int]) -> list[dict]:
        pages = []
        for i in range(0, len(live), PER_PAGE):
            threads = []
            for n in live[i:i + PER_PAGE]:
                op = dict(self.threads[n][0], last_modified=self._catalog_lm(n))
                op["last_replies"] = self.threads[n][1:][-5:]
                threads.append(op)
            pages.append({"page": i // PER_PAGE + 1, "threads": threads})
        return pages

    @staticmethod
    def _json(data: object, modified: int, ims: str | None) -> tuple[int, bytes, str, int | None]:
        if ims:
            try:
                if parsedate_to_datetime(ims).timestamp() >= modified:
                    return 304, b"", "application/json", modified
            except (TypeError, ValueError):
                pass
        return 200, json.dumps(data).encode(), "application/json", modified


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up on a kept-alive connection (as httpx does after an unread body) is normal."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """`handler` served on 127.0.0.1 (a free port) from a daemon thread: the fake 4chan's and the fake archive's."""
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    # a short poll keeps shutdown() quick (it waits for the loop to notice)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _handler(fake: FakeFourChan) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            arrived = fake.clock()
            path = self.path.split("?", 1)[0]
            ims = self.headers.get("If-Modified-Since")
            with fake._lock:
                failing = fake.fail.get(path, 0) > 0
                if failing:
                    fake.fail[path] -= 1
                status, body, ctype, modified = (503, b"busy", "text/plain", None) if failing else \
                    fake.respond(path, ims)
                fake.log.append(Logged(arrived, path, status, ims))
            if path in fake.delay:
                time.sleep(fake.delay[path])
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if modified is not None:
                self.send_header("Last-Modified", formatdate(modified, usegmt=True))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # keep test output clean

    return Handler


# ---- generated content ----

def post(no: int, resto: int = 0, com: str = "", sub: str | None = None, at: int | None = None) -> dict:
    """One post in 4chan's JSON format (file fields are added by FakeFourChan.add_file)."""
    t = at if at is not None else T0 + no
    p: dict = {"no": no, "now": time.strftime("%m/%d/%y(%a)%H:%M:%S", time.gmtime(t)), "name": "Anonymous",
               "time": t, "resto": resto}
    if com:
        p["com"] = com
    if sub is not None:
        p["sub"] = sub
    if not resto:
        p.update(bumplimit=0, imagelimit=0, semantic_url=f"thread-{no}", unique_ips=3)
    return p


def jpeg(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (64, 48)) -> bytes:
    return _encode(Image.new("RGB", size, color), "JPEG")


def png(color: tuple[int, int, int] = (30, 200, 30), size: tuple[int, int] = (40, 40)) -> bytes:
    return _encode(Image.new("RGB", size, color), "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("P", (32, 32), i * 40) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def webm() -> bytes:
    """A real three-frame VP8 webm whose first frame is red."""
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for color in ((200, 20, 20), (20, 200, 20), (20, 20, 200)):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), color, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def _encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def _size(body: bytes) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(body)) as img:
            return img.size
    except Exception:  # the broken files of the scenarios have no readable size; 4chan would list one
        return 640, 480


def biz_scenario(fake: FakeFourChan) -> None:
    """The standard test board: every kind of post and image outcome, with known expected results."""
    op = fake.add_file(post(1001, com='<span class="quote">&gt;be me</span><br>BTC to 100k<wbr>k?',
                            sub="Bitcoin &amp; friends"), jpeg())
    good = jpeg((10, 10, 200))
    fake.add_thread([
        op,
        fake.add_file(post(1002, 1001, '<a href="#p1001" class="quotelink">&gt;&gt;1001</a><br>wagmi'),
                      png(), ".png", content_type="image/png"),
        post(1003, 1001, "text only, no image"),
        fake.add_file(post(1004, 1001), jpeg((0, 0, 0))),  # image only, no text
        fake.add_file(post(1005, 1001, "truncated jpeg"), good[: len(good) // 2], md5_of=good),
        fake.add_file(post(1006, 1001, "zero bytes"), b"", md5_of=good),
        fake.add_file(post(1007, 1001, "html instead of image"), b"<!DOCTYPE html><html>cloudflare</html>",
                      content_type="text/html", md5_of=good),
        fake.add_file(post(1008, 1001, "deleted file"), b"404", status=404, md5_of=good),
        fake.add_file(post(1009, 1001, "animated gif"), animated_gif(), ".gif", content_type="image/gif"),
        fake.add_file(post(1010, 1001, "a webm"), webm(), ".webm", content_type="video/webm"),
    ])
    fake.add_thread([
        fake.add_file(post(2001, com="ETH thread<br>&quot;ultrasound&quot; money", sub="/eth/"), png((9, 9, 9)),
                      ".png", content_type="image/png"),
        fake.add_file(post(2002, 2001, "it&#039;s over"), jpeg((90, 90, 90))),
        post(2003, 2001, '<a href="/g/thread/55#p56" class="quotelink">&gt;&gt;&gt;/g/56</a> see'),
        post(2004, 2001, "<s>rugpull</s> soon<br><span class=\"deadlink\">&gt;&gt;999</span>"),
    ])
    fake.add_thread([post(3001, com="pruned before we get there", sub="gone")])
    fake.gone.add(3001)
    fake.add_thread([
        fake.add_file(post(4001, com="archived thread", sub="old", at=T0 - 10_000), jpeg((1, 2, 3))),
        post(4002, 4001, "archived reply", at=T0 - 9_000),
    ], archived=True)


def big_board(fake: FakeFourChan, threads: int, replies: int, first_no: int = 100_000) -> None:
    """Many text-and-image threads (files are not served), for benchmarks."""
    no = first_no
    for t in range(threads):
        op_no = no
        posts = [post(op_no, com=f"thread {t}<br><span class=\"quote\">&gt;greentext line</span>", sub=f"t{t}")]
        for r in range(replies):
            no += 1
            p = post(no, op_no, f'<a href="#p{op_no}" class="quotelink">&gt;&gt;{op_no}</a><br>reply {r} to'
                     f" thread {t}, it&#039;s <s>so</s> over<wbr>ing &amp; https://exam<wbr>ple.com")
            if r % 3 == 0:
                p.update(tim=no * 1000, ext=".jpg", md5="AAAAAAAAAAAAAAAAAAAAAA==", w=640, h=480, fsize=12345)
            posts.append(p)
        no += 1
        posts[0].update(tim=op_no * 1000, ext=".png", md5="AAAAAAAAAAAAAAAAAAAAAA==", w=800, h=600)
        fake.add_thread(posts)
