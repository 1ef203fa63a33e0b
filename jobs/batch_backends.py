"""The two providers' Batch APIs behind one small interface, so jobs.batches has a single submit/collect flow.

OpenAI: JSONL file upload + `/v1/batches` (output and error files, matched by custom_id).
Gemini: `batches.create` with inlined requests (the ledger key in each request's metadata), polled with
`batches.get`; the answers come back inline in the finished job, in request order.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from bizsent.core.config import Settings, secret
from bizsent.core.errors import BizsentError
from bizsent.core.label.labelers.base import Outcome, Request, provider_settings

# A remote job in one of these states will not change any more.
OPENAI_FINISHED = ("completed", "failed", "expired", "cancelled")
GEMINI_FINISHED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
                   "JOB_STATE_PARTIALLY_SUCCEEDED")


@dataclass(frozen=True, slots=True)
class Result:
    body: dict[str, Any] | None  # the provider's response body, None when the request failed remotely
    error: str | None = None


@dataclass(slots=True)
class Poll:
    state: str  # the provider's own word for the job's state
    finished: bool
    results: dict[str, Result] = field(default_factory=dict)  # ledger key -> result (finished jobs only)


class Backend(Protocol):
    max_bytes: int  # one remote job's input size limit (with a margin)
    max_requests: int

    def payload(self, request: Request, model: str) -> tuple[Any, int]: ...

    def send(self, payloads: list[Any], model: str, job_id: int) -> str: ...

    def poll(self, remote_id: str, keys: list[str]) -> Poll: ...

    def outcome(self, body: dict[str, Any]) -> Outcome: ...

    def cancel(self, remote_id: str) -> None: ...


class OpenAIBatches:
    max_bytes = 150 * 1024 * 1024  # OpenAI accepts 200 MB per batch file; stay well below
    max_requests = 40_000  # and 50,000 requests per batch

    def __init__(self, settings: Settings) -> None:
        import openai

        self.conf = provider_settings(settings, "openai")
        self.client = openai.OpenAI(api_key=secret("openai"), base_url=self.conf.base_url, max_retries=3)

    def payload(self, request: Request, model: str) -> tuple[bytes, int]:
        from bizsent.core.label.labelers.openai_chat import request_body

        line = {"custom_id": request.key, "method": "POST", "url": "/v1/chat/completions",
                "body": request_body(request, model, self.conf)}
        data = (json.dumps(line) + "\n").encode()
        return data, len(data)

    def send(self, payloads: list[bytes], model: str, job_id: int) -> str:
        upload = self.client.files.create(file=("batch.jsonl", io.BytesIO(b"".join(payloads))), purpose="batch")
        created = self.client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                             completion_window="24h", metadata={"bizsent_job": str(job_id)})
        return created.id

    def poll(self, remote_id: str, keys: list[str]) -> Poll:
        remote = self.client.batches.retrieve(remote_id)
        if remote.status not in OPENAI_FINISHED:
            return Poll(remote.status, False)
        results = {}
        for file_id in (remote.output_file_id, remote.error_file_id):
            if not file_id:
                continue
            for raw in self.client.files.content(file_id).text.splitlines():
                if not raw.strip():
                    continue
                line = json.loads(raw)
                body = (line.get("response") or {}).get("body")
                error = None if body is not None else json.dumps(line.get("error"))[:300]
                results[line["custom_id"]] = Result(body, error)
        return Poll(remote.status, True, results)

    def outcome(self, body: dict[str, Any]) -> Outcome:
        from bizsent.core.label.labelers.openai_chat import outcome_of_body

        return outcome_of_body(body)

    def cancel(self, remote_id: str) -> None:
        self.client.batches.cancel(remote_id)


class GeminiBatches:
    # Inlined requests must stay under 20 MB per batch job; larger runs are split into several jobs.
    max_bytes = 15 * 1024 * 1024
    max_requests = 5_000

    def __init__(self, settings: Settings) -> None:
        from google import genai
        from google.genai import types

        self.conf = provider_settings(settings, "gemini")
        self.client = genai.Client(api_key=secret("gemini"), http_options=types.HttpOptions(
            base_url=self.conf.base_url))

    def payload(self, request: Request, model: str) -> tuple[Any, int]:
        from bizsent.core.label.labelers.gemini import inlined_request
        from bizsent.core.labels import PROMPT_RULES

        size = (len(request.jpeg) * 4 // 3 + len(request.text) + len(PROMPT_RULES) + 2048
                + sum(len(e.image_url) + len(e.text) + 300 for e in request.examples))
        return inlined_request(request, model, getattr(self.conf, "thinking_budget", None)), size

    def send(self, payloads: list[Any], model: str, job_id: int) -> str:
        job = self.client.batches.create(model=model, src=payloads, config={"display_name": f"bizsent-job-{job_id}"})
        if not job.name:
            raise BizsentError("gemini accepted the batch but returned no job name; see `bizsent batches list`")
        return job.name

    def poll(self, remote_id: str, keys: list[str]) -> Poll:
        job = self.client.batches.get(name=remote_id)
        state = job.state.value if job.state is not None else "JOB_STATE_UNSPECIFIED"
        if state not in GEMINI_FINISHED:
            return Poll(state, False)
        results = {}
        answers = (job.dest.inlined_responses if job.dest else None) or []
        for index, answer in enumerate(answers):
            # The metadata echo names the request; request order is the fallback the API also guarantees.
            key = (answer.metadata or {}).get("key") or (keys[index] if index < len(keys) else None)
            if key is None:
                continue
            if answer.response is None:
                error = answer.error
                reason = f"{error.code}: {error.message}" if error else "no response"
                results[key] = Result(None, reason[:300])
                continue
            results[key] = Result(json.loads(answer.response.model_dump_json(
                exclude_none=True, exclude={"sdk_http_response", "parsed"})))
        return Poll(state, True, results)

    def outcome(self, body: dict[str, Any]) -> Outcome:
        from bizsent.core.label.labelers.gemini import outcome_of_response

        return outcome_of_response(body)

    def cancel(self, remote_id: str) -> None:
        self.client.batches.cancel(name=remote_id)


def backend(settings: Settings, provider: str) -> Backend:
    if provider == "openai":
        return OpenAIBatches(settings)
    if provider == "gemini":
        return GeminiBatches(settings)
    raise BizsentError(f"{provider} has no batch API; run it live (without --batch)")
