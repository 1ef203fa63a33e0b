"""The pod's last brake: a thread that stops or terminates the pod through the RunPod API with the pod-scoped key
RunPod puts in the pod's environment, so a pod whose laptop went away still ends (docs/pods.md, "Inside the pod")."""

from __future__ import annotations

import json
import time
import traceback
import urllib.error
import urllib.request

from .config import Api, Config, State, say
from .job import run_dir

ACTION_RANK = {"stop": 1, "terminate": 2}
USER_AGENT = "bizsent-agent/1"
TRIES = 3


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


def pod_action(api: Api, action: str, *, tries: int = TRIES, pause_s: float = 2.0) -> str | None:
    """Ask RunPod to stop or terminate this pod; None once it took the call, else why not (one line), after
    `tries` tries. Every try names its User-Agent: Cloudflare in front of RunPod refuses urllib's default (403,
    error code 1010)."""
    if not (api.pod_id and api.pod_key):
        return "RUNPOD_POD_ID or RUNPOD_API_KEY is not set"
    why = ""
    for attempt in range(1, tries + 1):
        request = urllib.request.Request(
            f"{api.api_base}/v2/pods/{api.pod_id}/action", data=json.dumps({"action": action}).encode(),
            method="POST", headers={"Authorization": f"Bearer {api.pod_key}", "Content-Type": "application/json",
                                    "User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=30):
                return None
        except urllib.error.HTTPError as exc:
            body = exc.read(300).decode("utf-8", "replace").strip().splitlines()
            why = f"HTTP {exc.code}" + (f": {body[0][:120]}" if body else "")
        except (urllib.error.URLError, OSError) as exc:
            why = f"{type(exc).__name__} reaching {api.api_base}"
        say(f"watchdog: {action} failed ({why}), try {attempt} of {tries}")
        if attempt < tries:
            time.sleep(pause_s * attempt)
    return f"{why} ({tries} tries)"


def status(state: State) -> dict | None:
    """The watchdog's part of /health: what it decided, whether RunPod took the call, and if not, why (the laptop
    then stops the pod itself)."""
    if state.failed_call and state.wanted:  # also an escalation (terminate after a stop) that failed
        return {"action": state.wanted[0], "reason": state.wanted[1], "done": False, "failed": state.failed_call}
    if state.fired:
        return {"action": state.fired[0], "reason": state.fired[1], "done": True, "failed": None}
    return None


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
        if decision is None and state.fired is None:  # a rule that held no longer does (progress came back)
            state.wanted = state.failed_call = None
        # Only ever escalate: a stop that took effect ends this process; a later collect may still terminate.
        if decision is None or (state.fired and ACTION_RANK[state.fired[0]] >= ACTION_RANK[decision[0]]):
            return sizes
    say(f"watchdog: {decision[0]} the pod: {decision[1]}")
    failed = pod_action(cfg.api, decision[0])
    with state.lock:
        state.wanted, state.failed_call = decision, failed
        if failed is None:
            state.fired = decision
    return sizes
