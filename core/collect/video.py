"""The first frame of a webm/mp4 post, decoded with PyAV (FFmpeg bundled in its wheel).

/biz/ posts a fair share of webms; their first frame stands for the post like a GIF's does.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
from PIL import Image

VIDEO_EXTS = {".webm", ".mp4"}


def is_video(url: str) -> bool:
    return Path(url.split("?", 1)[0]).suffix.lower() in VIDEO_EXTS


def first_frame(data: bytes) -> tuple[Image.Image | None, str, str]:
    """(first frame as RGB, "ok", "") or (None, "corrupt" | "unsupported", why it could not be read)."""
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                return None, "unsupported", "video: the file has no video stream"
            for frame in container.decode(video=0):
                return frame.to_image().convert("RGB"), "ok", ""
    except av.error.DecoderNotFoundError as exc:
        return None, "unsupported", f"video: no decoder for this codec in PyAV's FFmpeg ({exc})"
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        return None, "corrupt", f"video: not a readable webm/mp4 ({type(exc).__name__})"
    return None, "corrupt", "video: no frame could be decoded"
