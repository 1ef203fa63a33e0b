"""A laptop project and a fake RunPod for `bizsent train --pod`: config.toml pointing at the fake (tiny model,
short kill switches, quick polling), a seeded store, and the real CLI run in a subprocess with a canary user key.
Shared by tests/test_pod_run.py, tests/test_pod_faults.py and bench/pods.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlite_utils
from bizsent.core.config import Settings, load_settings
from bizsent.core.store import open_db
from fakes.runpod_server import FakeRunpod
from fakes.train import seed_store

CANARY = "canary-user-runpod-key-3b9f1c"  # the user's RUNPOD_API_KEY on the laptop


@dataclass
class Rig:
    base: Path
    config: Path
    settings: Settings
    fake: FakeRunpod

    def env(self, key: str | None = CANARY) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
        if key:
            env["RUNPOD_API_KEY"] = key
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bizsent", "--config", str(self.config), *args]

    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env(), timeout=timeout,
                              cwd=self.base)

    def popen(self, *args: str, settings: dict[str, str] | None = None) -> subprocess.Popen:
        """The CLI in the background; `settings` are BIZSENT_* variables for this run only (over config.toml)."""
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**self.env(), **(settings or {})}, cwd=self.base)

    def db(self) -> sqlite_utils.Database:
        return open_db(self.settings.db_path)

    def pod_id(self, run: str, timeout_s: float = 60) -> str:
        """The pod id of `run` once the database has it."""
        deadline = time.monotonic() + timeout_s
        with contextlib.closing(self.db()) as db:
            while time.monotonic() < deadline:
                row = db.execute("SELECT pod_id FROM pods WHERE run_name = ? AND pod_id IS NOT NULL", [run]).fetchone()
                if row:
                    return row[0]
                time.sleep(0.1)
        raise TimeoutError(f"no pod for run {run}")

    def agent(self, pod_id: str) -> httpx.Client:
        """The pod's agent through the fake's proxy, with the run token from the database."""
        with contextlib.closing(self.db()) as db:
            token = db.execute("SELECT token FROM pods WHERE pod_id = ?", [pod_id]).fetchone()[0]
        return httpx.Client(base_url=f"{self.fake.url}/proxy/{pod_id}-8765", timeout=30,
                            headers={"Authorization": f"Bearer {token}"})

    def wait_agent_state(self, pod_id: str, states: tuple[str, ...], timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        with self.agent(pod_id) as agent:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    resp = agent.get("/health")
                    if resp.status_code == 200 and resp.json()["state"] in states:
                        return resp.json()["state"]
                time.sleep(0.1)
        raise TimeoutError(f"the agent of pod {pod_id} never reached {states}")


def config_text(fake: FakeRunpod, model_dir: Path, **runpod: object) -> str:
    # No GPU here: the agent may train on the CPU (require_gpu off), and the pods' torch is this venv's, whose CUDA
    # build the create asks hosts for (the fake's nvidia-smi still has the driver checked against it).
    values = {"api_base": fake.url, "proxy_url": fake.proxy_url, "install_deps": False, "poll_s": 0.3,
              "agent_lost_min": 0.1, "boot_timeout_min": 1.0, "grace_min": 0.5, "idle_timeout_min": 5.0,
              "require_gpu": False, "torch_cuda": venv_torch_cuda(), **runpod}
    lines = ["[data]", 'dir = "data"', "[train]", f'base_model = "{model_dir}"', "max_pixels = 3136",
             "batch_size = 2", "grad_accum = 1", "val_fraction = 0.2", "learning_rate = 0.005", "[runpod]"]
    for key, value in values.items():
        lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}".replace("'", '"'))
    return "\n".join(lines) + "\n"


def venv_torch_cuda() -> str:
    """The CUDA build of this venv's torch: what a fake pod trains with (it installs no dependencies)."""
    import torch

    return torch.version.cuda or "12.8"  # a CPU-only torch has no build to check; any version will do


@contextlib.contextmanager
def pod_rig(base: Path, model_dir: Path, *, boot_delay_s: float = 0.1, unlabeled: int = 0,
            **runpod: object) -> Iterator[Rig]:
    """A seeded laptop project under `base` and a running fake RunPod whose pods run the real agent."""
    base.mkdir(parents=True, exist_ok=True)
    env = {"BIZSENT_WATCHDOG_S": "0.2", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with FakeRunpod(CANARY, root=base / "pods", boot_delay_s=boot_delay_s, extra_env=env) as fake:
        config = base / "config.toml"
        config.write_text(config_text(fake, model_dir, **runpod), encoding="utf-8")
        settings = load_settings(config, environ={})
        with contextlib.closing(open_db(settings.db_path)) as db:
            seed_store(db, settings.image_dir, n_train=12, n_test=3, n_unlabeled=unlabeled)
        yield Rig(base, config, settings, fake)
