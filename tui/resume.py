"""Where the user left the console, so reopening returns there: the screen, and on each screen its row (the
post, job, run or pod under the cursor). Kept in a small JSON file beside the database (one per database: the
demo's and the real one do not mix); a missing or unreadable file means a fresh start, never an error."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def state_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".console.json")


@dataclass
class Resume:
    """`mode`: the screen shown last; `at`: each screen's row, by mode (a post id, a job id, a pod id...)."""

    mode: str | None = None
    at: dict[str, Any] = field(default_factory=dict)


def load(db_path: Path) -> Resume:
    try:
        data = json.loads(state_path(db_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Resume()
    if not isinstance(data, dict) or not isinstance(data.get("at", {}), dict):
        return Resume()
    mode = data.get("mode")
    return Resume(mode if isinstance(mode, str) else None, dict(data.get("at", {})))


def save(db_path: Path, resume: Resume) -> None:
    """Written whole to a temporary file, then moved over the old one: a kill mid-write leaves the old state."""
    path = state_path(db_path)
    if not path.parent.exists():
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"mode": resume.mode, "at": resume.at}), encoding="utf-8")
    os.replace(tmp, path)
