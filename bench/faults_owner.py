"""bench/faults.py's cases from issue 19 (one owner per job, one file per database, one rule per secret):
  stop-resume-continue  SIGSTOP a `label --yes` run, `jobs resume` it once it shows dead, SIGCONT the old one
  import beside a job   a 40,000-row import while a label job runs, with and without a `jobs resume` meanwhile;
                        a probe measures the longest write lock, a watcher whether the job ever showed dead
  demo seed             the longest write lock while `demo --posts 600` seeds
  database replaced     the database moved away and random bytes put at its path mid-run; `recover` after
  disk full             import and label on a small tmpfs (skipped, with the reason, where none can be mounted)
  secrets               every registered provider and every RunPod client asked to send over plain http
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bizsent.core.store import open_db
from bizsent.jobs import views
from fakes.openai_server import FakeOpenAI, Server
from fault_tools import beyond_inflight, finish, labeled, row, run, start, world


def _scalar(db_path: Path, sql: str) -> int:
    with sqlite3.connect(db_path, timeout=60) as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def _status(db_path: Path, job: int = 1) -> str:
    db = open_db(db_path, create=False)
    try:
        return views.one(db, job).status
    finally:
        db.close()


def _until(check: Callable[[], bool], limit_s: float = 180) -> bool:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_resume_continue(tmp: Path) -> dict:
    fake = FakeOpenAI(latency_s=0.3)
    with Server(fake) as server:
        cfg, db_path = world(tmp / "stop-resume", server.url, 120)
        old = start(cfg, "label", "--yes")
        _until(lambda: _scalar(db_path, "SELECT count(*) FROM api_calls WHERE status = 'ok'") >= 16)
        old.send_signal(signal.SIGSTOP)
        with sqlite3.connect(db_path, timeout=60) as conn:
            in_flight = {r[0] for r in conn.execute("SELECT request_key FROM api_calls WHERE status = 'sent'")}
        _until(lambda: _status(db_path) == "dead")
        resumed, _ = run(cfg, "jobs", "resume", "1")
        old.send_signal(signal.SIGCONT)
        code, said = finish(old)
        _until(lambda: _status(db_path) not in ("running", "starting", "queued"))
    twice = {k for k, n in Counter(fake.billed_keys()).items() if n > 1}
    line = next((x for x in said.splitlines() if "taken over" in x), "(no line)")
    return row("stop-resume-continue", f"{len(in_flight)} in flight at the take-over, {len(twice)} paid twice;"
               f" resume exit {resumed}, old exit {code}: {line[:50]}...",
               beyond_inflight(fake, db_path) + len(twice - in_flight), lost=120 - labeled(db_path))


class _Probe:
    """Another writer's view: how long a short write waits for the lock, while `watch` runs."""

    def __init__(self, db_path: Path, watch: Callable[[], None] | None = None) -> None:
        self.db_path, self.watch, self.longest, self.done = db_path, watch, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = sqlite3.connect(self.db_path, timeout=120, isolation_level=None)
        while not self.done.is_set():
            started = time.monotonic()
            conn.execute("BEGIN IMMEDIATE")
            self.longest = max(self.longest, time.monotonic() - started)
            conn.execute("COMMIT")
            if self.watch:
                self.watch()
            time.sleep(0.02)
        conn.close()

    def __enter__(self) -> _Probe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def import_beside_job(tmp: Path, resume: bool) -> dict:
    name = "import + job + resume" if resume else "import beside a job"
    fake = FakeOpenAI(latency_s=0.15)
    with Server(fake) as server:
        cfg, db_path = world(tmp / name.replace(" ", "-").replace("+", ""), server.url, 150)
        source = db_path.parent / "posts.jsonl"
        with source.open("w", encoding="utf-8") as f:
            for i in range(40_000):
                f.write(json.dumps({"post_no": 9_000_000 + i, "text": f"post {i} to the moon", "label": "neutral",
                                    "split": "train"}) + "\n")
        before = _scalar(db_path, "SELECT count(*) FROM posts")
        job = start(cfg, "label", "--yes")
        _until(lambda: _scalar(db_path, "SELECT count(*) FROM api_calls WHERE status = 'ok'") >= 5)
        seen: set[str] = set()
        with _Probe(db_path, lambda: seen.add(_status(db_path))) as probe:
            importing = start(cfg, "import", str(source), "--split", "train")
            resumed = run(cfg, "jobs", "resume", "1")[0] if resume else None
            imported, _ = finish(importing, timeout=600)
        finish(job, timeout=300)
    posts = _scalar(db_path, "SELECT count(*) FROM posts")
    note = (f"longest write lock {probe.longest:.2f} s, job shown {sorted(seen)}, import exit {imported}"
            + (f", resume exit {resumed} (refused: the job lives)" if resume else ""))
    return row(name, note, beyond_inflight(fake, db_path) + ("dead" in seen),
               lost=(before + 40_000 - posts) + (150 - labeled(db_path)), lock=probe.longest)


