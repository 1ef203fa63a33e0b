"""Inputs for `bizsent predict --file`: posts that are not in the store, as a JSONL file of {text, image_path}
lines (image paths relative to the file's folder) or one image with its text given on the command line.
Bad input is a one-line BizsentError naming the file and line, before any model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from bizsent.core.errors import BizsentError
from bizsent.core.model.chat_format import input_text
from bizsent.core.model.scoring import ScoreInput
from PIL import Image, UnidentifiedImageError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def _check_image(path: Path, where: str) -> str:
    try:
        with Image.open(path) as img:
            img.verify()
    except FileNotFoundError:
        raise BizsentError(f"{where}: image {path} does not exist; fix image_path") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise BizsentError(f"{where}: {path} is not a readable image ({exc}); use a JPEG, PNG, GIF or WebP") from None
    return str(path)


def read_jsonl(path: Path) -> list[ScoreInput]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BizsentError(f"{where} is not JSON ({exc.msg}); write one {{\"text\", \"image_path\"}} object a line"
                               ) from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row.get("image_path"):
            raise BizsentError(f"{where} needs a string \"text\" and an \"image_path\"")
        image = Path(row["image_path"]).expanduser()
        image = image if image.is_absolute() else path.parent / image
        try:
            text = input_text(row["text"])
        except BizsentError as exc:
            raise BizsentError(f"{where}: {exc}") from None
        items.append(ScoreInput(None, text, _check_image(image, where), str(row.get("subject") or "")))
    if not items:
        raise BizsentError(f"{path} holds no posts; write one {{\"text\", \"image_path\"}} object a line")
    return items


def inputs_from_file(path: Path, text: str | None = None) -> list[ScoreInput]:
    """The posts in a JSONL file, or the single image at `path` with `text` (required for an image)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise BizsentError(f"{path} does not exist; pass a JSONL file of {{text, image_path}} lines or an image")
    if path.suffix.lower() in JSONL_SUFFIXES:
        if text is not None:
            raise BizsentError("--text goes with a single image; in a JSONL file each line carries its own text")
        return read_jsonl(path)
    if text is None:
        raise BizsentError(f"{path} is an image: pass its post text with --text")
    return [ScoreInput(None, input_text(text), _check_image(path, str(path)))]
