"""Start `bizsent` commands that outlive the console: jobs.control queues a job row, then launches its kind's
command (`bizsent label --job ID --yes`, ...) detached; the child writes its progress to that row, which the
console reads.

The child is started through a short-lived intermediate process (a double fork): it lands in its own session,
belongs to no terminal, gets no SIGHUP when the console's terminal closes, and is never left as a zombie of
the console, so "pid alive" checks on the job row stay truthful.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bizsent.core.errors import BizsentError

ROOT = Path(__file__).resolve().parent.parent

# Runs in the intermediate process: start the real command in a new session, print its pid, exit.
_SPAWN = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab') if sys.argv[1] else subprocess.DEVNULL\n"
    "child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,"
    " start_new_session=True, close_fds=True)\n"
    "print(child.pid)\n"
)


def bizsent_command(db_path: Path | str, config_path: Path | str | None, args: list[str]) -> list[str]:
    """The same interpreter and code as this process, so a detached job runs the version the console runs. Paths
    are made absolute: the child runs in the checkout's folder (so no folder of the user's shadows the package)."""
    config = ["--config", os.path.abspath(config_path)] if config_path else []
    return [sys.executable, "-c", "from bizsent.cli import main; main()", *config, "--db", os.path.abspath(db_path),
            *args]


def start_detached(db_path: Path | str, config_path: Path | str | None, args: list[str],
                   log_path: Path | str | None = None) -> int:
    """Run `bizsent [--config C] --db D ARGS...` detached from this process; returns the child's pid."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    spawned = subprocess.run([sys.executable, "-c", _SPAWN, str(log_path or ""),
                              *bizsent_command(db_path, config_path, args)],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if spawned.returncode != 0 or not spawned.stdout.strip().isdigit():
        raise BizsentError(f"could not start a background job: {(spawned.stderr or spawned.stdout).strip()[-200:]}")
    return int(spawned.stdout.strip())

