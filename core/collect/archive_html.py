"""Reading a /biz/ archive mirror's HTML pages (warosu's Fuuka shape) into posts.

Parsed with Python's own `html.parser` (maintained with CPython, tolerant of the unquoted attributes warosu
writes, no new dependency). The shape, as warosu serves it (and as gallery-dl's warosu extractor reads it):
every post is an element with `id=pNNN` (the OP a `div`, each reply a `td class=reply` in its own table), in
order; inside it `span class=filetitle` (subject), `span class=posttime title=MILLISECONDS`, an optional
`<span> File: 55 KB, 640x480, name.jpg</span>` followed by a link to the full image, and the comment in a
`blockquote`. A search (listing) page links each thread as `/BOARD/thread/NNN`.

A page that has none of this is not silently empty: `LayoutError` says so in one line, because a mirror that
changed its markup would otherwise "succeed" at storing nothing for hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

from bizsent.core.collect.html_text import clean_text
from bizsent.core.errors import BizsentError
from bizsent.core.store.records import ImageRef, NewPost

POST_ID = re.compile(r"^p(\d+)$")
FILE_INFO = re.compile(r"(\d+)x(\d+)")
IMAGE_EXT = re.compile(r"\.(jpe?g|png|gif|webm|mp4)$", re.IGNORECASE)
VOID = {"br", "wbr", "img", "input", "hr", "meta", "link"}


class LayoutError(BizsentError):
    """The archive's page is not in the shape this reader knows."""


@dataclass
class _Post:
    no: int
    subject: str = ""
    time: int | None = None
    html: list[str] = field(default_factory=list)
    image: str | None = None
    size: tuple[int, int] | None = None
    saw_time: bool = False
    saw_comment: bool = False


class _ThreadReader(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=False)  # the comment's markup is kept raw and cleaned by clean_text
        self.base_url = base_url
        self.posts: list[_Post] = []
        self._quote_depth = 0  # inside a blockquote (nested ones count)
        self._in: str | None = None  # "subject" | "file" while inside that span
        self._file_text: list[str] = []
        self._want_image = False

    @property
    def _post(self) -> _Post | None:
        return self.posts[-1] if self.posts else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        match = POST_ID.match(a.get("id", ""))
        if match and tag in ("div", "td", "article"):
            self.posts.append(_Post(int(match.group(1))))
            return
        post = self._post
        if post is None:
            return
        if self._quote_depth:
            self._quote_depth += tag == "blockquote"
            post.html.append(self.get_starttag_text() or "")
        elif tag == "blockquote":
            self._quote_depth, post.saw_comment = 1, True
        elif tag == "span":
            self._span_start(post, a)
        elif tag == "a" and self._want_image and IMAGE_EXT.search(a.get("href", "")):
            post.image, self._want_image = urljoin(self.base_url, a["href"]), False

    def _span_start(self, post: _Post, a: dict[str, str]) -> None:
        classes = a.get("class", "").split()
        if "filetitle" in classes:
            self._in = "subject"
        elif "posttime" in classes:
            post.saw_time = True
            if a.get("title", "").isdigit():
                post.time = int(a["title"]) // 1000  # milliseconds on the page
        elif not classes:
            self._in, self._file_text = "file", []

    def handle_endtag(self, tag: str) -> None:
        post = self._post
        if post is None:
            return
        if self._quote_depth:
            self._quote_depth -= tag == "blockquote"
            if self._quote_depth:
                post.html.append(f"</{tag}>")
        elif tag == "span" and self._in == "file":
            text = "".join(self._file_text)
            if text.strip().startswith("File:"):
                self._want_image = True
                size = FILE_INFO.search(text)
                post.size = (int(size.group(1)), int(size.group(2))) if size else None
            self._in = None
        elif tag == "span":
            self._in = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._quote_depth and self._post is not None:
            self._post.html.append(self.get_starttag_text() or "")
        elif tag not in VOID:
            self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        post = self._post
        if post is None:
            return
        if self._quote_depth:
            post.html.append(data)
        elif self._in == "subject":
            post.subject += data
        elif self._in == "file":
            self._file_text.append(data)

    def handle_entityref(self, name: str) -> None:
        self.handle_data(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.handle_data(f"&#{name};")


def thread_posts(page: str, *, board: str, url: str) -> list[NewPost]:
    """The posts of one archived thread page, OP first, as records for save_posts (source 'archive')."""
    reader = _ThreadReader(url)
    reader.feed(page)
    reader.close()
    posts = reader.posts
    if not posts or not all(p.saw_time and p.saw_comment for p in posts):
        raise LayoutError(f"archive page {url} is not in the layout bizsent reads (no posts with a time and a "
                          "comment where warosu puts them); the mirror may have changed, nothing from it was "
                          "stored; check archive.base_url")
    thread_no = posts[0].no
    return [NewPost(
        board=board, thread_no=thread_no, post_no=p.no, is_op=i == 0, time=p.time, source="archive",
        subject=clean_text(p.subject), html="".join(p.html).strip(), text=clean_text("".join(p.html)),
        image=ImageRef(url=p.image, width=p.size[0] if p.size else None, height=p.size[1] if p.size else None)
        if p.image else None,
    ) for i, p in enumerate(posts)]


def listed_threads(page: str, board: str) -> list[int]:
    """The thread numbers a listing (search) page links to, in page order, each once."""
    seen: dict[int, None] = {}
    for no in re.findall(rf"/{re.escape(board)}/thread/(\d+)", page):
        seen.setdefault(int(no), None)
    return list(seen)
