"""A small typed client for RunPod's REST API v2 (pods, actions, GPU catalog, pod billing, log streams).

Plain httpx, not the runpod SDK: the SDK pastes values into GraphQL unescaped, and REST v1 is gone (410).
Errors are RFC 9457 problem objects; each becomes one RunpodError line. 429 waits out Retry-After, 5xx and
lost connections are retried a few times, except a create: its fate is unknown then, and a second create
could start a second billing pod (launch looks the pod up by name instead).

The key (RUNPOD_API_KEY) lives only in this client's headers: never logged, stored, or sent to any host but
`api_base`, and never over plain http except to this machine.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from bizsent.core.config import SECRET_ENV, Settings, secret
from bizsent.core.errors import BizsentError
from bizsent.core.log import redact
from httpx_sse import SSEError, connect_sse

log = logging.getLogger("bizsent.pods")

RETRIES = 3
MAX_RETRY_AFTER_S = 60.0
# Capacity exhaustion is a 400 with only a human-readable detail (the OpenAPI file says so); these are its words.
CAPACITY_PHRASES = ("no longer any instances available", "could not be placed", "no instances available",
                    "not enough capacity", "insufficient capacity")
GONE_STATES = ("TERMINATED",)
# GET /v2/pods/{id}/logs takes `tail` 0..5000 (default 100) and answers 422 outside it (OpenAPI).
MAX_LOG_TAIL = 5000


class RunpodError(BizsentError):
    """A refusal from RunPod, as one line; `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class NoCapacity(RunpodError):
    """RunPod has no machine of the requested GPU type in that cloud right now."""


class KeyRefused(RunpodError):
    """RUNPOD_API_KEY is missing its rights (401/403)."""


class OutOfCredit(RunpodError):
    """402: the account's balance cannot pay for a pod; no other GPU will help."""


@dataclass(frozen=True, slots=True)
class Pod:
    """What bizsent reads of a pod (its env is left out: it holds the per-run token)."""

    id: str
    name: str
    status: str  # PROVISIONING | STARTING | RUNNING | EXITED | ERROR | TERMINATED
    gpu: str | None
    gpu_count: int
    cloud: str | None
    usd_per_hour: float  # RunPod's `cost`: the rate billed now (0 when stopped)
    uptime_s: int | None  # seconds since the container started; None unless RUNNING
    created_at: str | None
    started_at: str | None
    volume_gb: int | None = None  # its own volume (kept, and billed, while it is stopped); None: not reported

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pod:
        gpu = data.get("gpu") or {}
        runtime = data.get("runtime") or {}
        volume = ((data.get("mounts") or {}).get("persistent") or {}).get("size") or data.get("volumeInGb")
        return cls(id=str(data["id"]), name=str(data.get("name", "")), status=str(data.get("status", "")),
                   gpu=gpu.get("id"), gpu_count=int(gpu.get("count") or 1), cloud=data.get("cloud"),
                   usd_per_hour=float(data.get("cost") or 0.0), uptime_s=runtime.get("uptime"),
                   created_at=data.get("createdAt"), started_at=data.get("startedAt"),
                   volume_gb=int(volume) if volume else None)


@dataclass(frozen=True, slots=True)
class GpuOffer:
    """A GPU type of the catalog: list price per GPU-hour by cloud, and (when asked for) current pod stock."""

    id: str
    name: str
    memory_gb: int
    usd_per_hour: dict[str, float]  # cloud type -> price
    offered: dict[str, bool]  # cloud type -> does that cloud have this GPU at all
    availability: str | None  # NONE | LOW | MEDIUM | HIGH, for the cloud asked about

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GpuOffer:
        price = data.get("price") or {}
        return cls(id=str(data["id"]), name=str(data.get("name", data["id"])), memory_gb=int(data.get("memory", 0)),
                   usd_per_hour={"SECURE": float(price.get("secure", 0)),
                                 "COMMUNITY": float(price.get("community", 0))},
                   offered={"SECURE": bool(data.get("secure")), "COMMUNITY": bool(data.get("community"))},
                   availability=data.get("availability"))


@dataclass(frozen=True, slots=True)
class LogLine:
    id: str
    ts: str
    source: str  # container | system
    line: str


def check_base(api_base: str) -> str:
    """`api_base` without its trailing slash, refused if the key would travel over plain http off this machine."""
    from bizsent.core.secure import check_secret_url

    return check_secret_url(api_base, SECRET_ENV["runpod"], "runpod.api_base").rstrip("/")


def _problem(response: httpx.Response) -> tuple[str, str]:
    """(title, detail) of an RFC 9457 problem body, or of whatever else came back."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error", response.text.strip()[:200]
    if not isinstance(body, dict):
        return response.reason_phrase or "error", str(body)[:200]
    detail = str(body.get("detail") or "")
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        detail = f"{detail} ({'; '.join(str(e) for e in errors[:3])})".strip()
    return str(body.get("title") or response.reason_phrase or "error"), detail


def error_for(response: httpx.Response, what: str) -> RunpodError:
    """The one line for a refused request; the class says what the caller can do about it."""
    status = response.status_code
    title, detail = _problem(response)
    said = redact(f"{title} ({status}){': ' + detail if detail else ''}")
    if status in (401, 403):
        return KeyRefused(f"RunPod refused {what}: {said}; check {SECRET_ENV['runpod']} (a key with read/write "
                          "access to pods)", status, detail)
    if status == 402:
        return OutOfCredit(f"RunPod refused {what}: {said}; add credit to the RunPod account", status, detail)
    if status == 400 and any(p in detail.lower() for p in CAPACITY_PHRASES):
        return NoCapacity(f"RunPod has no capacity for {what}: {redact(detail)}", status, detail)
    return RunpodError(f"RunPod refused {what}: {said}", status, detail)


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        wait = float(response.headers.get("Retry-After", ""))
    except ValueError:
        wait = 2.0 ** attempt
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


class RunpodClient:
    """REST v2 calls with the user's key. One instance per command; `close` (or `with`) releases the pool."""

    def __init__(self, api_base: str, key: str, *, timeout_s: float = 30.0, retries: int = RETRIES,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api_base = check_base(api_base)
        self._http = httpx.Client(base_url=self.api_base, timeout=timeout_s, follow_redirects=False,
                                  headers={"Authorization": f"Bearer {key}", "Accept": "application/json"})
        self.timeout_s = timeout_s
        self._retries = retries
        self._sleep = sleep

    def __repr__(self) -> str:  # never the headers
        return f"RunpodClient({self.api_base!r})"

    def __enter__(self) -> RunpodClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, what: str, *, retry_unanswered: bool = True,
                 ok_404: bool = False, **kwargs: Any) -> httpx.Response | None:
        """Send one call; retry 429 after Retry-After, and 5xx or a lost connection when `retry_unanswered`.
        Waiting for an answer, retries of the unanswered included, lasts at most `timeout_s` (runpod.timeout_s)."""
        attempt = 0
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                response = self._http.request(method, path, timeout=max(deadline - time.monotonic(), 0.1), **kwargs)
            except httpx.TransportError as exc:
                if not retry_unanswered or attempt >= self._retries or deadline - time.monotonic() <= 2.0 ** attempt:
                    waited = (f" within {self.timeout_s:g} s (runpod.timeout_s)"
                              if isinstance(exc, httpx.TimeoutException) else "")
                    raise RunpodError(f"RunPod did not answer {what}{waited} ({type(exc).__name__}: "
                                      f"{redact(str(exc))}); check the network and {self.api_base}") from None
                log.info("RunPod %s %s: %s; retrying", method, path, type(exc).__name__)
            else:
                if response.status_code < 400:
                    return response
                if response.status_code == 404 and ok_404:
                    return None
                retryable = response.status_code == 429 or (response.status_code >= 500 and retry_unanswered)
                if not retryable or attempt >= self._retries:
                    raise error_for(response, what)
                log.info("RunPod %s %s: %s; retrying", method, path, response.status_code)
                self._sleep(_retry_after(response, attempt) if response.status_code == 429 else 2.0 ** attempt)
                attempt += 1
                deadline = time.monotonic() + self.timeout_s  # it answered: the next try gets the whole bound
                continue
            self._sleep(2.0 ** attempt)
            attempt += 1

    # pods

    def list_pods(self) -> list[Pod]:
        response = self._request("GET", "/v2/pods", "listing pods")
        assert response is not None
        return [Pod.from_json(p) for p in response.json().get("pods", [])]

    def get_pod(self, pod_id: str) -> Pod | None:
        """The pod, or None once RunPod no longer knows it (terminated pods disappear)."""
        response = self._request("GET", f"/v2/pods/{quote(pod_id, safe='')}", f"reading pod {pod_id}", ok_404=True)
        return None if response is None else Pod.from_json(response.json())

    def create_pod(self, body: dict[str, Any]) -> Pod:
        """POST /v2/pods. Not retried on 5xx or a lost connection: the pod may exist, and may be billing."""
        gpu = (body.get("gpu") or {}).get("id", "?")
        what = f"a pod with {gpu} ({body.get('cloud', 'SECURE')} cloud)"
        response = self._request("POST", "/v2/pods", what, retry_unanswered=False, json=body)
        assert response is not None
        return Pod.from_json(response.json())

    def patch_pod(self, pod_id: str, changes: dict[str, Any]) -> Pod:
        response = self._request("PATCH", f"/v2/pods/{quote(pod_id, safe='')}", f"changing pod {pod_id}",
                                 json=changes)
        assert response is not None
        return Pod.from_json(response.json())

    def delete_pod(self, pod_id: str) -> bool:
        """Terminate (DELETE); False if RunPod did not know the pod (already gone)."""
        return self._request("DELETE", f"/v2/pods/{quote(pod_id, safe='')}", f"terminating pod {pod_id}",
                             ok_404=True) is not None

    def action(self, pod_id: str, action: str) -> Pod | None:
        """start | stop | restart | terminate. The pod after it (None for terminate, or a pod already gone)."""
        if action not in ("start", "stop", "restart", "terminate"):
            raise BizsentError(f"unknown pod action {action!r}; use start, stop, restart or terminate")
        response = self._request("POST", f"/v2/pods/{quote(pod_id, safe='')}/action", f"{action} pod {pod_id}",
                                 ok_404=action == "terminate", json={"action": action})
        if response is None or response.status_code == 204 or not response.content:
            return None
        return Pod.from_json(response.json())

    # catalog and billing

    def gpu_types(self, cloud: str | None = None) -> list[GpuOffer]:
        """Every GPU type with its prices; with `cloud`, also its current pod stock in that cloud."""
        params = {"include": "AVAILABILITY", "product": "POD", "cloud": cloud} if cloud else {}
        response = self._request("GET", "/v2/catalog/gpus", "reading the GPU catalog", params=params)
        assert response is not None
        return [GpuOffer.from_json(g) for g in response.json().get("gpus", [])]

    def pod_billing_usd(self, pod_id: str, days: int = 30) -> float:
        """What RunPod has billed for the pod over the last `days` days (its records lag the meter)."""
        response = self._request("GET", "/v2/billing/pods", f"reading the bill of pod {pod_id}",
                                 params={"podId": pod_id, "bucketSize": "day", "lastN": days})
        assert response is not None
        totals = (response.json().get("metadata") or {}).get("totals") or {}
        return float(totals.get("totalAmount") or 0.0)

    # logs

    def logs(self, pod_id: str, *, source: str | None = None, tail: int | None = None, since: str | None = None,
             last_event_id: str | None = None) -> Iterator[LogLine]:
        """One Server-Sent Events connection to the pod's log stream, until the server closes it. `tail` is held
        to the range the API accepts."""
        if tail is not None:
            tail = min(max(tail, 0), MAX_LOG_TAIL)
        params: dict[str, Any] = {k: v for k, v in (("source", source), ("tail", tail), ("since", since))
                                  if v is not None}
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        path = f"/v2/pods/{quote(pod_id, safe='')}/logs"
        with connect_sse(self._http, "GET", path, params=params, headers=headers,
                         timeout=httpx.Timeout(30.0, read=None)) as events:
            if events.response.status_code >= 400:
                events.response.read()
                raise error_for(events.response, f"the logs of pod {pod_id}")
            try:
                for event in events.iter_sse():
                    if event.event not in ("", "message") or not event.data:
                        continue
                    try:
                        data = json.loads(event.data)
                    except ValueError:
                        data = {"line": event.data}
                    yield LogLine(id=event.id or str(data.get("ts", "")), ts=str(data.get("ts", "")),
                                  source=str(data.get("source", "container")), line=str(data.get("line", "")))
            except SSEError as exc:
                raise RunpodError(f"RunPod's log stream for pod {pod_id} is not an event stream ({exc})") from None

    def follow_logs(self, pod_id: str, *, source: str | None = None, tail: int | None = None,
                    until: Callable[[], bool] = lambda: False, reconnects: int = 20,
                    after: str | None = None) -> Iterator[LogLine]:
        """Follow the pod's logs across dropped connections: each reconnect resumes after the last event seen
        (Last-Event-ID; `after`: the last one an earlier process saw), and an event seen already is not yielded
        twice. Ends when the pod is gone or stopped, when `until()` is true, or after `reconnects` connections
        in a row that brought nothing new."""
        last_id: str | None = after
        seen: deque[str] = deque(maxlen=5000)
        fruitless = 0
        while not until():
            fresh = False
            try:
                for line in self.logs(pod_id, source=source, tail=None if last_id else tail, last_event_id=last_id):
                    if line.id and line.id in seen:
                        continue
                    seen.append(line.id)
                    last_id, fresh = line.id or last_id, True
                    yield line
                    if until():
                        return
            except (httpx.TransportError, httpx.StreamError) as exc:
                log.info("log stream of pod %s dropped (%s); resuming", pod_id, type(exc).__name__)
            except RunpodError as exc:
                if exc.status != 429 and exc.status < 500:  # a refusal (4xx): asking again gets the same answer
                    raise
                log.info("log stream of pod %s answered %s; resuming", pod_id, exc.status)
            pod = self.get_pod(pod_id)
            if pod is None or pod.status in ("EXITED", "TERMINATED", "ERROR"):
                return
            fruitless = 0 if fresh else fruitless + 1
            if fruitless > reconnects:
                raise RunpodError(f"RunPod's log stream for pod {pod_id} keeps closing with nothing new; try again")
            self._sleep(min(2.0 ** fruitless, 10.0) if fruitless else 0.2)


def client(settings: Settings, **kwargs: Any) -> RunpodClient:
    """A client for `runpod.api_base` with RUNPOD_API_KEY from the environment (one line if it is unset)."""
    base = check_base(settings.runpod.api_base)  # before the key is read: a refused address never sees it
    return RunpodClient(base, secret("runpod"), **{"timeout_s": settings.runpod.timeout_s, **kwargs})
