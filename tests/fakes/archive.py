"""A fake /biz/ archive mirror in warosu's page shape on 127.0.0.1, for tests and the backfill.

Page shapes (thread pages and the search listing) follow warosu as gallery-dl's extractor reads it (mikf/gallery-dl
`gallery_dl/extractor/warosu.py`): unquoted attributes, each post an element with `id=pNNN` (OP a div, replies
`td class=reply` in their own tables), `span class=filetitle`, `span class=posttime title=MILLISECONDS`,
`<span> File: 55 KB, 640x480, name.jpg</span><br><a href=IMAGE>`, the comment in `<blockquote>`. The search URL
(`?task=search2&search_op=op&search_datefrom=…&search_dateto=…&offset=N`, N counting results) and the number of
results per page are a guess from Fuuka's search form, unconfirmed. It can answer 404 for a thread, serve a thread
in a redesigned layout (what a mirror's update does), fail a path with 503 a few times, and log every request
with its time.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from fakes.fourchan import Logged, jpeg, serve

PAGE_SIZE = 2  # results per search page: small, so the tests page through a day


@dataclass
class FakeArchive:
    board: str = "biz"
    clock: Callable[[], float] = time.monotonic
    threads: dict[int, list[dict]] = field(default_factory=dict)  # OP no -> posts {no, time, com, sub?, image?}
    missing: set[int] = field(default_factory=set)  # listed, but the thread page is 404
    redesigned: set[int] = field(default_factory=set)  # served in a layout the reader does not know
    files: dict[str, bytes] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)  # path -> 503 answers still to give
    delay: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    log: list[Logged] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeArchive:
        self._server = serve(_handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def add_thread(self, op_no: int, at: datetime, replies: int = 2, with_images: bool = True) -> list[dict]:
        """A thread started at `at` with `replies` replies a minute apart; the OP and every other reply carry an
        image (served as a small JPEG; every second one is linked by a path relative to the mirror)."""
        t0 = int(at.timestamp())
        posts = [{"no": op_no + k, "time": t0 + 60 * k, "com": f"post {op_no + k} about link &amp; eth<br>second line",
                  "sub": f"thread {op_no}" if k == 0 else None} for k in range(replies + 1)]
        for k, p in enumerate(posts):
            if with_images and k % 2 == 0:
                path = f"/data/{self.board}/img/{p['no']}123.jpg"
                self.files[path] = jpeg((p["no"] % 255, 40, 90))
                p["image"] = f"{{base}}{path}" if k % 4 == 0 else path  # {base}: the mirror's absolute URL
        self.threads[op_no] = posts
        return posts

    def requests(self, pattern: str = "") -> list[Logged]:
        with self._lock:
            return [r for r in self.log if pattern in r.path]

    def respond(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, str]:
        b = self.board
        if path == f"/{b}/" and query.get("task") == ["search2"]:
            return 200, self._listing(query).encode(), "text/html; charset=utf-8"
        if path.startswith(f"/{b}/thread/"):
            no = int(path.rsplit("/", 1)[1]) if path.rsplit("/", 1)[1].isdigit() else -1
            if no in self.missing or no not in self.threads:
                return 404, b"<html><body><h1>404 - Not Found</h1></body></html>", "text/html"
            page = _redesigned(self.threads[no]) if no in self.redesigned else self._thread(no)
            return 200, page.encode(), "text/html; charset=utf-8"
        if path in self.files:
            return 200, self.files[path], "image/jpeg"
        return 404, b"not found", "text/html"

    def _listing(self, query: dict[str, list[str]]) -> str:
        day = query["search_datefrom"][0]
        offset = int(query.get("offset", ["0"])[0])
        ops = sorted(no for no, posts in self.threads.items()
                     if datetime.fromtimestamp(posts[0]["time"], UTC).date().isoformat() == day)
        shown = ops[offset:offset + PAGE_SIZE]
        body = "".join(f"<table><tr><td class=reply id=p{no}>{self._post_html(self.threads[no][0], no)}</td></tr>"
                       "</table>" for no in shown)
        return f"<!DOCTYPE html><html><head><title>/{self.board}/ - Search</title></head><body>" \
               f"<div class=content>{body or '<h2>No results.</h2>'}</div></body></html>"

    def _thread(self, no: int) -> str:
        op, *replies = self.threads[no]
        parts = [f"<div id=p{no} class=thread>{self._post_html(op, no)}"]
        parts += [f"<table><tr><td class=doubledash>&gt;&gt;</td><td class=reply id=p{r['no']}>"
                  f"{self._post_html(r, no)}</td></tr></table>" for r in replies]
        return (f"<!DOCTYPE html><html><head><title>/{self.board}/ - Business &amp; Finance</title></head><body>"
                f"<form><div class=content>{''.join(parts)}</div></div></form></body></html>")

    def _post_html(self, p: dict, thread: int) -> str:
        shown = datetime.fromtimestamp(p["time"], UTC).strftime("%a %b %d %H:%M:%S %Y")
        file = ""
        if p.get("image"):
            href = p["image"].replace("{base}", self.url)
            file = (f"<span> File: 12 KB, 64x48, image{p['no']}.jpg</span><br>"
                    f"<a href={href}><img src={href.replace('/img/', '/thumb/')} class=thumb></a>")
        subject = f"<span class=filetitle>{html.escape(p['sub'])}</span> " if p.get("sub") else ""
        return (f"{file}<label><input type=checkbox name=delete value={p['no']}>{subject}"
                f"<span class=postername>Anonymous</span> <span class=posttime title={p['time']}000>{shown}</span>"
                f"</label> <a class=js href=/{self.board}/thread/{thread}#p{p['no']}>No.{p['no']}</a>"
                f"<blockquote><p>{p['com']}</p></blockquote>")


def _redesigned(posts: list[dict]) -> str:
    """The same thread after a redesign: new markup, none of the old classes or ids."""
    items = "".join(f'<article class="post" data-post="{p["no"]}"><time datetime="{p["time"]}"></time>'
                    f'<div class="post-body">{p["com"]}</div></article>' for p in posts)
    return f"<!DOCTYPE html><html><body><main>{items}</main></body></html>"


def _handler(fake: FakeArchive) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            arrived = fake.clock()
            parts = urlsplit(self.path)
            with fake._lock:
                failing = fake.fail.get(parts.path, 0) > 0
                if failing:
                    fake.fail[parts.path] -= 1
                status, body, ctype = (503, b"busy", "text/plain") if failing else \
                    fake.respond(parts.path, parse_qs(parts.query))
                fake.log.append(Logged(arrived, self.path, status, None))
            if parts.path in fake.delay:
                time.sleep(fake.delay[parts.path])
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler
