"""What bench/faults.py's cases share: the fake worlds, the real CLI as subprocesses, and the measures."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bizsent.core.config import load_settings  # noqa: E402
from bizsent.core.store import open_db  # noqa: E402
from fakes.label_posts import FAKE_CONFIG, make_posts  # noqa: E402
from fakes.openai_server import FakeOpenAI  # noqa: E402

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


def row(name: str, note: str, double: int = 0, overrun: float = 0.0, lost: int = 0, stop: float | None = None,
        missing: int = 0, plain: int = 0, lock: float | None = None, billing: int = 0) -> dict:
    """One case's line: paid twice beyond in-flight, dollars over the cap, rows lost, seconds to stop, paid answers
    missing from the database, secrets that would go over plain http, the longest write lock seen (s), pods still
    billing after a cancel (or a cancel that failed)."""
    return {"case": name, "double": double, "overrun": overrun, "lost": lost, "stop": stop, "missing": missing,
            "plain": plain, "lock": lock, "billing": billing, "note": note}
