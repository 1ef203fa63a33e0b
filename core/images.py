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

import sqlite_utils
from PIL import Image, UnidentifiedImageError

from core.store import now

STILL_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}


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
                  height=frame.height, mime=mime)


def record(db: sqlite_utils.Database, image_id: int, result: Cached) -> None:
    """Write the outcome of one fetch attempt to the images row."""
    stamp = now()
    db.execute(
        "UPDATE images SET status = ?, reason = ?, sha256 = coalesce(?, sha256), path = coalesce(?, path),"
        " thumb_path = coalesce(?, thumb_path), width = coalesce(?, width), height = coalesce(?, height),"
        " mime = coalesce(?, mime), attempts = attempts + 1, last_attempt_at = ?,"
        " fetched_at = CASE WHEN ? = 'ok' THEN ? ELSE fetched_at END WHERE id = ?",
        [result.status, result.reason or None, result.sha256, result.path, result.thumb_path, result.width,
         result.height, result.mime, stamp, result.status, stamp, image_id],
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



# What core.dataset's bundle export writes (its _downscale): the frame within the budget, at least one 28 px patch
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
