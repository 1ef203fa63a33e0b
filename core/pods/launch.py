"""Start a training pod, wait for it, price it while it runs, and terminate it with RunPod's confirmation.

The pod runs bizsent's in-pod agent (core/pods/agent/, a stdlib-only package shipped as a zipapp, base64 in its env) and
nothing of the user's: its env carries a per-run token and the kill switches, never RUNPOD_API_KEY or any
other secret. The pod row is written before the create call and gets its id the moment RunPod answers.

Integration (train --pod, pods start):  plan = plan.plan_pod(...); handle = start_pod(db, settings, client,
plan, job_id=...); wait_running(db, client, handle, settings); ... talk to handle.agent_url with
handle.token ...; terminate_and_confirm(db, client, handle.pod_id).
"""

from __future__ import annotations

import logging
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.log import redact
from bizsent.core.pods import records
from bizsent.core.pods.api import KeyRefused, NoCapacity, OutOfCredit, Pod, RunpodClient, RunpodError
from bizsent.core.pods.channel import agent_url as channel_agent_url
from bizsent.core.pods.gpu_fit import gpu_request
from bizsent.core.pods.payload import pod_env
from bizsent.core.pods.plan import Candidate, PodPlan

log = logging.getLogger("bizsent.pods")

LIVE_STATUSES = ("PROVISIONING", "STARTING", "RUNNING")
NETWORK_VOLUME_PATH = "/runpod-volume"  # where a network volume is mounted (as in RunPod's serverless workers)


def start_command() -> str:
    """The container's start command (REST v2 `args`, one string): decode the agent's zipapp from the env and run
    it. The shell outlives the agent: a container whose main process exits is restarted by RunPod, billing, as
    often as it fails, so after an agent that ended (one that could not stop its own pod) it stays up, idle and
    visible, for the laptop or `bizsent pods reap` to end."""
    return shlex.join(["bash", "-c", 'echo "$BIZSENT_AGENT_B64" | base64 -d > /tmp/bizsent_agent.pyz && python3'
                                     ' /tmp/bizsent_agent.pyz; echo "bizsent-agent: the agent ended (exit code $?);'
                                     ' idle until this pod is stopped or terminated"; exec sleep infinity'])


def cache_env(settings: Settings) -> dict[str, str]:
    """With a network volume, the Hugging Face cache and pip's wheel cache live on it, so the 16 GB model and the
    CUDA wheels are downloaded by the first run only (the agent's children inherit these; they hold no secret)."""
    if not settings.runpod.network_volume_id:
        return {}
    return {"HF_HOME": f"{NETWORK_VOLUME_PATH}/huggingface", "PIP_CACHE_DIR": f"{NETWORK_VOLUME_PATH}/pip"}


def create_body(settings: Settings, name: str, candidate: Candidate, env: dict[str, str]) -> dict[str, Any]:
    """POST /v2/pods body (field names from RunPod's OpenAPI CreatePodRequest; the network volume's place in
    `mounts` is a guess, the fake checks the same shape)."""
    conf = settings.runpod
    mounts: dict[str, Any] = {"persistent": {"size": conf.volume_gb, "path": "/workspace"}}
    if conf.network_volume_id:
        mounts["network"] = {"id": conf.network_volume_id, "path": NETWORK_VOLUME_PATH}
    return {"name": name, "image": conf.image, "gpu": gpu_request(settings, candidate.gpu), "cloud": candidate.cloud,
            "args": start_command(), "env": {**env, **cache_env(settings)}, "ports": [f"{conf.agent_port}/http"],
            "disk": conf.disk_gb, "mounts": mounts}


@dataclass(frozen=True, slots=True)
class PodHandle:
    """A pod bizsent started: its row, RunPod id, price, and how to reach its agent."""

    row_id: int
    pod_id: str
    name: str
    run_name: str
    gpu: str
    cloud: str
    usd_per_hour: float
    token: str
    agent_url: str  # the agent's base URL through RunPod's proxy

    def __repr__(self) -> str:  # the token opens the pod: keep it out of logs and tracebacks
        return f"PodHandle({self.pod_id!r}, {self.name!r}, {self.gpu!r}, {self.cloud!r})"


def agent_url(settings: Settings, pod_id: str) -> str:
    return channel_agent_url(settings.runpod.proxy_url, pod_id, settings.runpod.agent_port)


def handle_of(db: sqlite_utils.Database, settings: Settings, pod_id: str) -> PodHandle:
    """The handle of a pod an earlier process started (for tail, collect, stop)."""
    row = records.row_of(db, pod_id)
    token = records.token_of(db, pod_id)
    if row is None or token is None:
        raise BizsentError(f"pod {pod_id} was not started by bizsent with this database; see `bizsent pods list`")
    return PodHandle(row.id, pod_id, row.name, row.run_name or row.name, row.gpu or "", row.cloud or "",
                     row.usd_per_hour or 0.0, token, agent_url(settings, pod_id))


