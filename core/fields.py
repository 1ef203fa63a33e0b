"""Loosely typed import values (CSV cells, JSON values, old database columns) into typed ones.

Every parser raises ValueError with a short reason; the importer turns it into a problem line for that row.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_int(value: object, name: str) -> int | None:
    """A whole number, or None for a blank value."""
    if blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if re.fullmatch(r"[+-]?\d+\.0*", text):
            return int(float(text))
    raise ValueError(f"{name} {value!r} is not a whole number")


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
            return int(float(value))
        except ValueError:
            raise ValueError(f"{name} {value!r} is not a time") from None
    return parse_int(value, name)
