"""Loosely typed import values (CSV cells, JSON values, old database columns) into typed ones.

Every parser raises ValueError with a short reason; the importer turns it into a problem line for that row.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}
# SQLite stores integers in 64 bits; a bigger one would fail (OverflowError) only when the whole file is written.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The most characters one text field may hold: a /biz/ post is at most 2,000 characters and its HTML a few
# times that; a field of hundreds of megabytes is a broken file, and would be copied into every screen and
# export (images have their own limit, scrape.max_image_mb).
MAX_FIELD_CHARS = 1_000_000


def blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_int(value: object, name: str) -> int | None:
    """A whole number within SQLite's 64-bit range, or None for a blank value."""
    if blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a whole number")
    number = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            number = int(text)
        elif re.fullmatch(r"[+-]?\d+\.0*", text):
            number = int(text.split(".")[0])
    if number is None:
        raise ValueError(f"{name} {_short(value)} is not a whole number")
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"{name} {_short(value)} is too large (at most {INT64_MAX})")
    return number


def _short(value: object) -> str:
    """repr of a cell for a problem line, cut so a huge value does not flood the screen."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_str(value: object, name: str) -> str:
    """Text, "" for a missing value. A number becomes its digits (a spreadsheet may type a post "100" as one);
    a list, object or true/false is a mistake in the file, not text, and is refused rather than stored as repr."""
    if value is None:
        return ""
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            raise ValueError(f"{name} is {len(value):,} characters, more than the {MAX_FIELD_CHARS:,} a field may"
                             " hold")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    kind = {bool: "true/false", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
    raise ValueError(f"{name} must be text, not {kind}")


def parse_float(value: object, name: str, low: float, high: float) -> float | None:
    if blank(value):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not low <= number <= high:
        raise ValueError(f"{name} {number} is outside {low}..{high}")
    return number


def parse_bool(value: object, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name} {value!r} is not true/false (use 1/0)")


def parse_time(value: object, name: str = "time") -> int | None:
    """Unix seconds from a number or an ISO 8601 / 'YYYY-MM-DD HH:MM:SS' string (naive means UTC)."""
    if blank(value):
        return None
    if isinstance(value, str) and not re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", value):
        try:
            stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} {value!r} is neither unix seconds nor an ISO date") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return int(stamp.timestamp())
    if isinstance(value, str | float):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{name} {_short(value)} is not a time") from None
        if not math.isfinite(number):
            raise ValueError(f"{name} {_short(value)} is not a time (not a finite number)")
        return parse_int(int(number), name)
    return parse_int(value, name)
