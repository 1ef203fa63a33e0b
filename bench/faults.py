"""Benchmark: the hostile cases of issue 9 as one table, measured as the user meets them.

Every case runs the real `bizsent` CLI as subprocesses against the fake servers on 127.0.0.1:
  concurrent runs      two `label --limit 80 --yes` 0.3 s apart over 100 posts
  same job twice       `label --job N` started twice at once
  batch + live         `label --batch --limit 20`, `label --limit 20`, `batches collect --wait`
  cap across processes budget_total_usd = 0.025; two runs (two models) whose estimates each fit, together not
  dead server          203 posts against a refused port, a hanging server (request_timeout_s = 3) and a
                       429 insufficient_quota: seconds until the run stops (exit 1, one line naming the cause)
  kill -9 label        300 posts, SIGKILL at 3 random points, then a final run
  kill -9 import       a 20,000-post JSONL import killed at a random point, then imported again
  kill -9 scrape       a scrape of 6 threads (fake 4chan, 1 request/s) killed midway, then run again
Measures: requests the fake server billed twice that the ledger does not mark "maybe paid"
(double_paid_beyond_inflight), dollars over the total cap (cap_overrun_usd), rows missing after the rerun
(lost_rows), tracebacks printed by any command, and the slowest dead-server stop (dead_server_stop_s).
Run: .venv/bin/python bench/faults.py   (about 2-3 minutes). Last line: JSON.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bizsent.core.config import load_settings  # noqa: E402
from bizsent.core.label import ledger, planning  # noqa: E402
from bizsent.core.store import open_db  # noqa: E402
from bizsent.jobs import labeling  # noqa: E402
from fakes.fourchan import FakeFourChan, big_board  # noqa: E402
from fakes.label_posts import FAKE_CONFIG, make_posts  # noqa: E402
from fakes.openai_server import FakeOpenAI, Server  # noqa: E402

SEED = int(os.environ.get("FAULTS_SEED", "9"))
CAP = 0.025
ENV = {**os.environ, "OPENAI_API_KEY": "sk-bench", "PYTHONPATH": os.pathsep.join(
    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
OUTPUTS: list[str] = []  # everything every command printed (tracebacks are counted in it)


def start(cfg: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from bizsent.cli import main; main()", "--config", str(cfg), *args],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    OUTPUTS.append(out + err)
    return proc.returncode, out + err


def run(cfg: Path, *args: str) -> tuple[int, str]:
    return finish(start(cfg, *args))


def world(folder: Path, url: str, posts: int, extra: str = "") -> tuple[Path, Path]:
    folder.mkdir(parents=True)
    cfg = folder / "config.toml"
    cfg.write_text(FAKE_CONFIG + '[prices."gpt-fake2"]\ninput_per_mtok = 0.25\noutput_per_mtok = 2.0\n'
                   f"[labeling]\nmax_retries = 2\n{extra}"
                   f'[labeling.openai]\nbase_url = "{url}"\nmodel = "gpt-fake"\nconcurrency = 8\n'
                   "requests_per_minute = 60000\n", encoding="utf-8")
    settings = load_settings(cfg, environ={})
    db = open_db(settings.db_path)
    if posts:
        make_posts(db, settings.image_dir, posts)
    db.close()
    return cfg, settings.db_path


def beyond_inflight(fake: FakeOpenAI, db_path: Path) -> int:
    """Keys the server billed more than once that the ledger does not call maybe paid."""
    twice = {k for k, n in Counter(fake.billed_keys()).items() if n > 1}
    with sqlite3.connect(db_path) as conn:
        maybe = {r[0] for r in conn.execute("SELECT request_key FROM api_calls WHERE status = 'interrupted'")}
    return len(twice - maybe)


def labeled(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT count(DISTINCT post_id) FROM labels WHERE source = 'api'").fetchone()[0]


def row(name: str, note: str, double: int = 0, overrun: float = 0.0, lost: int = 0, stop: float | None = None
        ) -> dict:
    return {"case": name, "double": double, "overrun": overrun, "lost": lost, "stop": stop, "note": note}


def concurrent_runs(tmp: Path) -> dict:
    fake = FakeOpenAI(latency_s=0.05)
    with Server(fake) as server:
        cfg, db_path = world(tmp / "concurrent", server.url, 100)
        first = start(cfg, "label", "--limit", "80", "--yes")
        time.sleep(0.3)
        second = start(cfg, "label", "--limit", "80", "--yes")
        codes = [finish(first)[0], finish(second)[0]]
    return row("concurrent runs", f"{len(fake.billed_keys())} paid calls, {labeled(db_path)} posts labeled,"
               f" exits {codes}", beyond_inflight(fake, db_path))


def same_job_twice(tmp: Path) -> dict:
    fake = FakeOpenAI(latency_s=0.05)
    with Server(fake) as server:
        cfg, db_path = world(tmp / "job-twice", server.url, 60)
        settings = load_settings(cfg, environ={})
        db = open_db(db_path)
        job = labeling.queue(db, planning.plan(db, settings, planning.resolve(settings, "openai", None, None,
                                                                              False)).params)
        db.close()
        procs = [start(cfg, "label", "--job", str(job), "--yes") for _ in range(2)]
        codes = [finish(p)[0] for p in procs]
    return row("same job twice", f"{len(fake.billed_keys())} paid calls, {labeled(db_path)} posts labeled,"
               f" exits {codes}", beyond_inflight(fake, db_path))


def batch_and_live(tmp: Path) -> dict:
    fake = FakeOpenAI(latency_s=0.02)
    with Server(fake) as server:
        cfg, db_path = world(tmp / "batch-live", server.url, 40)
        run(cfg, "label", "--batch", "--limit", "20", "--yes")
        run(cfg, "label", "--limit", "20", "--yes")
        run(cfg, "batches", "collect", "--wait", "--interval", "0")
    return row("batch + live", f"{len(fake.billed_keys())} paid calls for {labeled(db_path)} posts",
               beyond_inflight(fake, db_path))


def cap_across_processes(tmp: Path) -> dict:
    fake = FakeOpenAI(latency_s=0.05)
    with Server(fake) as server:
        cfg, db_path = world(tmp / "cap", server.url, 200, f"budget_total_usd = {CAP}\n")
        first = start(cfg, "label", "--limit", "90", "--yes")
        time.sleep(0.3)
        second = start(cfg, "label", "--model", "gpt-fake2", "--limit", "90", "--yes")
        finish(first)
        finish(second)
    db = open_db(db_path, create=False)
    spent = ledger.total_usd(db)
    db.close()
    return row("cap across processes", f"spent ${spent:.4f} of a ${CAP} cap, {len(fake.billed_keys())} paid calls",
               beyond_inflight(fake, db_path), max(0.0, spent - CAP))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stopped(cfg: Path) -> tuple[float, int, str]:
    started = time.monotonic()
    code, said = run(cfg, "label", "--yes")
    line = next((x for x in said.splitlines() if x.startswith("stopped:")), "(no stop line)")
    return time.monotonic() - started, code, line


def dead_servers(tmp: Path) -> list[dict]:
    out = []
    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg, db_path = world(tmp / "refused", url, 203)
    took, code, line = stopped(cfg)
    with sqlite3.connect(db_path) as conn:
        attempts = conn.execute("SELECT count(*) FROM api_calls").fetchone()[0]
    named = url.removesuffix("/v1") in line
    out.append(row("dead server: refused", f"exit {code}, {attempts} attempts, names the URL: {named}", stop=took))
    fake = FakeOpenAI(script=lambda n, body: "hang", hang_s=20.0)
    with Server(fake) as server:
        cfg, db_path = world(tmp / "hanging", server.url, 203, "request_timeout_s = 3\n")
        took, code, _ = stopped(cfg)
        maybe = len(fake.calls)
    out.append(row("dead server: hanging", f"exit {code}, timeout 3 s, {maybe} requests maybe paid",
                   beyond_inflight(fake, db_path), stop=took))
    fake = FakeOpenAI(script=lambda n, body: "quota")
    with Server(fake) as server:
        cfg, db_path = world(tmp / "quota", server.url, 203)
        took, code, line = stopped(cfg)
    out.append(row("dead server: quota", f"exit {code}, {len(fake.calls)} requests; {line[:60]}...", stop=took))
    return out


def kill_label(tmp: Path, rng: random.Random) -> dict:
    fake = FakeOpenAI(latency_s=0.03)
    with Server(fake) as server:
        cfg, db_path = world(tmp / "kill-label", server.url, 300)
        kills = 0
        for target in sorted(rng.sample(range(20, 260), 3)):
            proc = start(cfg, "label", "--yes")
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                with sqlite3.connect(db_path, timeout=10) as conn:
                    if conn.execute("SELECT count(*) FROM api_calls WHERE status = 'ok'").fetchone()[0] >= target:
                        break
                time.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            finish(proc)
        code, _ = run(cfg, "label", "--yes")
    with sqlite3.connect(db_path) as conn:
        maybe = conn.execute("SELECT count(*) FROM api_calls WHERE status = 'interrupted'").fetchone()[0]
    return row("kill -9 label", f"{kills} kills, {maybe} maybe paid (<= 8 a kill), final exit {code}",
               beyond_inflight(fake, db_path), lost=300 - labeled(db_path))


def kill_import(tmp: Path, rng: random.Random) -> dict:
    folder = tmp / "kill-import"
    cfg, db_path = world(folder, "http://127.0.0.1:9/v1", 0)
    n = 20_000
    source = folder / "posts.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"board": "biz", "thread_no": 5_000_000 + i // 10, "post_no": 5_000_000 + i,
                                "text": f"post {i} to the moon", "time": 1_700_000_000 + i,
                                "label": ("bullish", "bearish", "neutral")[i % 3], "split": "train"}) + "\n")
    proc = start(cfg, "import", str(source), "--split", "train")
    time.sleep(rng.uniform(1.0, 3.0))
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    finish(proc)
    code, _ = run(cfg, "import", str(source), "--split", "train")
    with sqlite3.connect(db_path) as conn:
        posts = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
        labels = conn.execute("SELECT count(*) FROM labels").fetchone()[0]
    return row("kill -9 import", f"killed: {killed}; {posts} posts, {labels} labels of {n}; exit {code}",
               lost=(n - posts) + (n - labels))


def kill_scrape(tmp: Path, rng: random.Random) -> dict:
    with FakeFourChan(clock=time.monotonic) as fake:
        big_board(fake, 6, 20)
        folder = tmp / "kill-scrape"
        folder.mkdir(parents=True)
        cfg = folder / "config.toml"
        cfg.write_text(f'[data]\ndir = "data"\n[scrape]\napi_base = "{fake.url}"\nimage_base = "{fake.url}"\n',
                       encoding="utf-8")
        db_path = load_settings(cfg, environ={}).db_path
        proc = start(cfg, "scrape", "--max-threads", "6", "--no-images")
        time.sleep(rng.uniform(2.5, 5.0))
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        finish(proc)
        code, _ = run(cfg, "scrape", "--max-threads", "6", "--no-images")
    expected = 6 * 21
    with sqlite3.connect(db_path) as conn:
        posts = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    return row("kill -9 scrape", f"killed: {killed}; {posts} of {expected} posts; exit {code}",
               lost=expected - posts)


def main() -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows = [concurrent_runs(tmp), same_job_twice(tmp), batch_and_live(tmp), cap_across_processes(tmp),
                *dead_servers(tmp), kill_label(tmp, rng), kill_import(tmp, rng), kill_scrape(tmp, rng)]
    tracebacks = sum(o.count("Traceback") for o in OUTPUTS)
    print(f"{'case':<22} {'paid 2x*':>8} {'cap over $':>10} {'lost':>6} {'stop s':>7}  note")
    for r in rows:
        stop = f"{r['stop']:.1f}" if r["stop"] is not None else "-"
        print(f"{r['case']:<22} {r['double']:>8} {r['overrun']:>10.5f} {r['lost']:>6} {stop:>7}  {r['note']}")
    print(f"* billed twice by the fake server and not marked 'maybe paid' in the ledger; {len(OUTPUTS)} commands,"
          f" {tracebacks} traceback(s); {time.monotonic() - started:.0f} s")
    print(json.dumps({
        "double_paid_beyond_inflight": sum(r["double"] for r in rows),
        "cap_overrun_usd": round(sum(r["overrun"] for r in rows), 6),
        "lost_rows": sum(r["lost"] for r in rows),
        "tracebacks": tracebacks,
        "dead_server_stop_s": round(max(r["stop"] for r in rows if r["stop"] is not None), 1),
    }))


if __name__ == "__main__":
    main()
