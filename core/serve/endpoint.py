"""Calling a deployed serverless endpoint (`bizsent predict --endpoint ID`) through RunPod's queue API.

POST {serverless_base}/v2/{ID}/runsync?wait=MS with {"input": {...}} answers {id, status, output, executionTime,
delayTime}. A job that is not finished when runsync returns (IN_QUEUE, IN_PROGRESS) is polled at
/v2/{ID}/status/{job}; one with no answer after serverless.max_wait_s is cancelled (/v2/{ID}/cancel/{job}) so it
cannot run, and bill, later. The key (RUNPOD_API_KEY) goes only in the Authorization header to that host.
Every failure is one BizsentError line.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from bizsent.core.config import ServerlessSettings
from bizsent.core.errors import BizsentError
from bizsent.core.serve.request import MAX_IMAGE_BYTES

ENDPOINT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PENDING = ("IN_QUEUE", "IN_PROGRESS")


@dataclass(frozen=True, slots=True)
class Estimate:
    posts: int
    usd: float
    formula: str


@dataclass(frozen=True, slots=True)
class Answer:
    label: str
    probabilities: dict[str, float]
    latency_ms: float | None
    execution_s: float  # what RunPod reports the job ran (billed time, less start-up and idle)


def estimate(cfg: ServerlessSettings, posts: int) -> Estimate:
    """What sending `posts` posts one by one costs at most from a cold endpoint (a warm one skips the start)."""
    seconds = posts * cfg.s_per_post + cfg.cold_start_s
    return Estimate(posts, seconds * cfg.usd_per_s,
                    f"({posts} posts x {cfg.s_per_post:g} s + {cfg.cold_start_s:g} s start) x ${cfg.usd_per_s:g}/s")


def check_endpoint_id(endpoint: str) -> str:
    if not ENDPOINT_ID.fullmatch(endpoint):
        raise BizsentError(f"{endpoint!r} is not a RunPod endpoint ID; copy the ID from the endpoint's page in the "
                           "RunPod console (letters and digits)")
    return endpoint


def job_input(text: str, image_path: str | Path, subject: str = "") -> dict[str, str]:
    """The worker's input for a post: its text and its image file's bytes as base64 (the image as stored, so the
    worker prepares it exactly as local scoring does)."""
    data = Path(image_path).read_bytes()
    if len(data) > MAX_IMAGE_BYTES:
        raise BizsentError(f"image {image_path} is larger than {MAX_IMAGE_BYTES // 2**20} MiB, the endpoint's limit")
    return {"text": text, "subject": subject, "image": base64.b64encode(data).decode("ascii")}


def _error_line(error: Any) -> str:
    """RunPod's error field: the worker's own line, or the SDK's JSON report of an unexpected exception."""
    if isinstance(error, str):
        try:
            report = json.loads(error)
        except json.JSONDecodeError:
            return error.strip().splitlines()[0] if error.strip() else "no message"
        error = report
    if isinstance(error, dict) and "error_message" in error:
        kind = str(error.get("error_type", "")).removeprefix("<class '").removesuffix("'>")
        return f"{kind}: {error['error_message']}".strip(": ")
    return str(error)


class EndpointClient:
    def __init__(self, base: str, endpoint: str, key: str, cfg: ServerlessSettings,
                 client: httpx.Client | None = None) -> None:
        from bizsent.core.secure import check_secret_url

        base = check_secret_url(base, "RUNPOD_API_KEY", "runpod.serverless_base")
        self.url = f"{base.rstrip('/')}/v2/{check_endpoint_id(endpoint)}"
        self.endpoint = endpoint
        self.cfg = cfg
        self.http = client or httpx.Client(headers={"Authorization": f"Bearer {key}"},
                                           timeout=httpx.Timeout(self.answer_within_s, connect=10))

    @property
    def answer_within_s(self) -> float:
        """How long one request waits for an answer: runsync holds it up to serverless.wait_s, plus a margin for
        the network (as long again, at most 30 s)."""
        return self.cfg.wait_s + min(30.0, self.cfg.wait_s)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        try:
            response = self.http.request(method, f"{self.url}/{path}", json=body)
        except httpx.TimeoutException:
            raise BizsentError(f"RunPod gave no answer for endpoint {self.endpoint} within {self.answer_within_s:g} s"
                               " (serverless.wait_s and a margin); the job may still run (see the endpoint's Requests"
                               " tab)") from None
        except httpx.HTTPError as exc:
            raise BizsentError(f"cannot reach RunPod at {self.url} ({type(exc).__name__}); check the network and "
                               "runpod.serverless_base") from None
        status = response.status_code
        if status in (401, 403):
            raise BizsentError(f"RunPod refused the API key (HTTP {status}); check RUNPOD_API_KEY and that it may "
                               "use serverless endpoints")
        if status == 404:
            raise BizsentError(f"RunPod knows no endpoint {self.endpoint} (HTTP 404); check the ID in the console")
        if status == 429:
            raise BizsentError("RunPod is rate-limiting this key (HTTP 429); wait a minute and send fewer posts")
        if status >= 500:
            raise BizsentError(f"RunPod answered HTTP {status} (a server problem); try again later")
        if status >= 400:
            raise BizsentError(f"RunPod refused the request (HTTP {status}): {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise BizsentError(f"RunPod answered HTTP {status} with something that is not JSON") from None

    def predict(self, payload: dict[str, str]) -> Answer:
        """One post through runsync, polling the job while it is queued or running, up to max_wait_s."""
        deadline = time.monotonic() + self.cfg.max_wait_s
        job = self._call("POST", f"runsync?wait={int(self.cfg.wait_s * 1000)}", {"input": payload})
        while job.get("status") in PENDING:
            if time.monotonic() >= deadline:
                done = ("so it was cancelled" if self._cancel(job.get("id"))
                        else "and cancelling it failed: cancel it in the console, or it may still run and bill")
                raise BizsentError(f"job {job.get('id')} was still {job.get('status')} after "
                                   f"{self.cfg.max_wait_s:g} s, {done}; no worker may be free (check the "
                                   "endpoint's workers and GPU availability) or raise serverless.max_wait_s")
            time.sleep(self.cfg.poll_s)
            job = self._call("GET", f"status/{job.get('id')}")
        return self._answer(job)

    def _cancel(self, job_id: Any) -> bool:
        try:
            self._call("POST", f"cancel/{job_id}")
        except BizsentError:
            return False
        return True

    def _answer(self, job: dict[str, Any]) -> Answer:
        status = job.get("status")
        if status != "COMPLETED":
            why = _error_line(job["error"]) if job.get("error") else "no error message"
            raise BizsentError(f"endpoint {self.endpoint} job {job.get('id')} ended {status}: {why}")
        output = job.get("output")
        if not isinstance(output, dict) or "label" not in output or "probabilities" not in output:
            raise BizsentError(f"endpoint {self.endpoint} answered {str(output)[:120]!r}, not a bizsent prediction;"
                               " is the endpoint running the bizsent image?")
        return Answer(output["label"], output["probabilities"], output.get("latency_ms"),
                      float(job.get("executionTime") or 0) / 1000)
