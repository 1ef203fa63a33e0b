"""The pod's last brake: a thread that stops or terminates the pod through the RunPod API with the pod-scoped key
RunPod puts in the pod's environment, so a pod whose laptop went away still ends (README, "Inside the pod")."""

from __future__ import annotations

import json
import time
import traceback
import urllib.error
import urllib.request

from .config import Config, State, say
from .job import run_dir

ACTION_RANK = {"stop": 1, "terminate": 2}


def decide(cfg: Config, state: State, now: float, mono: float) -> tuple[str, str] | None:
    """What the watchdog does now, if anything: (action, reason)."""
    hours = (now - cfg.billed_since) / 3600
    if state.collected:
        return "terminate", "the adapter was collected"
    if state.ended_at is not None and mono - state.ended_at >= cfg.grace_s:
        # Stop, not terminate: the volume keeps the adapter (or the log of a failure) for a later collect.
        return "stop", f"training ended {cfg.grace_s / 60:g} min ago and the adapter was not collected"
    if hours >= cfg.max_hours:
        return "stop", f"the pod ran {cfg.max_hours:g} h (max_hours)"
    if hours * cfg.usd_per_hour >= cfg.max_usd:
        return "stop", f"the pod cost ${cfg.max_usd:g} at ${cfg.usd_per_hour:g}/h (max_dollars)"
    if state.ended_at is None and mono - state.progress_at >= cfg.idle_s:
        return "stop", f"no progress for {cfg.idle_s / 60:g} min (idle_timeout_min)"
    return None


def pod_action(cfg: Config, action: str) -> bool:
    if not (cfg.pod_id and cfg.pod_key):
        say(f"watchdog: cannot {action} the pod: RUNPOD_POD_ID or RUNPOD_API_KEY is not set")
        return False
    request = urllib.request.Request(
        f"{cfg.api_base}/v2/pods/{cfg.pod_id}/action", data=json.dumps({"action": action}).encode(), method="POST",
        headers={"Authorization": f"Bearer {cfg.pod_key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30):
            return True
    except urllib.error.HTTPError as exc:
        say(f"watchdog: {action} refused by the RunPod API (HTTP {exc.code}); trying again")
    except (urllib.error.URLError, OSError) as exc:
        say(f"watchdog: {action} did not reach the RunPod API ({type(exc).__name__}); trying again")
    return False


def watchdog(cfg: Config, state: State) -> None:
    sizes: tuple[int, ...] = ()
    while True:
        time.sleep(cfg.tick_s)
        try:
            sizes = watch_once(cfg, state, sizes)
        except Exception:  # the watchdog is the pod's last brake: it must outlive any one bad tick
            traceback.print_exc()


def watch_once(cfg: Config, state: State, seen: tuple[int, ...]) -> tuple[int, ...]:
    """One tick: growth of the log or the events counts as progress; then the first rule of `decide` that holds
    acts. Returns the file sizes seen."""
    with state.lock:
        files = [cfg.workdir / "train.log"] + ([run_dir(cfg, state.job) / "events.jsonl"] if state.job else [])
    sizes = tuple(p.stat().st_size if p.exists() else -1 for p in files)
    with state.lock:
        if sizes != seen:
            state.progress_at = time.monotonic()
        decision = decide(cfg, state, time.time(), time.monotonic())
        # Only ever escalate: a stop that took effect ends this process; a later collect may still terminate.
        if decision is None or (state.fired and ACTION_RANK[state.fired[0]] >= ACTION_RANK[decision[0]]):
            return sizes
    say(f"watchdog: {decision[0]} the pod: {decision[1]}")
    if pod_action(cfg, decision[0]):
        with state.lock:
            state.fired = decision
    return sizes
