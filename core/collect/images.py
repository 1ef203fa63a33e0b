"""The content-addressed image cache: validate bytes, keep the first frame, write file and thumbnail.

Files live at <image_dir>/<sha[:2]>/<sha>.<ext> with a thumbnail at <image_dir>/thumbs/<sha[:2]>/<sha>.jpg,
so the same picture posted twice (or under two URLs) is stored once.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlite_utils
from bizsent.core.store import now
from PIL import Image, UnidentifiedImageError

STILL_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}
# Perceptual hash: a 64-bit difference hash (dHash) of the image as 9x8 grey pixels. A re-saved, recompressed or
# slightly resized copy lands within a few bits; unrelated pictures differ in about half of them.
PHASH_MIN_RANGE = 8  # grey levels; a flatter 9x8 image has no structure to hash (its bits would be noise)
# Second look at a perceptual-hash match (CopyCheck): at most this share of pixels may differ by more than this
# many grey levels. Measured on the demo's pictures: JPEG quality 70, a 2 px resize or a half-size JPEG copy
# differ in under 0.03% of pixels; look-alike templates (a wojak moved a few px, other caption) in over 0.5%.
COPY_CHECK_SIDE = 384
COPY_CHECK_LEVELS = 80
COPY_CHECK_SHARE = 0.002


@dataclass(frozen=True, slots=True)
class Cached:
    status: str  # ok | corrupt | unsupported | missing
    reason: str = ""
    sha256: str | None = None
    path: str | None = None
    thumb_path: str | None = None
    width: int | None = None
    height: int | None = None
    mime: str | None = None
    phash: str | None = None  # perceptual_hash as hex; "" when the image is too flat to have one


def perceptual_hash(image: Image.Image) -> int | None:
    """64-bit dHash: is each of the 8x8 grey pixels brighter than its right-hand neighbour. None for a (nearly)
    flat image, whose hash would say nothing about what it shows."""
    grey = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    if int(grey.max()) - int(grey.min()) < PHASH_MIN_RANGE:
        return None
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int(sum(1 << k for k, bit in enumerate(bits) if bit))


def _grey(path: Path | str, size: tuple[int, int] | None = None) -> np.ndarray:
    with Image.open(path) as img:
        img.seek(0)
        frame = img.convert("L")
    if size is None:
        scale = min(1.0, COPY_CHECK_SIDE / max(frame.width, frame.height))
        size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
    return np.asarray(frame.resize(size, Image.Resampling.BILINEAR) if frame.size != size else frame, dtype=np.int16)


class CopyCheck:
    """Is an image the same picture as a reference one (re-saved, recompressed, resized), and not merely a look-
    alike (a meme template with another caption, a screenshot of the same app with other numbers)? A perceptual
    hash cannot tell those apart at 64 bits; this compares the pixels of the two at up to COPY_CHECK_SIDE px."""

    def __init__(self) -> None:
        self._refs: dict[str, np.ndarray] = {}

    def same_picture(self, reference: Path | str, other: Path | str) -> bool:
        key = str(reference)
        if key not in self._refs:
            self._refs[key] = _grey(reference)
        ref = self._refs[key]
        candidate = _grey(other, (ref.shape[1], ref.shape[0]))
        return float((np.abs(ref - candidate) > COPY_CHECK_LEVELS).mean()) <= COPY_CHECK_SHARE


def phash_hex(value: int | None) -> str:
    return "" if value is None else f"{value:016x}"


def phash_file(path: Path | str) -> int | None:
    """The perceptual hash of the image file's first frame. Raises OSError/ValueError if unreadable."""
    with Image.open(path) as img:
        img.seek(0)
        return perceptual_hash(img.convert("RGB"))


def inspect_bytes(data: bytes) -> tuple[Image.Image | None, str]:
    """Decode `data` fully; return (first frame as RGB, "") or (None, reason it is unusable)."""
    if not data:
        return None, "empty download (0 bytes)"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"{")):
        return None, "server sent a web page or JSON instead of an image"
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in STILL_FORMATS:
                return None, f"unsupported image format {img.format}"
            img.seek(0)  # animated GIF/WebP: the first frame stands for the post
            img.load()
            frame = img.convert("RGB")
    except UnidentifiedImageError:
        return None, "not a readable image"
    except (OSError, SyntaxError, ValueError) as exc:
        return None, f"truncated or corrupt image ({exc})"
    return frame, ""


def md5_matches(data: bytes, md5: str) -> bool:
    """4chan publishes base64 MD5s; other sources (imports) may use hex."""
    digest = hashlib.md5(data).digest()
    given = md5.strip()
    return given == base64.b64encode(digest).decode() or given.lower() == digest.hex()


