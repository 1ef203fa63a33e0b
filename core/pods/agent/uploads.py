"""Resumable, checksummed uploads: each chunk is checked against its sha256 and appended at the offset the agent
has, and the whole file is checked before it counts as uploaded."""

from __future__ import annotations

import hashlib
import hmac
import os
import time

from .config import Config, Refused, State
from .files import file_sha256
from .job import read_job


def upload_status(cfg: Config, state: State, name: str) -> dict:
    folder = cfg.workdir / "uploads"
    record, final, part = folder / f"{name}.sha256", folder / name, folder / f"{name}.part"
    if record.exists() and final.exists():
        return {"bytes": final.stat().st_size, "chunks": state.chunks[name], "done": True, "sha256": record.read_text()}
    return {"bytes": part.stat().st_size if part.exists() else 0, "chunks": state.chunks[name], "done": False,
            "sha256": None}


def put_chunk(cfg: Config, state: State, name: str, offset: int, body: bytes, claimed: str) -> dict:
    if state.phase != "waiting-upload":
        raise Refused(409, "training has started; uploads are closed")
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), claimed.strip().lower()):
        raise Refused(400, "chunk checksum mismatch (X-Chunk-Sha256); send the chunk again")
    with state.uploading:
        status = upload_status(cfg, state, name)
        if status["done"]:
            raise Refused(409, f"{name} is already complete", **status)
        if offset != status["bytes"]:
            raise Refused(409, f"{name} continues at byte {status['bytes']}, not {offset}", bytes=status["bytes"])
        with (cfg.workdir / "uploads" / f"{name}.part").open("ab") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        with state.lock:
            state.chunks[name] += 1
            state.progress_at = time.monotonic()
    return {"bytes": offset + len(body)}


def finish_upload(cfg: Config, state: State, name: str, claimed: object) -> dict:
    folder = cfg.workdir / "uploads"
    with state.uploading:
        status = upload_status(cfg, state, name)
        if status["done"]:
            if status["sha256"] != claimed:
                raise Refused(409, f"{name} is already complete with another checksum", **status)
            return status
        part = folder / f"{name}.part"
        if not isinstance(claimed, str) or not part.exists() or file_sha256(part) != claimed.lower():
            part.unlink(missing_ok=True)  # a bad whole file has no good prefix to resume from
            state.chunks[name] = 0
            raise Refused(400, f"{name} does not match the sha256 given; upload it again from byte 0", bytes=0)
        try:
            if name == "job.json":
                read_job(part)
        except Refused:
            part.unlink()
            raise
        part.replace(folder / name)
        (folder / f"{name}.sha256").write_text(claimed.lower(), encoding="utf-8")
        return upload_status(cfg, state, name)