def demo_seed(tmp: Path) -> dict:
    folder = tmp / "demo"
    folder.mkdir()
    cfg = folder / "config.toml"
    cfg.write_text('[data]\ndir = "data"\n', encoding="utf-8")
    db_path = folder / "data" / "bizsent.db"
    open_db(db_path).close()
    with _Probe(db_path) as probe:
        code, _ = run(cfg, "--db", str(db_path), "demo", "--no-tui", "--posts", "600")
    return row("demo seed", f"600 posts, exit {code}, longest write lock {probe.longest:.2f} s",
               lost=600 - _scalar(db_path, "SELECT count(*) FROM posts WHERE source = 'demo'"), lock=probe.longest)


def database_replaced(tmp: Path) -> dict:
    fake = FakeOpenAI(latency_s=0.2)
    with Server(fake) as server:
        cfg, db_path = world(tmp / "replaced", server.url, 120)
        job = start(cfg, "label", "--yes")
        _until(lambda: _scalar(db_path, "SELECT count(*) FROM api_calls WHERE status = 'ok'") >= 15)
        good = db_path.with_name("moved.db")
        db_path.rename(good)
        db_path.write_bytes(os.urandom(64 * 1024))
        code, said = finish(job)
        db_path.unlink()
        good.rename(db_path)
        _, recovered = run(cfg, "recover")
    with sqlite3.connect(db_path) as conn:
        answered = {r[0] for r in conn.execute("SELECT request_key FROM api_calls WHERE status IN ('ok', 'invalid')")}
    saved = {p.stem.rsplit("-", 1)[0] for p in (db_path.parent / "responses").glob("*/*.json")}
    line = next((x for x in said.splitlines() if x.startswith("error:")), "(no line)")
    return row("database replaced", f"job exit {code}: {line[7:50]}...; {recovered.strip()[9:60]}...",
               beyond_inflight(fake, db_path), missing=len(saved - answered))


def _mount_small(folder: Path) -> str | None:
    folder.mkdir(parents=True)
    if not shutil.which("mount"):
        return "no mount command"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or "mount refused")


def disk_full(tmp: Path) -> dict:
    small = tmp / "small-disk"
    why = _mount_small(small)
    if why is not None:
        return row("disk full", f"skipped: cannot mount a small tmpfs here ({why[:60]})")
    try:
        fake = FakeOpenAI()
        with Server(fake) as server:
            cfg, db_path = world(small / "w", server.url, 0)
            source = tmp / "full.jsonl"
            source.write_text("".join(json.dumps({"post_no": n + 1, "text": f"post {n} " + "moon " * 40,
                                                  "label": "bullish"}) + "\n" for n in range(20_000)))
            filler = small / "filler"
            filler.write_bytes(b"\0" * max(0, shutil.disk_usage(small).free - 600_000))
            code, said = run(cfg, "import", str(source), "--split", "train")
            filler.unlink()
            again, _ = run(cfg, "import", str(source), "--split", "train")
            posts = _scalar(db_path, "SELECT count(*) FROM posts")
        line = next((x for x in said.splitlines() if x.startswith("error:")), "(no line)")
        return row("disk full", f"import exit {code}: {line[7:60]}...; rerun exit {again}", lost=20_000 - posts)
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)


def secrets_over_plain_http(tmp: Path) -> dict:
    """Each client that sends a secret, pointed at plain http on another host: how many would send it."""
    from bizsent.core.config import load_settings
    from bizsent.core.errors import BizsentError
    from bizsent.core.label import providers
    from bizsent.core.pods import api
    from bizsent.core.pods.channel import AgentChannel
    from bizsent.core.serve.endpoint import EndpointClient

    cfg = tmp / "plain.toml"
    cfg.write_text('[data]\ndir = "data"\n', encoding="utf-8")
    saved = dict(os.environ)
    os.environ.update({p.secret_env: "bench-secret-123456" for p in providers.registered()})
    attempts: list[Callable[[], object]] = []
    for p in providers.registered():
        settings = load_settings(cfg, overrides={f"labeling.{p.name}.base_url": "http://h.example.com/v1"}, environ={})
        attempts.append(lambda s=settings, n=p.name: providers.make_labeler(s, n))
        if p.supports_batch:
            attempts.append(lambda s=settings, n=p.name: providers.batch_backend(s, n))
    serverless = load_settings(cfg, environ={}).serverless
    attempts += [lambda: api.RunpodClient("http://h.example.com/v2", "rp-123456"),
                 lambda: EndpointClient("http://h.example.com", "abc123def", "rp-123456", serverless),
                 lambda: AgentChannel("http://h.example.com:8765", "token-123456")]
    sent = 0
    try:
        for attempt in attempts:
            try:
                attempt()
                sent += 1
            except BizsentError:
                pass
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return row("secrets, plain http", f"{len(attempts)} clients asked, {sent} would send", plain=sent)


def cases(tmp: Path) -> list[dict]:
    return [stop_resume_continue(tmp), import_beside_job(tmp, False), import_beside_job(tmp, True), demo_seed(tmp),
            database_replaced(tmp), disk_full(tmp), secrets_over_plain_http(tmp)]

