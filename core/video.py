"""The first frame of a webm/mp4 post, with whatever decoder happens to be installed.

bizsent does not depend on a video decoder: PyAV (`pip install av`), OpenCV (`cv2`) or an `ffmpeg` binary
on PATH are used when present; otherwise videos are recorded as unsupported with the reason.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

VIDEO_EXTS = {".webm", ".mp4"}
NO_DECODER = "video: no decoder installed (install PyAV with `pip install av`, or put ffmpeg on PATH)"


def is_video(url: str) -> bool:
    return Path(url.split("?", 1)[0]).suffix.lower() in VIDEO_EXTS


def decoder() -> str | None:
    """Name of the first usable decoder: 'av', 'cv2' or 'ffmpeg'; None when nothing can read video."""
    for module in ("av", "cv2"):
        if importlib.util.find_spec(module) is not None:
            return module
    return "ffmpeg" if shutil.which("ffmpeg") else None


def first_frame(data: bytes, suffix: str) -> tuple[Image.Image | None, str]:
    """(first frame as RGB, "") or (None, why it could not be read)."""
    name = decoder()
    if name is None:
        return None, NO_DECODER
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # mp4 may keep its index at the end of the file, so decoders get a seekable file, not a pipe.
            path = Path(tmp) / f"clip{suffix}"
            path.write_bytes(data)
            frame = {"av": _with_av, "cv2": _with_cv2, "ffmpeg": _with_ffmpeg}[name](path)
    except Exception as exc:  # decoders raise their own error types on bad input
        return None, f"video: {name} could not read a frame ({type(exc).__name__}: {exc})"
    if frame is None:
        return None, f"video: {name} found no frame"
    return frame.convert("RGB"), ""


def _with_av(path: Path) -> Image.Image | None:
    av = importlib.import_module("av")
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    return None


def _with_cv2(path: Path) -> Image.Image | None:
    cv2 = importlib.import_module("cv2")
    capture = cv2.VideoCapture(str(path))
    try:
        ok, bgr = capture.read()
    finally:
        capture.release()
    return Image.fromarray(bgr[:, :, ::-1]) if ok else None


def _with_ffmpeg(path: Path) -> Image.Image | None:
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"],
        capture_output=True, timeout=60, check=True,
    )
    return Image.open(io.BytesIO(out.stdout)) if out.stdout else None
