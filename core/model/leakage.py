"""The leakage guard: does a post share anything with the human test set? By post id, by image (exactly by
sha256, or as a near-copy by perceptual hash: re-saved, recompressed, slightly resized) and by normalised text
(exactly, or as a near duplicate by word-trigram Jaccard). The dataset builder drops the pool posts it names;
few-shot examples for the API prompt pass the same guard (leakage_check). The same rule groups reposts inside
the pool (duplicate_groups), so the train / validation / dev splits never put two copies of a post on both sides.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlite_utils
from bizsent.core.collect.images import CopyCheck, phash_file, phash_hex
from bizsent.core.store import transaction
from bizsent.core.store.posts import CANDIDATE_SQL, HUMAN_TEST

NEAR_DUPLICATE_JACCARD = 0.8
NEAR_DUPLICATE_BITS = 6  # perceptual hashes (64 bits) this close are the same picture


@dataclass(slots=True)
class Candidate:
    post_id: int
    subject: str
    text: str
    image_path: str
    sha256: str
    image_id: int = 0
    phash: int | None = None  # filled by fill_phashes


def normalise_text(text: str) -> str:
    """Lower case, no quote links (>>123), no URLs, words only: what two copies of a post still share."""
    text = re.sub(r">>\d+", " ", text.lower())
    text = re.sub(r"https?://\S+", " ", text)
    return " ".join(re.findall(r"[a-z0-9]+", text))


def _shingles(norm: str) -> set[str]:
    words = norm.split()
    return {" ".join(words[k : k + 3]) for k in range(len(words) - 2)}


MISSING_PHASH = -1  # Candidate.phash: not in the store yet (images cached before migration 6)


def candidates(db: sqlite_utils.Database, image_dir: Path | None) -> dict[int, Candidate]:
    rows = db.execute(
        f"SELECT p.id, p.subject, p.text, i.path, coalesce(i.sha256, ''), i.id, i.phash FROM posts p"
        f" JOIN images i ON i.id = p.image_id WHERE {CANDIDATE_SQL}"
    ).fetchall()
    out = {}
    for pid, subject, text, path, sha, image_id, phash in rows:
        full = Path(path) if Path(path).is_absolute() or image_dir is None else image_dir / path
        out[pid] = Candidate(pid, subject or "", text, str(full), sha, image_id,
                             MISSING_PHASH if phash is None else int(phash, 16) if phash else None)
    return out


def fill_phashes(db: sqlite_utils.Database, posts: list[Candidate]) -> None:
    """Compute the perceptual hashes the store lacks (images cached before it kept them) and keep them there."""
    todo = [p for p in posts if p.phash == MISSING_PHASH]
    found: dict[int, str] = {}
    for post in todo:
        try:
            post.phash = phash_file(post.image_path)
        except (OSError, ValueError):
            post.phash = None  # unreadable: nothing to compare (the bundle export reports the file)
            continue
        found[post.image_id] = phash_hex(post.phash)
    if found:
        try:
            with transaction(db):
                db.conn.executemany("UPDATE images SET phash = ? WHERE id = ?", [(h, i) for i, h in found.items()])
        except sqlite3.OperationalError:  # a read-only store: the hashes are only computed again next time
            pass


class LeakageGuard:
    """Answers "does this post share anything with the test set?" by id, image (sha256, then perceptual hash)
    and (near-)duplicate text. Posts need their phash filled in (fill_phashes) for the near-copy check."""

    def __init__(self, test: list[Candidate]):
        self.ids = {p.post_id for p in test}
        self.shas = {p.sha256 for p in test if p.sha256}
        hashed = [p for p in test if p.phash is not None and p.phash != MISSING_PHASH]
        self.phashes = np.array([p.phash for p in hashed], dtype=np.uint64)
        self.phash_posts = [p.post_id for p in hashed]
        self.paths = {p.post_id: p.image_path for p in hashed}
        self.copies = CopyCheck()
        self.texts = {normalise_text(p.text): p.post_id for p in test}
        self.shingles: dict[int, set[str]] = {}
        self.index: dict[str, set[int]] = defaultdict(set)
        for p in test:
            grams = _shingles(normalise_text(p.text))
            self.shingles[p.post_id] = grams
            for g in grams:
                self.index[g].add(p.post_id)

    def near_image(self, post: Candidate) -> int | None:
        """The test post whose image `post`'s image is a near-copy of, or None: a perceptual hash within
        NEAR_DUPLICATE_BITS, confirmed pixel by pixel (core.images.CopyCheck), nearest hash first."""
        if post.phash is None or post.phash == MISSING_PHASH or not len(self.phashes):
            return None
        distance = np.bitwise_count(self.phashes ^ np.uint64(post.phash))
        for k in np.argsort(distance, kind="stable"):
            if distance[k] > NEAR_DUPLICATE_BITS:
                break
            test = self.phash_posts[k]
            try:
                if self.copies.same_picture(self.paths[test], post.image_path):
                    return test
            except (OSError, ValueError):
                return test  # an unreadable file cannot clear a hash match
        return None

    def reason(self, post: Candidate) -> str | None:
        if post.post_id in self.ids:
            return "test post"
        if post.sha256 and post.sha256 in self.shas:
            return "test image"
        near = self.near_image(post)
        if near is not None:
            return f"near-duplicate image (test post {near})"
        norm = normalise_text(post.text)
        if norm in self.texts:
            return f"test text (post {self.texts[norm]})"
        grams = _shingles(norm)
        shared: Counter[int] = Counter()
        for g in grams:
            shared.update(self.index.get(g, ()))
        for tid, common in shared.items():
            union = len(grams) + len(self.shingles[tid]) - common
            if union and common / union >= NEAR_DUPLICATE_JACCARD:
                return f"near-duplicate of test post {tid}"
        return None


def leakage_check(db: sqlite_utils.Database, image_dir: Path | None = None) -> Callable[[int], str | None]:
    """The leakage guard for posts chosen outside build_dataset (few-shot examples for the API prompt): a function
    from a post id to why that post shares something with the human test set (None: it does not)."""
    posts = candidates(db, image_dir)
    test_ids = {row[0] for row in db.execute(f"SELECT DISTINCT post_id FROM labels WHERE {HUMAN_TEST}")}
    test = [post for pid, post in posts.items() if pid in test_ids]
    fill_phashes(db, test)
    guard = LeakageGuard(test)

    def reason(post_id: int) -> str | None:
        post = posts.get(post_id)
        if post is None:
            return None if post_id not in guard.ids else "test post"
        if len(guard.phashes):
            fill_phashes(db, [post])
        return guard.reason(post)

    return reason


def duplicate_groups(posts: list[Candidate]) -> dict[int, int]:
    """Post id -> its group: the smallest post id of the posts it shares an image or a text with, directly or
    through a chain, by the leakage guard's rule (same sha256, a near-copy image confirmed pixel by pixel, the
    same normalised text or a near-duplicate text). Posts need their phash filled in for the near-copy check."""
    parent = {p.post_id: p.post_id for p in posts}

    def root(pid: int) -> int:
        while parent[pid] != pid:
            parent[pid] = parent[parent[pid]]
            pid = parent[pid]
        return pid

    def join(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[tuple[str, str], int] = {}
    for p in posts:
        for key in (("sha", p.sha256), ("text", normalise_text(p.text))):
            if key[1]:
                join(p.post_id, first.setdefault(key, p.post_id))
    _join_near_texts(posts, join)
    _join_near_images(posts, join)
    return {p.post_id: root(p.post_id) for p in posts}


def _join_near_texts(posts: list[Candidate], join: Callable[[int, int], None]) -> None:
    index: dict[str, set[int]] = defaultdict(set)
    grams_of: dict[int, set[str]] = {}
    for p in posts:
        grams = _shingles(normalise_text(p.text))
        shared: Counter[int] = Counter()
        for g in grams:
            shared.update(index[g])
        for other, common in shared.items():
            union = len(grams) + len(grams_of[other]) - common
            if union and common / union >= NEAR_DUPLICATE_JACCARD:
                join(p.post_id, other)
        grams_of[p.post_id] = grams
        for g in grams:
            index[g].add(p.post_id)


def _join_near_images(posts: list[Candidate], join: Callable[[int, int], None]) -> None:
    hashed = [p for p in posts if p.phash is not None and p.phash != MISSING_PHASH]
    if len(hashed) < 2:
        return
    values = np.array([p.phash for p in hashed], dtype=np.uint64)
    copies = CopyCheck()
    for k, post in enumerate(hashed[:-1]):
        distance = np.bitwise_count(values[k + 1:] ^ values[k])
        for j in np.flatnonzero(distance <= NEAR_DUPLICATE_BITS):
            other = hashed[k + 1 + int(j)]
            if post.sha256 and post.sha256 == other.sha256:
                continue  # already joined by sha256
            try:
                same = copies.same_picture(post.image_path, other.image_path)
            except (OSError, ValueError):
                same = True  # an unreadable file cannot clear a hash match
            if same:
                join(post.post_id, other.post_id)