def start_pod(db: sqlite_utils.Database, settings: Settings, client: RunpodClient, plan: PodPlan, *,
              env_extra: dict[str, str] | None = None, job_id: int | None = None,
              agent_path: Path | None = None) -> PodHandle:
    """Create the pod on the first candidate with capacity, falling back through the plan's GPU and cloud types.

    No capacity anywhere (or every candidate refused): the row is marked failed, nothing is billing, and one
    NoCapacity / RunpodError line says what was tried. A create whose answer was lost is looked up by name
    before the next candidate is tried, so a lost answer never leaves an unknown second pod.
    """
    for pod in client.list_pods():
        if pod.name == plan.pod_name and pod.status != "TERMINATED":
            raise BizsentError(f"a pod named {plan.pod_name} already exists ({pod.id}, {pod.status}); terminate it"
                               " (`bizsent pods terminate ID`) or choose another run name")
    token = secrets.token_urlsafe(32)
    row_id = records.insert_requested(db, plan.pod_name, plan.run_name, token, job_id)
    tried: list[str] = []
    last: RunpodError | None = None
    for candidate in plan.candidates:
        env = pod_env(settings, token, port=settings.runpod.agent_port, usd_per_hour=candidate.usd_per_hour,
                      grace_min=settings.runpod.grace_min, install_deps=settings.runpod.install_deps,
                      agent_path=agent_path, extra=env_extra)
        try:
            pod = client.create_pod(create_body(settings, plan.pod_name, candidate, env))
        except (OutOfCredit, KeyRefused) as exc:
            if isinstance(exc, KeyRefused) and exc.status == 403:  # this pool is closed to the account: next
                tried.append(f"{candidate.gpu} ({candidate.cloud}): not allowed for this account")
                last = exc
                continue
            records.finish(db, row_id, "failed", 0.0, str(exc))
            raise
        except RunpodError as exc:
            if exc.status == 0 or exc.status >= 500:
                pod = _created_anyway(client, plan.pod_name)
                if pod is None:
                    tried.append(f"{candidate.gpu} ({candidate.cloud}): {exc}")
                    last = exc
                    continue
            elif exc.status in (400, 429) or isinstance(exc, NoCapacity):
                tried.append(f"{candidate.gpu} ({candidate.cloud}): "
                             + ("no capacity" if isinstance(exc, NoCapacity) else exc.detail or str(exc)))
                last = exc
                continue
            else:
                records.finish(db, row_id, "failed", 0.0, str(exc))
                raise
        records.set_created(db, row_id, pod.id, candidate.gpu, candidate.cloud, candidate.usd_per_hour)
        log.info("pod %s created: %s on %s (%s) at $%.2f/h", pod.id, plan.pod_name, candidate.gpu, candidate.cloud,
                 candidate.usd_per_hour)
        return PodHandle(row_id, pod.id, plan.pod_name, plan.run_name, candidate.gpu, candidate.cloud,
                         candidate.usd_per_hour, token, agent_url(settings, pod.id))
    summary = "; ".join(tried)
    records.finish(db, row_id, "failed", 0.0, redact(summary))
    if all("no capacity" in t for t in tried):
        raise NoCapacity(f"no GPU available on RunPod right now (tried {summary}); nothing is running or billing."
                         " Try again later, or add GPU types (runpod.gpu_types) or cloud types (runpod.cloud_types)",
                         400)
    raise RunpodError(f"RunPod refused every GPU tried ({summary}); nothing is running or billing",
                      last.status if last else 0)


def _created_anyway(client: RunpodClient, name: str) -> Pod | None:
    return next((p for p in client.list_pods() if p.name == name and p.status != "TERMINATED"), None)


def adopt_by_name(db: sqlite_utils.Database, settings: Settings, client: RunpodClient, row: records.PodRow
                  ) -> PodHandle | None:
    """The pod of a `requested` row that has no id (its process was killed while the create was in flight):
    found on RunPod by its name, as a lost create answer is, and given its id in the row, so resume reattaches
    and cancel terminates it. None, the row marked failed, when RunPod has no such pod."""
    pod = _created_anyway(client, row.name)
    if pod is None:
        records.finish(db, row.id, "failed", 0.0, "its create never reached RunPod")
        return None
    records.set_created(db, row.id, pod.id, pod.gpu or "", pod.cloud or "", pod.usd_per_hour)
    log.info("pod %s of a create whose answer never arrived found by its name %s", pod.id, row.name)
    return handle_of(db, settings, pod.id)


