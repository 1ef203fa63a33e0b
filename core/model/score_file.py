"""Scores as JSON lines: how a pod hands its predictions to the laptop (jobs.pod_work writes them, the laptop's
pod tasks read them back into the store). The embedding travels packed (core.model.pool.pack_embedding), 128 bytes
a post instead of the 7B's 3584 floats."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path

from bizsent.core.errors import BizsentError
from bizsent.core.model.pool import pack_embedding
from bizsent.core.model.scoring import Scored


def append_scores(path: Path, scored: Iterable[Scored]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for s in scored:
            packed = pack_embedding(s.embedding) if s.embedding is not None else None
            fh.write(json.dumps({"post_id": s.post_id, "label": s.label, "probs": s.probs,
                                 "latency_ms": s.latency_ms, "label_mass": s.label_mass,
                                 "embedding": base64.b64encode(packed).decode() if packed else None}) + "\n")


def read_scores(path: Path) -> list[Scored]:
    """The scores of `path`; the embedding stays packed (bytes), as the store keeps it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BizsentError(f"the pod's scores {path} cannot be read ({exc.strerror}); run the job again") from None
    out = []
    for line in lines:
        row = json.loads(line)
        packed = base64.b64decode(row["embedding"]) if row.get("embedding") else None
        out.append(Scored(row["post_id"], row["label"], row["probs"], row["latency_ms"], packed, row["label_mass"]))
    return out
