"""The words written on an image, read offline by OCR (rapidocr-onnxruntime: its ONNX detection and recognition
models ship inside the wheel from PyPI, so nothing is downloaded at first use; checked by running it with the
network unshared).

It is the optional extra `ocr` (`pip install -e .[ocr]`; scripts/setup installs it): rapidocr-onnxruntime 1.4.4
supports Python 3.6-3.12 only, so on 3.13 the feature is absent and `missing()` says so in one line. On a 2-core
CPU it reads one 384x288 demo image in about 1-3 s, which is why a job does it in the background
(jobs.read_images), never the console or the scraper.

Its PP-OCRv4 model was trained mostly on Chinese and often drops the spaces between English words ("Position
liquidated" reads "Positionliquidated"): search therefore compares text with whitespace removed
(`core.store.image_text.squash`).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGE = "rapidocr-onnxruntime"
MIN_SCORE = 0.5  # recognitions the model itself doubts (mostly texture read as letters) are left out


@cache
def missing() -> str | None:
    """Why images cannot be read here (one line), or None when they can (asked once: installs do not change
    under a running process)."""
    try:
        version(PACKAGE)
    except PackageNotFoundError:
        return (f"image text (OCR) needs the optional {PACKAGE} package: `pip install -e .[ocr]` "
                "(Python 3.11-3.12; it has no release for 3.13)")
    return None


def engine_name() -> str:
    """What read the text, stored with it: another engine's text is read again."""
    return f"{PACKAGE} {version(PACKAGE)}"


@cache
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


def read_text(path: str) -> str:
    """The text on the image at `path`, one line per text box, top to bottom (empty when none is found)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    result, _ = _engine()(pixels)
    boxes = [(box, text) for box, text, score in (result or []) if float(score) >= MIN_SCORE and text.strip()]
    boxes.sort(key=lambda found: (min(y for _, y in found[0]), min(x for x, _ in found[0])))
    return "\n".join(text.strip() for _, text in boxes)