def wait_running(db: sqlite_utils.Database, client: RunpodClient, handle: PodHandle, settings: Settings, *,
                 poll_s: float = 2.0, on_status: Callable[[Pod], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Pod:
    """Poll until the pod is RUNNING. A pod that errors, stops, or is not running after
    runpod.boot_timeout_min is terminated (and confirmed gone) before the one-line error."""
    deadline = clock() + settings.runpod.boot_timeout_min * 60
    while True:
        pod = client.get_pod(handle.pod_id)
        if pod is None or pod.status == "TERMINATED":
            records.finish(db, handle.row_id, "gone", None, "disappeared while booting")
            raise BizsentError(f"pod {handle.pod_id} disappeared while booting (terminated from outside?)")
        if on_status is not None:
            on_status(pod)
        if pod.status == "RUNNING":
            records.set_state(db, handle.row_id, "running")
            return pod
        why = None
        if pod.status in ("ERROR", "EXITED"):
            why = f"its container stopped while booting ({pod.status})"
        elif clock() >= deadline:
            why = f"it was still {pod.status} after {settings.runpod.boot_timeout_min:g} min"
        if why:
            usd = terminate_and_confirm(db, client, handle.pod_id, final_state="failed", error=why)
            raise BizsentError(f"pod {handle.pod_id} never came up: {why}; it was terminated (cost ${usd:.2f})."
                               " Try again, or another GPU type")
        sleep(poll_s)


def _seconds_since(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return max((datetime.now(datetime.fromisoformat(stamp).tzinfo) - datetime.fromisoformat(stamp))
                   .total_seconds(), 0.0)
    except ValueError:
        return None


def usd_so_far(pod: Pod, usd_per_hour: float | None = None) -> float:
    """Uptime x rate. A pod not yet running (no uptime) counts from its creation: RunPod bills it already."""
    seconds = pod.uptime_s
    if seconds is None and pod.status in LIVE_STATUSES:
        seconds = _seconds_since(pod.created_at)
    rate = pod.usd_per_hour or usd_per_hour or 0.0
    return (seconds or 0) * rate / 3600


def cost_so_far(db: sqlite_utils.Database, client: RunpodClient, pod_id: str) -> float:
    """The pod's cost so far, written to its row (never lowered); the row's figure once RunPod forgot it."""
    row = records.row_of(db, pod_id)
    pod = client.get_pod(pod_id)
    if pod is None:
        return row.total_usd if row else 0.0
    usd = usd_so_far(pod, row.usd_per_hour if row else None)
    if row is not None:
        records.set_cost(db, row.id, usd)
        records.set_state(db, row.id, records.STATE_OF.get(pod.status, row.state))
        usd = max(usd, row.total_usd)
    return usd


def terminate_and_confirm(db: sqlite_utils.Database, client: RunpodClient, pod_id: str, *,
                          final_state: str = "terminated", error: str | None = None, timeout_s: float = 120.0,
                          poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                          clock: Callable[[], float] = time.monotonic) -> float:
    """Terminate the pod and wait until RunPod says it is gone (404, or TERMINATED); return its final cost.

    The final cost is the larger of RunPod's bill for the pod (which lags) and uptime x rate; it goes into the
    pod's row, where `bizsent costs` and the summary read it. Raises if RunPod never confirms: then the pod may
    still be billing, and the line says how to check.
    """
    row = records.row_of(db, pod_id)
    before = client.get_pod(pod_id)
    estimate = usd_so_far(before, row.usd_per_hour if row else None) if before else 0.0
    if before is not None:
        client.action(pod_id, "terminate")
    deadline = clock() + timeout_s
    while True:
        pod = client.get_pod(pod_id)
        if pod is None or pod.status == "TERMINATED":
            break
        if clock() >= deadline:
            raise BizsentError(f"RunPod has not confirmed that pod {pod_id} is gone (still {pod.status}); it may"
                               " still be billing: run `bizsent pods list` and `bizsent pods terminate "
                               f"{pod_id}`")
        sleep(poll_s)
    try:
        billed = client.pod_billing_usd(pod_id)
    except RunpodError as exc:
        log.info("no bill for pod %s yet: %s", pod_id, exc)
        billed = 0.0
    usd = max(estimate, billed, row.total_usd if row else 0.0)
    if row is None and before is not None:  # an orphan: what it cost is money spent, counted like any pod's
        records.insert_found(db, pod_id, before.name, before.gpu, before.usd_per_hour)
        row = records.row_of(db, pod_id)
    if row is not None:
        records.finish(db, row.id, final_state, usd, error)
    log.info("pod %s terminated; cost $%.4f", pod_id, usd)
    return usd
