"""Gemini: the google-genai SDK live, its Batch API with inlined requests in bulk (the ledger key in each
request's metadata, answers inline in the finished job in request order)."""

from __future__ import annotations

import json
import math
from typing import Any

from bizsent.core.errors import BizsentError
from bizsent.core.label.batching import Poll, Result
from bizsent.core.label.labelers.base import Labeler, Outcome, Request
from bizsent.core.label.providers.base import Provider, register
from bizsent.core.sections import ProviderSettings
from pydantic import Field

# A remote job in one of these states will not change any more.
FINISHED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
            "JOB_STATE_PARTIALLY_SUCCEEDED")


class GeminiSettings(ProviderSettings):
    model: str = "gemini-2.5-flash-lite"
    base_url: str = "https://generativelanguage.googleapis.com"
    requests_per_minute: int = Field(1000, ge=1)
    # Thinking tokens are billed as output: 0 switches thinking off (2.5 Flash), -1 lets the model decide.
    thinking_budget: int = Field(0, ge=-1)


class Gemini(Provider):
    name = "gemini"
    settings = GeminiSettings
    secret_env = "GEMINI_API_KEY"
    mark = "G"
    # From the November 2026 planning facts of issue 8 (not re-verified against the price page).
    prices = {"gemini-2.5-flash-lite": {"input_per_mtok": 0.10, "output_per_mtok": 0.40, "batch_discount": 0.5},
              "gemini-2.5-flash": {"input_per_mtok": 0.30, "output_per_mtok": 2.50, "batch_discount": 0.5}}
    supports_batch = True

    def labeler(self, conf: ProviderSettings, model: str, timeout_s: float) -> Labeler:
        from bizsent.core.label.labelers.gemini import GeminiLabeler

        return GeminiLabeler(conf, model, self.api_key(conf), timeout_s)

    def batches(self, conf: ProviderSettings) -> GeminiBatches:
        return GeminiBatches(conf, self.api_key(conf))

    def outcome_of_raw(self, body: Any) -> Outcome:
        from bizsent.core.label.labelers.gemini import outcome_of_response

        return outcome_of_response(body if isinstance(body, dict) else {})

    def image_tokens(self, detail: str, width: int, height: int) -> int:
        """258 per 768px tile; one tile for an image up to 384px a side."""
        if width <= 384 and height <= 384:
            return 258
        return 258 * math.ceil(width / 768) * math.ceil(height / 768)


class GeminiBatches:
    # Inlined requests must stay under 20 MB per batch job; larger runs are split into several jobs.
    max_bytes = 15 * 1024 * 1024
    max_requests = 5_000

    def __init__(self, conf: ProviderSettings, api_key: str) -> None:
        from google import genai
        from google.genai import types

        self.conf = conf
        self.client = genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=conf.base_url))

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
        if state not in FINISHED:
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


register(Gemini())
