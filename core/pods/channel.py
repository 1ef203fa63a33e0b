"""The laptop's side of the in-pod agent (core/pods/agent/), through RunPod's HTTP proxy.

Uploads go in chunks, each with its sha256; a cut request (proxies end long or stalled ones) is retried from the
offset the agent reports, so a verified chunk is never sent twice, and the whole file is verified at the end.
Metric events come back as the training engine's MetricEvent, for the caller to record like a local run's; the
task's result (an adapter, scores, or both) comes back as a checksummed tar, resumed with a Range request after a
cut and untarred safely.
"""

from __future__ import annotations

import hashlib
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx
from bizsent.core.errors import BizsentError
from bizsent.core.model.events import MetricEvent
from bizsent.core.pods.agent.files import file_sha256, safe_extract
from bizsent.core.pods.brake import stop_failure
from bizsent.core.pods.payload import Payload

CHUNK_BYTES = 8 * 1024 * 1024
# What a proxy says while the pod boots or when the agent is briefly unreachable (Cloudflare's 52x included).
TRANSIENT = {408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524}
EVENT_FIELDS = {f.name for f in fields(MetricEvent)}


def agent_url(proxy_url: str, pod_id: str, port: int) -> str:
    """The agent's base URL from the proxy template (runpod.proxy_url, with {pod_id} and {port})."""
    return proxy_url.format(pod_id=pod_id, port=port).rstrip("/")


@dataclass(frozen=True, slots=True)
class AgentHealth:
    state: str  # waiting-upload | installing | training (the train task) | running (a scoring task) | done | failed
    step: int | None
    error: str | None
    uptime_s: float
    adapter_sha256: str | None
    adapter_bytes: int | None
    collected: bool
    watchdog: str | None  # "stop: <reason>" once the watchdog has acted; "stop failed (<why>): <reason>" if RunPod
    # refused or never answered its call (then the pod still bills: the laptop must stop it)
    stop_failed: str | None = None  # the watchdog's stop call failed: the laptop stops the pod (core.pods.brake)
    gpu: dict | None = None  # the agent's GPU check: host, checks passed, the torch it trains with


def _watchdog_line(fired: dict | None) -> str | None:
    if not fired:
        return None
    if fired.get("failed"):
        return f"{fired['action']} failed ({fired['failed']}): {fired['reason']}"
    return f"{fired['action']}: {fired['reason']}"


