"""A small store for the console's tests: posts with Pillow-made images, one corrupt image, labels, notes."""

from __future__ import annotations

import io
from pathlib import Path

import sqlite_utils
from bizsent.core.collect.images import Cached, cache_image, record
from bizsent.core.store.posts import save_posts, set_label
from bizsent.core.store.records import ImageRef, NewLabel, NewPost
from PIL import Image

BASE_TIME = 1_700_000_000


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def build_store(db: sqlite_utils.Database, image_dir: Path, n_posts: int = 12) -> dict[int, int]:
    """Posts 1..n (post_no -> id). Every post has an image; post_no 2's is corrupt, post_no 3 is 'moon'.

    Odd post_nos carry an openai label (bullish), post_no 4 a gemini bearish label in train.
    """
    posts = []
    for no in range(1, n_posts + 1):
        text = f"post number {no}\n>be me\n>>{no + 100}\nbuy the dip"
        if no == 3:
            text = "wagmi to the moon"
        posts.append(NewPost(board="biz", thread_no=1, post_no=no, text=text, time=BASE_TIME + no, source="live",
                             image=ImageRef(url=f"http://img.test/{no}.png")))
    save_posts(db, posts)
    ids = {no: db.execute("SELECT id FROM posts WHERE post_no = ?", [no]).fetchone()[0] for no in range(1, n_posts + 1)}
    for no, pid in ids.items():
        image_id = db.execute("SELECT image_id FROM posts WHERE id = ?", [pid]).fetchone()[0]
        if no == 2:
            result = Cached(status="corrupt", reason="truncated or corrupt image (test)")
        else:
            result = cache_image(image_dir, png(((no * 40) % 256, (no * 90) % 256, 120)), thumbnail_px=64)
        record(db, image_id, result)
        if no % 2:
            set_label(db, pid, NewLabel(label="bullish", source="api", split="unassigned", labeler="openai:gpt-test",
                                        confidence=0.9))
    set_label(db, ids[4], NewLabel(label="bearish", source="api", split="train", labeler="gemini:flash-test"))
    return ids


async def until(pilot, condition, timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds; workers and timers need real event-loop turns."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached in time")


def toasts(app) -> list[str]:
    """The notifications as drawn on the current screen (what the user sees, not the app's internal list)."""
    return [str(toast.render()) for toast in app.screen.query("Toast")]
