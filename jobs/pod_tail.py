"""`bizsent pods tail RUN`: a run's pod log (RunPod's log stream, resumed across drops) interleaved with the metric
events the run's job stores, until the run ends. Reads only: the job that runs the pod writes everything."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.log import redact
from bizsent.core.pods import api, records
from bizsent.core.pods.views import recent_log

SHOWN_BEFORE = 5  # metric events already stored when the tail starts: the newest few, for context


def metric_line(kind: str, step: int | None, loss: float | None, accuracy: float | None, macro_f1: float | None,
                data: dict) -> str:
    if kind == "train":
        speed = f" ({data['samples_per_s']:.1f} samples/s)" if data.get("samples_per_s") else ""
        return f"metric: step {step} loss {loss:.4f}{speed}" if loss is not None else f"metric: step {step}"
    return (f"metric: eval ({data.get('split', '?')}) at step {step}: accuracy {accuracy or 0:.3f},"
            f" macro-F1 {macro_f1 or 0:.3f}")


def _pod_row(db: sqlite_utils.Database, run_name: str) -> records.PodRow:
    rows = list(db.query("SELECT * FROM pods WHERE run_name = ? AND pod_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                         [run_name]))
    if not rows:
        raise BizsentError(f"no pod ran run {run_name!r}; see `bizsent pods list` or `bizsent jobs --kind pod`")
    return records.PodRow.from_row(rows[0])


def _run(db: sqlite_utils.Database, run_name: str) -> tuple[int | None, str]:
    row = db.execute("SELECT id, state FROM runs WHERE name = ? AND kind = 'train' ORDER BY id DESC LIMIT 1",
                     [run_name]).fetchone()
    return (row[0], row[1]) if row else (None, "unknown")


def _new_metrics(db: sqlite_utils.Database, run_id: int | None, after: int) -> tuple[list[str], int]:
    if run_id is None:
        return [], after
    got = db.execute("SELECT id, kind, step, loss, accuracy, macro_f1, data FROM metrics WHERE run_id = ? AND id > ?"
                     " ORDER BY id", [run_id, after]).fetchall()
    lines = [metric_line(k, s, lo, a, f, json.loads(d or "{}")) for _, k, s, lo, a, f, d in got]
    return lines, got[-1][0] if got else after


def _pump(settings: Settings, pod_id: str, out: queue.Queue, stop: threading.Event) -> None:
    try:
        with api.client(settings) as client:
            for line in client.follow_logs(pod_id, tail=50, until=stop.is_set):
                out.put(redact(f"[{line.source}] {line.line}"))
    except BizsentError as exc:
        out.put(f"(log stream ended: {exc})")


def follow(db: sqlite_utils.Database, settings: Settings, run_name: str, *, poll_s: float = 0.5) -> Iterator[str]:
    """Lines to print until the run's pod is gone or stopped and its run has ended."""
    pod = _pod_row(db, run_name)
    assert pod.pod_id is not None
    run_id, state = _run(db, run_name)
    newest = [r[0] for r in db.execute("SELECT id FROM metrics WHERE run_id = ? ORDER BY id DESC LIMIT ?",
                                       [run_id, SHOWN_BEFORE])]
    lines, after = _new_metrics(db, run_id, min(newest) - 1 if newest else 0)
    yield from lines
    if pod.state not in records.LIVE:
        yield from recent_log(settings, run_name, 20)
        yield f"pod {pod.pod_id} is {pod.state}; run {run_name} is {state}"
        return
    lines_in: queue.Queue = queue.Queue()
    stop = threading.Event()
    pump = threading.Thread(target=_pump, args=(settings, pod.pod_id, lines_in, stop), daemon=True)
    pump.start()
    try:
        while True:
            while not lines_in.empty():
                yield lines_in.get()
            lines, after = _new_metrics(db, run_id, after)
            yield from lines
            run_id, state = _run(db, run_name)
            if not pump.is_alive() and lines_in.empty():
                break
            time.sleep(poll_s)
    finally:
        stop.set()
    yield f"pod {pod.pod_id}: log stream ended; run {run_name} is {state}"