class AgentChannel:
    """One run's connection to its pod's agent; every call carries the run token."""

    def __init__(self, base_url: str, token: str, *, retries: int = 6, backoff_s: float = 1.0,
                 timeout_s: float = 90.0, client: httpx.Client | None = None) -> None:
        from bizsent.core.secure import check_secret_url

        check_secret_url(base_url, "the run token", "runpod.proxy_url")
        self.retries, self.backoff_s = retries, backoff_s
        self.http = client or httpx.Client(timeout=httpx.Timeout(timeout_s, connect=15.0))
        self.http.base_url = httpx.URL(base_url.rstrip("/") + "/")
        self.http.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AgentChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, failures: int, what: str, why: str) -> None:
        if failures > self.retries:
            raise BizsentError(f"the pod's agent did not answer {what} after {self.retries} retries ({why}); "
                               "check the pod with `bizsent pods`")
        time.sleep(min(self.backoff_s * 2 ** (failures - 1), 30.0))

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        """The agent's answer, retried through cuts and proxy errors; any other status is one clear error."""
        failures = 0
        while True:
            try:
                resp = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                failures += 1
                self._wait(failures, f"{method} /{path}", type(exc).__name__)
                continue
            if resp.status_code in ok:
                return resp
            if resp.status_code == 401:
                raise BizsentError("the pod's agent refused the run token (HTTP 401); the pod belongs to another run")
            if resp.status_code not in TRANSIENT:
                raise BizsentError(f"the pod's agent answered {method} /{path} with HTTP {resp.status_code}: "
                                   f"{_reason(resp)}")
            failures += 1
            self._wait(failures, f"{method} /{path}", f"HTTP {resp.status_code}")

    def health(self) -> AgentHealth:
        h = self.request("GET", "health").json()
        adapter, fired = h.get("adapter") or {}, h.get("watchdog")
        return AgentHealth(h["state"], h.get("step"), h.get("error"), float(h.get("uptime_s", 0)),
                           adapter.get("sha256"), adapter.get("bytes"), bool(h.get("collected")),
                           _watchdog_line(fired if isinstance(fired, dict) else None), stop_failure(h), h.get("gpu"))

    def wait_ready(self, timeout_s: float, poll_s: float = 5.0,
                   check: Callable[[], None] = lambda: None) -> AgentHealth:
        """Health, once the agent answers (a booting pod's proxy answers 502 or nothing for a while). `check` runs
        on every poll and raises to stop waiting (the job was cancelled)."""
        deadline = time.monotonic() + timeout_s
        while True:
            check()
            try:
                resp = self.http.get("health")
                if resp.status_code == 200:
                    return self.health()
                if resp.status_code == 401:
                    raise BizsentError("the pod's agent refused the run token (HTTP 401)")
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise BizsentError(f"the pod's agent did not come up within {timeout_s:.0f} s; see the pod's log")
            time.sleep(poll_s)

    def upload_status(self, name: str) -> dict:
        return self.request("GET", f"upload/{name}").json()

    def upload(self, path: Path, name: str, *, chunk_bytes: int = CHUNK_BYTES) -> str:
        """Send `path` as upload `name` from where the agent has it, chunk by chunk; returns the verified sha256."""
        path = Path(path)
        sha, size = file_sha256(path), path.stat().st_size
        status = self.upload_status(name)
        offset = status["bytes"]
        if (status["done"] and status["sha256"] != sha) or offset > size:
            raise BizsentError(f"the pod already holds a different {name}; launch a new pod for this run")
        with path.open("rb") as fh:
            while offset < size and not status["done"]:
                fh.seek(offset)
                chunk = fh.read(chunk_bytes)
                # A cut after the agent wrote the chunk comes back as 409 with its new length: go on from there.
                resp = self.request("PUT", f"upload/{name}", ok=(200, 409), params={"offset": offset},
                                    content=chunk, headers={"X-Chunk-Sha256": hashlib.sha256(chunk).hexdigest()})
                status = {"done": False, **resp.json()}
                if "bytes" not in status:
                    raise BizsentError(f"the pod's agent refused {name}: {_reason(resp)}")
                offset = status["bytes"]
        self.request("POST", f"upload/{name}/done", json={"sha256": sha})
        return sha

    def upload_payload(self, payload: Payload, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        for item in payload.artifacts:
            self.upload(item.path, item.name, chunk_bytes=chunk_bytes)

    def start(self) -> None:
        """Begin install and training; a retry whose first try started it already counts as started."""
        resp = self.request("POST", "start", ok=(200, 409))
        if resp.status_code == 409 and self.health().state == "waiting-upload":
            raise BizsentError(f"the pod cannot start training: {_reason(resp)}")

    def logs(self, tail: int = 100) -> list[str]:
        return self.request("GET", "logs", params={"tail": tail}).json()["lines"]

    def metrics(self, after: int = 0) -> tuple[list[MetricEvent], int]:
        """Metric events after the first `after` lines of the pod's events.jsonl, and the count to ask after next."""
        body = self.request("GET", "metrics", params={"after": after}).json()
        events = []
        for raw in body["events"]:
            try:
                events.append(MetricEvent(**{k: v for k, v in raw.items() if k in EVENT_FIELDS}))
            except TypeError:
                continue
        return events, body["next"]

    def download_result(self, dest: Path, what: str) -> str:
        """Fetch the task's result tar into `dest` (resuming after a cut), verify its sha256, untar it; returns the
        sha256. `what` names the result in messages ("adapter", "scores"). The agent serves every task's result at
        its /adapter route (named when training was its only task).

        Mark it collected (`mark_collected`) only once it is stored: the watchdog then terminates the pod."""
        health = self.health()
        expected = health.adapter_sha256
        if expected is None:
            raise BizsentError(f"the pod has no {what} yet (state {health.state})")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.parent / f".{dest.name}-{expected[:16]}.tar.part"
        failures = 0
        while True:
            have = part.stat().st_size if part.exists() else 0
            try:
                with self.http.stream("GET", "adapter", headers={"Range": f"bytes={have}-"} if have else {}) as resp:
                    if resp.status_code == 416:
                        break
                    if resp.status_code not in (200, 206):
                        resp.read()
                        raise BizsentError(f"{what} download: HTTP {resp.status_code}: {_reason(resp)}")
                    if resp.headers.get("X-Sha256") != expected:
                        raise BizsentError(f"the pod's {what} changed during the download; download it again")
                    with part.open("ab" if resp.status_code == 206 else "wb") as fh:
                        for block in resp.iter_bytes():
                            fh.write(block)
                break
            except httpx.TransportError as exc:
                failures += 1
                self._wait(failures, "GET /adapter", type(exc).__name__)
        if file_sha256(part) != expected:
            part.unlink()
            raise BizsentError(f"the downloaded {what} does not match its sha256; download it again")
        try:
            safe_extract(part, dest)
        except tarfile.TarError as exc:
            raise BizsentError(f"the pod's {what} tar was refused: {exc}") from None
        part.unlink()
        return expected

    def mark_collected(self, sha256: str) -> None:
        self.request("POST", "adapter/collected", json={"sha256": sha256})


def _reason(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error") or resp.text[:200])
    except ValueError:
        return resp.text[:200] or "no detail"
