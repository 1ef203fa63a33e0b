"""The agent's settings from the pod's environment, its shared state, and the one error a request can end in."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

UPLOADS = ("bizsent.whl", "bundle.tar", "job.json")
MAX_CHUNK = 64 * 1024 * 1024
MAX_JSON = 1024 * 1024
# Taken out of the agent's environment at start, so no child process (pip, training) ever sees them.
PRIVATE_ENV = ("BIZSENT_TOKEN", "RUNPOD_API_KEY", "BIZSENT_AGENT_B64")


class Refused(Exception):
    """A request the agent will not serve: an HTTP status, a one-line reason and extra JSON fields."""

    def __init__(self, status: int, reason: str, **extra: object) -> None:
        super().__init__(reason)
        self.status, self.extra = status, extra


@dataclass(frozen=True)
class Api:
    """How the pod reaches the RunPod API about itself (RunPod's pod id and pod-scoped key)."""

    api_base: str
    pod_id: str
    pod_key: str

    @classmethod
    def from_env(cls, environ: MutableMapping[str, str]) -> Api:
        return cls(environ.get("BIZSENT_API_BASE", "https://api.runpod.io").rstrip("/"),
                   environ.get("RUNPOD_POD_ID", ""), environ.get("RUNPOD_API_KEY", ""))


@dataclass(frozen=True)
class Config:
    token: str
    port: int
    workdir: Path
    max_hours: float
    max_usd: float
    usd_per_hour: float
    idle_s: float
    grace_s: float
    tick_s: float
    install_deps: bool
    api_base: str
    pod_id: str
    pod_key: str
    billed_since: float  # wall clock: when the laptop created the pod (its bill starts there), else the agent's start
    require_gpu: bool  # refuse to train unless torch uses a GPU that fits (false: tests on GPU-less machines)
    torch_cuda: str  # the CUDA version of the torch build the pod installs ("" when none is named)
    min_capability: str
    min_free_mib: int

    @property
    def api(self) -> Api:
        return Api(self.api_base, self.pod_id, self.pod_key)


@dataclass
class State:
    phase: str = "waiting-upload"
    error: str | None = None
    adapter: dict | None = None
    collected: bool = False
    job: dict | None = None
    ended_at: float | None = None
    progress_at: float = field(default_factory=time.monotonic)
    fired: tuple[str, str] | None = None
    wanted: tuple[str, str] | None = None  # what the watchdog last asked of RunPod, taken or not
    failed_call: str | None = None  # why that call failed (None once one worked)
    gpu: dict | None = None  # what the GPU check found and passed (gpu.report)
    chunks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UPLOADS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)
    uploading: threading.Lock = field(default_factory=threading.Lock)  # held while a chunk or a whole file is checked


def say(line: str) -> None:
    print(f"bizsent-agent: {line}", flush=True)


def load_config(environ: MutableMapping[str, str]) -> Config:
    """The agent's settings; the secrets are popped from `environ` (os.environ) so children never inherit them."""
    secrets = {name: environ.pop(name, "") for name in PRIVATE_ENV}

    def number(name: str, default: float) -> float:
        try:
            value = float(environ.get(name, default))
        except ValueError:
            raise SystemExit(f"{name} must be a number") from None
        if not (value > 0 and math.isfinite(value)):
            raise SystemExit(f"{name} must be a positive number")
        return value

    if len(secrets["BIZSENT_TOKEN"]) < 16:
        raise SystemExit("BIZSENT_TOKEN is missing or shorter than 16 characters; the agent serves nothing without it")
    now = time.time()
    return Config(
        token=secrets["BIZSENT_TOKEN"], port=int(number("BIZSENT_PORT", 8765)),
        workdir=Path(environ.get("BIZSENT_WORKDIR", "/workspace/bizsent")).resolve(),
        max_hours=number("BIZSENT_MAX_HOURS", 5), max_usd=number("BIZSENT_MAX_USD", 5),
        usd_per_hour=number("BIZSENT_USD_PER_HOUR", 1), idle_s=number("BIZSENT_IDLE_MIN", 20) * 60,
        grace_s=number("BIZSENT_GRACE_MIN", 30) * 60, tick_s=number("BIZSENT_WATCHDOG_S", 15),
        install_deps=environ.get("BIZSENT_INSTALL_DEPS", "0") == "1",
        api_base=environ.get("BIZSENT_API_BASE", "https://api.runpod.io").rstrip("/"),
        pod_id=environ.get("RUNPOD_POD_ID", ""), pod_key=secrets["RUNPOD_API_KEY"],
        billed_since=min(number("BIZSENT_CREATED_AT", now), now),
        require_gpu=environ.get("BIZSENT_REQUIRE_GPU", "1") != "0",
        torch_cuda=versioned(environ, "BIZSENT_TORCH_CUDA", ""),
        min_capability=versioned(environ, "BIZSENT_MIN_CAPABILITY", "8.0"),
        min_free_mib=int(number("BIZSENT_MIN_GPU_MIB", 1)),
    )


def versioned(environ: MutableMapping[str, str], name: str, default: str) -> str:
    value = environ.get(name, default)
    if value and not re.fullmatch(r"\d+\.\d+", value):
        raise SystemExit(f"{name} must be a version such as 12.8")
    return value