def cache_image(image_dir: Path, data: bytes, thumbnail_px: int = 320, md5: str | None = None) -> Cached:
    """Validate and store `data` content-addressed with a JPEG thumbnail. Never raises on bad bytes.

    With `md5` (the checksum the source published), a download that decodes but differs is refused too.
    """
    frame, reason = inspect_bytes(data)
    if frame is None:
        return Cached(status="corrupt", reason=reason)
    if md5 and not md5_matches(data, md5):
        return Cached(status="corrupt", reason="checksum differs from the source's md5 (truncated or altered)")
    with Image.open(io.BytesIO(data)) as probe:
        ext = STILL_FORMATS[probe.format]
        mime = Image.MIME.get(probe.format, "application/octet-stream")
    return store_frame(image_dir, data, frame, ext, mime, thumbnail_px)


def store_frame(image_dir: Path, data: bytes, frame: Image.Image, ext: str, mime: str, thumbnail_px: int) -> Cached:
    """Write original bytes and a thumbnail of `frame` under the content address of `data`."""
    sha = hashlib.sha256(data).hexdigest()
    path = image_dir / sha[:2] / f"{sha}.{ext}"
    thumb = image_dir / "thumbs" / sha[:2] / f"{sha}.jpg"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    if not thumb.exists():
        thumb.parent.mkdir(parents=True, exist_ok=True)
        small = frame.copy()
        small.thumbnail((thumbnail_px, thumbnail_px))
        tmp = thumb.with_suffix(".part")
        small.save(tmp, "JPEG", quality=85)
        tmp.replace(thumb)
    return Cached(status="ok", sha256=sha, path=str(path), thumb_path=str(thumb), width=frame.width,
                  height=frame.height, mime=mime, phash=phash_hex(perceptual_hash(frame)))


def record(db: sqlite_utils.Database, image_id: int, result: Cached) -> None:
    """Write the outcome of one fetch attempt to the images row."""
    stamp = now()
    db.execute(
        "UPDATE images SET status = ?, reason = ?, sha256 = coalesce(?, sha256), path = coalesce(?, path),"
        " thumb_path = coalesce(?, thumb_path), width = coalesce(?, width), height = coalesce(?, height),"
        " mime = coalesce(?, mime), phash = coalesce(?, phash), attempts = attempts + 1, last_attempt_at = ?,"
        " fetched_at = CASE WHEN ? = 'ok' THEN ? ELSE fetched_at END WHERE id = ?",
        [result.status, result.reason or None, result.sha256, result.path, result.thumb_path, result.width,
         result.height, result.mime, result.phash, stamp, result.status, stamp, image_id],
    )


def fit_to_budget(width: int, height: int, max_pixels: int, min_side: int = 1) -> tuple[int, int]:
    """The size an image is downscaled to so it holds at most `max_pixels` (aspect kept; never upscaled)."""
    if width * height <= max_pixels:
        return width, height
    scale = (max_pixels / (width * height)) ** 0.5
    return max(min_side, int(width * scale)), max(min_side, int(height * scale))


def downscaled(path: Path | str, max_pixels: int, min_side: int = 1) -> Image.Image:
    """The image at `path` (first frame) as RGB within the pixel budget. Raises OSError/ValueError if unreadable."""
    with Image.open(path) as img:
        img.seek(0)
        frame = img.convert("RGB")
    size = fit_to_budget(frame.width, frame.height, max_pixels, min_side)
    return frame if size == frame.size else frame.resize(size, Image.Resampling.BICUBIC)


def image_jpeg(path: Path | str, max_pixels: int) -> bytes:
    """The image within the pixel budget as JPEG bytes: what an API labeler is sent."""
    out = io.BytesIO()
    downscaled(path, max_pixels).save(out, "JPEG", quality=85)
    return out.getvalue()



# What core.dataset's bundle export writes (its save_model_image): the frame within the budget, at least one 28 px patch
# a side, as a JPEG of this quality. Scoring applies the same to original images (model_image).
MODEL_MIN_SIDE = 28
MODEL_JPEG_QUALITY = 90


def model_image(path: Path | str, max_pixels: int) -> Image.Image:
    """The image as the model sees it in a bundle: downscaled to the budget and JPEG-encoded at the bundle's
    quality, so a post scored from the store, the pool or `predict --file` gets the same pixels as in training."""
    out = io.BytesIO()
    downscaled(path, max_pixels, MODEL_MIN_SIDE).save(out, "JPEG", quality=MODEL_JPEG_QUALITY)
    out.seek(0)
    with Image.open(out) as img:
        return img.convert("RGB")
