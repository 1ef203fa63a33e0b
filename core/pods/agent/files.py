"""Files on the pod's volume: confinement to the run folder, checksums, safe untar, and JSON-lines reading."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from .config import Refused


def confined(root: Path, relative: str) -> Path:
    """`root/relative`, refused unless it stays inside `root` once resolved (no absolute, '..' or symlink out)."""
    parts = relative.split("/")
    if relative.startswith("/") or "\\" in relative or any(p in ("", ".", "..") for p in parts):
        raise Refused(400, f"path {relative!r} is not a plain path inside the run folder")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise Refused(404, f"{relative!r} is outside the run folder")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def safe_extract(archive: Path, dest: Path) -> None:
    """Untar regular files and folders only, each inside `dest`: an absolute name, a '..' or a link refuses all."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            if not (m.isfile() or m.isdir()) or m.name.startswith("/") or "\\" in m.name or ".." in m.name.split("/"):
                raise tarfile.TarError(f"{archive.name} holds {m.name!r}, a link or a path outside its folder")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # Python before 3.11.4: the check above is the whole guard
            tar.extractall(dest, members=members)


def complete_lines(path: Path) -> list[bytes]:
    """The file's lines up to its last newline: a line still being written is not read half."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines()


def parsed(lines: list[bytes]) -> list[dict]:
    """The events among `lines`; a line that is not a JSON object (a writer killed mid-line) is skipped."""
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
