"""The laptop's brake: the process that watches a training pod (jobs.pod_watch) enforces runpod.max_hours,
max_dollars and idle_timeout_min itself, from the pod's age and price it already knows and the cost it reads,
beside the pod's own watchdog (core/pods/agent/watchdog.py applies the same three rules on the pod). Either
alone stops billing: the watchdog when the laptop is gone, the laptop when the watchdog is broken (its stop
call refused, its thread dead, its agent crash-looping). A watchdog that reports a stop it could not make
(`/health`, read by core.pods.channel) makes the laptop stop the pod at once.

The laptop terminates rather than stops: it is there, so nothing on the pod's volume is worth keeping (a rerun
starts a new pod), and a stopped volume would go on billing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError


class BrakeApplied(BizsentError):
    """The laptop stopped a pod at a cap, or because its watchdog could not: the line says which."""


def epoch_of(stamp: str | None, default: float) -> float:
    """A stored ISO time as seconds since the epoch (a naive one is UTC); `default` when there is none."""
    if not stamp:
        return default
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return default
    return (then if then.tzinfo else then.replace(tzinfo=UTC)).timestamp()


@dataclass(slots=True)
class LaptopBrake:
    """The caps of one watched pod. `billed_since` is when its row was written, just before the create call:
    RunPod bills from the create, so the laptop counts from a moment no later than RunPod does."""

    max_hours: float
    max_dollars: float
    idle_s: float
    usd_per_hour: float
    billed_since: float  # time.time()
    progress_at: float = field(default_factory=time.monotonic)
    seen: Any = None

    @classmethod
    def of(cls, settings: Settings, usd_per_hour: float, created_at: str | None) -> LaptopBrake:
        conf = settings.runpod
        return cls(conf.max_hours, conf.max_dollars, conf.idle_timeout_min * 60, usd_per_hour,
                   epoch_of(created_at, time.time()))

    def saw(self, signature: Any, mono: float | None = None) -> None:
        """What the pod showed this poll (state, step, events, log): a change counts as progress."""
        if signature != self.seen:
            self.seen, self.progress_at = signature, time.monotonic() if mono is None else mono

    def usd(self, read_usd: float, now: float | None = None) -> float:
        """The pod's cost so far: the larger of what RunPod last said and its age x its price."""
        hours = ((time.time() if now is None else now) - self.billed_since) / 3600
        return max(read_usd, hours * self.usd_per_hour)

    def reason(self, read_usd: float, *, now: float | None = None, mono: float | None = None) -> str | None:
        """Why the pod must stop now, or None."""
        now = time.time() if now is None else now
        mono = time.monotonic() if mono is None else mono
        hours = (now - self.billed_since) / 3600
        usd = self.usd(read_usd, now)
        if hours >= self.max_hours:
            return f"it ran {hours:.2f} h, past runpod.max_hours ({self.max_hours:g} h)"
        if usd >= self.max_dollars:
            return f"it cost ${usd:.4f}, past runpod.max_dollars (${self.max_dollars:g})"
        if mono - self.progress_at >= self.idle_s:
            return f"no progress for {self.idle_s / 60:g} min (runpod.idle_timeout_min)"
        return None


def stop_failure(health: dict[str, Any]) -> str | None:
    """The watchdog's report of a stop it could not make, from the agent's /health body, or None: the agent says
    `"watchdog": {"action": ..., "reason": ..., "done": false, "failed": "<why>"}`; read defensively, any non-empty
    stop-failure field, in the watchdog's object or beside it."""
    fired = health.get("watchdog")
    if isinstance(fired, dict) and fired.get("failed"):
        return f"{fired.get('action', 'stop')} failed: {fired['failed']}"
    places = [fired] if isinstance(fired, dict) else []
    places.append(health)
    for place in places:
        for key in ("stop_failed", "stop_error", "action_failed"):
            value = place.get(key)
            if value:
                return value if isinstance(value, str) else str(value)
    return None
