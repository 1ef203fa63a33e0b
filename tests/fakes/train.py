"""Fixtures for the training/eval tests: the tiny Qwen2.5-VL (built once per session) and small stores whose
posts carry real cached images, with labels where the image colour says the class (so training can learn it).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlite_utils
from bizsent.core.collect.images import cache_image, record
from bizsent.core.store.posts import post_id, save_posts, set_label
from bizsent.core.store.records import ImageRef, NewLabel, NewPost
from PIL import Image

COLOURS = {"bearish": (220, 30, 30), "neutral": (128, 128, 128), "bullish": (30, 200, 60)}
WORDS = {"bearish": "it is over rekt going to zero", "neutral": "what wallet do you use anon",
         "bullish": "wagmi to the moon buy"}
_BUILT: dict[str, Path] = {}


def image_bytes(label: str, variant: int) -> bytes:
    """A small PNG coloured by class; `variant` shifts one pixel so each post has its own image hash."""
    img = Image.new("RGB", (64 + variant % 5 * 8, 48), COLOURS[label])
    img.putpixel((variant % 40, variant // 40 % 40), (variant % 256, (variant * 7) % 256, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def add_post(db: sqlite_utils.Database, image_dir: Path, post_no: int, text: str, image: bytes | None) -> int:
    ref = ImageRef(url=f"https://i.example/{post_no}.png") if image is not None else None
    save_posts(db, [NewPost(board="biz", thread_no=1, post_no=post_no, text=text, image=ref)])
    pid = post_id(db, "biz", post_no)
    if image is not None:
        image_id = db.execute("SELECT image_id FROM posts WHERE id = ?", [pid]).fetchone()[0]
        record(db, image_id, cache_image(image_dir, image))
    return pid


def seed_store(db: sqlite_utils.Database, image_dir: Path, *, n_train: int = 24, n_test: int = 9,
               n_unlabeled: int = 6) -> dict[str, list[int]]:
    """Posts labelled by two API labelers (train pool), human test posts, and unlabeled posts."""
    labels = list(COLOURS)
    ids: dict[str, list[int]] = {"train": [], "test": [], "unlabeled": []}
    post_no = 1000
    for kind, count in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        for k in range(count):
            post_no += 1
            label = labels[k % 3]
            text = f"{WORDS[label]} post {post_no} number {k} in {kind}"
            pid = add_post(db, image_dir, post_no, text, image_bytes(label, post_no))
            ids[kind].append(pid)
            if kind == "test":
                set_label(db, pid, NewLabel(label=label, source="human", split="test", labeler="human:t",
                                            sarcastic=k % 4 == 0))
            elif kind == "train":
                for provider in ("openai", "gemini"):
                    set_label(db, pid, NewLabel(label=label, source="api", labeler=f"{provider}:m@p1",
                                                confidence=0.9))
    return ids


def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the tiny Qwen2.5-VL once per test session, whichever module asks first."""
    if "model" not in _BUILT:
        from bizsent.core.demo.model import build_tiny_qwen

        _BUILT["model"] = build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))
    return _BUILT["model"]


def tiny_settings(base: Path, model_dir: Path, **train: object):
    """Settings under `base` whose train section points at the tiny model with a tiny pixel budget."""
    from bizsent.core.config import load_settings

    cfg = base / "config.toml"
    cfg.write_text('[data]\ndir = "data"\n', encoding="utf-8")
    overrides = {"train.base_model": str(model_dir), "train.max_pixels": 56 * 56, "train.batch_size": 2,
                 "train.grad_accum": 1, "train.val_fraction": 0.2, "train.learning_rate": 5e-3}
    overrides.update({f"train.{k}": v for k, v in train.items()})
    return load_settings(cfg, overrides=overrides, environ={})


def trained_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One 4-bit QLoRA run of 4 steps on a seeded store, shared by the modules that need a trained adapter."""
    if "run" not in _BUILT:
        from bizsent.core.model.dataset import build_dataset, export_bundle
        from bizsent.core.model.training import train_run
        from bizsent.core.store import open_db

        base = tmp_path_factory.mktemp("trained")
        settings = tiny_settings(base, tiny_model_dir(tmp_path_factory))
        db = open_db(settings.db_path)
        ids = seed_store(db, settings.image_dir)
        bundle = export_bundle(build_dataset(db, settings.image_dir, settings.train), base / "bundle",
                               max_pixels=settings.train.max_pixels)
        run_id, result = train_run(db, settings, bundle=bundle, out_dir=base / "run", name="tiny-qlora",
                                   max_steps=4, load_in_4bit=True, jsonl=base / "events.jsonl",
                                   eval_steps=2)
        db.close()
        _BUILT["run"] = {"settings": settings, "run_id": run_id, "result": result, "bundle": bundle,
                         "ids": ids, "jsonl": base / "events.jsonl"}
    return _BUILT["run"]
