"""bench/faults.py's RunPod case from issue 19:
  pod cancel, create in flight  `train --pod` killed (-9) while RunPod makes its pod and the answer is held back,
                                then `jobs cancel`: the pod is found by its name and terminated; nothing bills
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bizsent.core.demo.model import build_tiny_qwen
from fakes.pod_run import pod_rig
from fault_tools import finish, row

NAME = "inflight"


def pod_cancel_create_in_flight(tmp: Path) -> dict:
    model = build_tiny_qwen(tmp / "model" / "tiny-qwen")
    with pod_rig(tmp / "pod-cancel", model) as rig:
        fake = rig.fake
        fake.create_answer_delay_s = 600.0
        proc = rig.popen("train", "--pod", "--yes", "--name", NAME, "--max-steps", "3")
        deadline = time.monotonic() + 240
        while not any(p.name.endswith(NAME) for p in list(fake.pods.values())) and time.monotonic() < deadline:
            time.sleep(0.05)
        made = len(fake.pods)
        proc.kill()
        finish(proc)
        fake.create_answer_delay_s = 0.0
        code, said = finish(rig.popen("jobs", "cancel", "1"))
        billing = len(fake.billing_now())
        with sqlite3.connect(rig.settings.db_path) as conn:
            state, usd = conn.execute("SELECT state, total_usd FROM pods").fetchone()
    return row("pod cancel, in flight", f"{made} pod made, cancel exit {code}, row {state} (${usd:.4f}),"
               f" {billing} billing: {said.strip()[-40:]}", billing=billing + (code != 0) + (made != 1))
