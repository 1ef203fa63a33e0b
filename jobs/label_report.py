"""What a labeling run shows and reports: the progress snapshot (the same numbers its job row holds), the
final report, and the notices about requests that may have been paid twice. Live runs and batch jobs share them."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bizsent.core.label import ledger


@dataclass(slots=True)
class Snapshot:
    """What progress displays show: the same numbers the job row holds."""

    total: int
    done: int = 0
    failed: int = 0
    usd: float = 0.0
    estimate_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    interrupted: int = 0
    retries: int = 0
    maybe_paid: int = 0  # requests of this run that got no answer after sending (timed out, connection lost)

    def rate_per_min(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.done + self.failed) / elapsed * 60 if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate_per_min()
        left = self.total - self.done - self.failed
        return left / rate * 60 if rate > 0 else None

    def counts(self, mode: str) -> dict[str, Any]:
        return {"mode": mode, "usd": round(self.usd, 6), "estimate_usd": round(self.estimate_usd, 6),
                "rate_per_min": round(self.rate_per_min(), 2), "eta_s": self.eta_s(),
                "skipped": dict(self.skipped), "errors": dict(self.errors), "interrupted": self.interrupted,
                "retries": self.retries, "maybe_paid": self.maybe_paid}


@dataclass(slots=True)
class Report:
    job_id: int
    state: str
    snapshot: Snapshot
    interrupted: list[ledger.Interrupted]
    error: str | None = None
    unknown_fate: list[ledger.Interrupted] = field(default_factory=list)  # this run's maybe-paid requests

    def summary(self) -> str:
        s = self.snapshot
        parts = [f"job {self.job_id} {self.state}: labeled {s.done}, failed {s.failed}, of {s.total}",
                 f"spent ${s.usd:.4f} (estimate ${s.estimate_usd:.4f})"]
        if s.skipped:
            parts.append("skipped " + ", ".join(f"{n} {r}" for r, n in sorted(s.skipped.items())))
        if s.errors:
            parts.append("errors " + ", ".join(f"{n} {r}" for r, n in s.errors.most_common(5)))
        line = "; ".join(parts)
        if self.interrupted:
            line += "\n" + interrupted_notice(self.interrupted)
        if self.unknown_fate:
            line += "\n" + unknown_fate_notice(self.unknown_fate)
        if self.error:
            line += f"\nstopped: {self.error}"
        return line


def interrupted_notice(interrupted: list[ledger.Interrupted]) -> str:
    posts = ", ".join(str(i.post_id) for i in interrupted)
    return (f"{len(interrupted)} request(s) were in flight when an earlier run stopped; they are resent and"
            f" may have been paid twice (posts {posts})")


def unknown_fate_notice(lost: list[ledger.Interrupted]) -> str:
    posts = ", ".join(sorted({str(i.post_id) for i in lost}, key=int)[:20])
    return (f"maybe paid: {len(lost)} request(s) got no answer after they were sent (timed out or connection"
            f" lost); the server may have billed them, and they were sent again (posts {posts});"
            " `bizsent costs` counts them")
