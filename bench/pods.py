"""Benchmark: `bizsent train --pod --yes` as the user waits for it, against the fake RunPod (2 s pod boot) whose pod
runs the real agent, which installs the project wheel and trains the tiny model for a few steps.

Measured from outside, by polling the store and the fake every 50 ms, with the clock started when the CLI process
starts (the plan is confirmed at once with --yes):
  to_first_event_s      process start -> the first metric event in the store (the Eval screen's curve moves)
  to_gone_s             the last metric event in the store -> RunPod says the pod is gone
  billed_s_after_done   seconds the fake billed after the adapter was verified and registered (target < 60)
  gpu_checked           the agent checked the host's driver (nvidia-smi) and the installed torch's CUDA build before
                        training (the run's gpu_check); gpu_cuda: torch really used CUDA (false on this CPU machine,
                        where runpod.require_gpu is off)
The two brakes on the money, each alone, at the production polling (the laptop every runpod.poll_s = 5 s, the
pod's watchdog every 15 s), with max_dollars passed after CAP_S seconds of billing by the fake's meter and
training still going:
  laptop_brake_s        the pod's watchdog disabled: seconds the fake billed after the cap until the laptop's
                        brake (core.pods.brake) had the pod terminated (target <= 60)
  pod_brake_s           the laptop process killed as soon as the pod exists: seconds billed after the cap until
                        the pod's watchdog stopped it (target <= 60)
Run: PYTHONPATH=. .venv/bin/python bench/pods.py   (about three minutes). Last line: JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from bizsent.core.demo.model import build_tiny_qwen  # noqa: E402
from fakes.pod_run import pod_rig  # noqa: E402

MAX_STEPS = 4
POLL_S = 0.05
CAP_S = 40.0  # seconds of billing at which max_dollars is passed
RATE = 0.34  # $/h of the first GPU the fake offers (4090, COMMUNITY)
WATCHDOG_TICK_S = "15"  # the agent's default (BIZSENT_WATCHDOG_S)


def measure(base: Path) -> dict:
    model = build_tiny_qwen(base / "tiny-qwen")
    with pod_rig(base / "laptop", model, boot_delay_s=2.0) as rig:
        fake = rig.fake
        db_path = rig.settings.db_path
        started = time.monotonic()
        proc = rig.popen("train", "--pod", "--yes", "--name", "bench", "--max-steps", str(MAX_STEPS))
        first = last = verified = gone = None
        events, billed_at_verified, pod_id = 0, 0.0, None
        with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as db:
            while gone is None:
                now = time.monotonic() - started
                if pod_id is None:
                    row = db.execute("SELECT pod_id FROM pods WHERE run_name = 'bench' AND pod_id IS NOT NULL"
                                     ).fetchone()
                    pod_id = row[0] if row else None
                count = db.execute("SELECT count(*) FROM metrics").fetchone()[0]
                if count > events:
                    events, last = count, now
                    first = first if first is not None else now
                state = db.execute("SELECT state FROM runs WHERE name = 'bench'").fetchone()
                if verified is None and state and state[0] == "done" and pod_id:
                    verified, billed_at_verified = now, fake.billed_seconds(pod_id)
                if pod_id and pod_id in fake.gone:
                    gone = now
                if proc.poll() is not None and gone is None and pod_id not in fake.gone:
                    raise SystemExit(f"train --pod ended ({proc.returncode}) without the pod gone:\n"
                                     f"{proc.stderr.read()[-2000:] if proc.stderr else ''}")
                time.sleep(POLL_S)
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise SystemExit(f"train --pod failed:\n{err[-2000:]}")
        total = time.monotonic() - started
        billed = fake.billed_seconds(pod_id)
        with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as db:
            params = json.loads(db.execute("SELECT params FROM runs WHERE name = 'bench'").fetchone()[0])
    check = params.get("gpu_check") or {}
    assert first is not None and last is not None and verified is not None
    return {"to_first_event_s": round(first, 2), "to_gone_s": round(gone - last, 2),
            "billed_s_after_done": round(billed - billed_at_verified, 2), "total_s": round(total, 2),
            "billed_s": round(billed, 2), "metric_events": events, "max_steps": MAX_STEPS, "boot_delay_s": 2.0,
            "gpu_checked": bool(check.get("host") and check.get("torch")), "gpu_cuda": bool(check.get("cuda"))}


def measure_brake(base: Path, which: str) -> float:
    """Seconds billed past the cap with only one brake working: `which` is 'laptop' or 'pod'."""
    model = build_tiny_qwen(base / "tiny-qwen")
    cap_usd = round(RATE * CAP_S / 3600, 6)
    os.environ["BIZSENT_TRAIN__EPOCHS"] = "500"  # training is still going when the cap passes
    try:
        with pod_rig(base / which, model, boot_delay_s=2.0, poll_s=5.0, max_dollars=cap_usd) as rig:
            fake = rig.fake
            fake.extra_env["BIZSENT_WATCHDOG_S"] = "1000000" if which == "laptop" else WATCHDOG_TICK_S
            proc = rig.popen("train", "--pod", "--yes", "--name", which)
            pod_id = rig.pod_id(which)
            if which == "pod":
                proc.kill()
            proc.communicate(timeout=600)
            deadline = time.monotonic() + 600
            while pod_id in fake.billing_now():
                if time.monotonic() > deadline:
                    raise SystemExit(f"the {which} brake never stopped pod {pod_id}")
                time.sleep(POLL_S)
            acted = any("watchdog: stop the pod" in line for line in fake.log_lines(pod_id))
            if acted != (which == "pod"):
                raise SystemExit(f"the wrong brake acted on pod {pod_id} (watchdog acted: {acted})")
            return round(fake.billed_seconds(pod_id) - cap_usd * 3600 / RATE, 2)
    finally:
        os.environ.pop("BIZSENT_TRAIN__EPOCHS", None)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pods-") as tmp:
        result = measure(Path(tmp))
        result["laptop_brake_s"] = measure_brake(Path(tmp), "laptop")
        result["pod_brake_s"] = measure_brake(Path(tmp), "pod")
    rows = [("process start -> first metric event in the store", f"{result['to_first_event_s']:.2f} s"),
            ("last metric event -> pod gone (RunPod confirms)", f"{result['to_gone_s']:.2f} s"),
            ("billed after the adapter was verified (target < 60 s)", f"{result['billed_s_after_done']:.2f} s"),
            ("whole command", f"{result['total_s']:.2f} s"),
            ("pod billed in all", f"{result['billed_s']:.2f} s"),
            ("metric events stored", str(result["metric_events"])),
            ("GPU checked before training (driver vs torch build)", str(result["gpu_checked"]).lower()),
            ("torch used CUDA", str(result["gpu_cuda"]).lower()),
            (f"laptop's brake alone: billed past max_dollars (cap at {CAP_S:g} s; target <= 60 s)",
             f"{result['laptop_brake_s']:.2f} s"),
            (f"pod's watchdog alone: billed past max_dollars (cap at {CAP_S:g} s; target <= 60 s)",
             f"{result['pod_brake_s']:.2f} s")]
    width = max(len(r[0]) for r in rows)
    print(f"train --pod against the fake RunPod (boot 2 s, tiny model, {MAX_STEPS} steps)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>10}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
