"""Small labeled-post databases for the labeling tests and bench: real save_posts + the real image cache."""

from __future__ import annotations

import io
import random
from pathlib import Path

import sqlite_utils
from bizsent.core.collect.images import cache_image, record
from bizsent.core.config import Settings, load_settings
from bizsent.core.store import open_db
from bizsent.core.store.posts import post_id, save_posts, set_label
from bizsent.core.store.records import ImageRef, NewLabel, NewPost
from PIL import Image

TEXTS = ("we're so back, wagmi", "it's over, I'm rekt", "anyone know a good wallet?", "ape in, {n} to the moon",
         "ngmi, sold the bottom again", ">/smg/ links thread {n}", "crab market, thoughts?")


def png(seed: int, size: tuple[int, int] = (96, 64)) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    img.putpixel((seed % size[0], 0), (255, 255, 255))  # every image distinct
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def make_posts(db: sqlite_utils.Database, image_dir: Path, n: int, *, corrupt: int = 0, human_test: int = 0,
               human_train: int = 0, start: int = 1000) -> list[int]:
    """`n` posts with text and a cached image (the first `corrupt` with a broken one); returns post ids."""
    posts = [NewPost(board="biz", thread_no=start + i, post_no=start + i, text=TEXTS[i % len(TEXTS)].format(n=i),
                     image=ImageRef(url=f"test://{start + i}.png")) for i in range(n)]
    save_posts(db, posts)
    ids = []
    for i, post in enumerate(posts):
        pid = post_id(db, "biz", post.post_no)
        image_id = db.execute("SELECT image_id FROM posts WHERE id = ?", [pid]).fetchone()[0]
        data = png(start + i)[:40] if i < corrupt else png(start + i)
        record(db, image_id, cache_image(image_dir, data))
        ids.append(pid)
    labels = ("bullish", "bearish", "neutral")
    for i, pid in enumerate(ids[corrupt:corrupt + human_test]):
        set_label(db, pid, NewLabel(label=labels[i % 3], source="human", split="test", labeler="anon"))
    for i, pid in enumerate(ids[corrupt + human_test:corrupt + human_test + human_train]):
        set_label(db, pid, NewLabel(label=labels[i % 3], source="human", split="train", labeler="anon"))
    return ids


# Prices are per model: the fake servers' model names need a [prices] table like any real model.
FAKE_PRICES = ('[prices."gpt-fake"]\ninput_per_mtok = 0.25\noutput_per_mtok = 2.0\n'
               '[prices."gemini-fake"]\ninput_per_mtok = 0.30\noutput_per_mtok = 2.50\n'
               '[prices."qwen-fake"]\ninput_per_mtok = 0.0\noutput_per_mtok = 0.0\nbatch_discount = 1.0\n')
# The start of a test config.toml. No image-text (OCR) job: the console would start one for the test's images.
FAKE_CONFIG = FAKE_PRICES + '[data]\ndir = "data"\n[images]\nread_text = false\n'


def gemini_store(tmp_path: Path, url: str, extra: str = "") -> tuple[Settings, sqlite_utils.Database]:
    """A config labeling with the fake Gemini at `url` (`extra`: more [labeling.gemini] lines) and its store."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(FAKE_CONFIG + f'[labeling]\nmax_retries = 2\n[labeling.gemini]\nbase_url = "{url}"\n'
                   f'model = "gemini-fake"\nrequests_per_minute = 60000\n{extra}', encoding="utf-8")
    settings = load_settings(cfg, environ={})
    return settings, open_db(settings.db_path)
