"""OpenAI: chat completions with structured outputs live, the Batch API (JSONL upload + /v1/batches) in bulk."""

from __future__ import annotations

import io
import json
import math
from typing import Literal

from bizsent.core.label.batching import Poll, Result
from bizsent.core.label.labelers.base import Labeler, Outcome, Request
from bizsent.core.label.providers.base import Provider, register
from bizsent.core.sections import ProviderSettings

# "default" sends nothing (the model's own default); the rest are OpenAI's reasoning_effort values.
ReasoningEffort = Literal["default", "none", "minimal", "low", "medium", "high"]
# A remote job in one of these states will not change any more.
FINISHED = ("completed", "failed", "expired", "cancelled")


class OpenAISettings(ProviderSettings):
    model: str = "gpt-5-mini"
    base_url: str = "https://api.openai.com/v1"
    # Reasoning tokens are billed as output: "minimal" keeps a label answer near its ~60 tokens.
    reasoning_effort: ReasoningEffort = "minimal"


class OpenAI(Provider):
    name = "openai"
    settings = OpenAISettings
    secret_env = "OPENAI_API_KEY"
    mark = "O"
    # From the November 2026 planning facts of issue 8 (not re-verified against the price page).
    prices = {"gpt-5-mini": {"input_per_mtok": 0.25, "output_per_mtok": 2.00, "batch_discount": 0.5}}
    supports_batch = True

    def labeler(self, conf: ProviderSettings, model: str, timeout_s: float) -> Labeler:
        from bizsent.core.label.labelers.openai_chat import OpenAIChatLabeler

        return OpenAIChatLabeler(conf, model, self.api_key(conf), provider=self.name, timeout_s=timeout_s)

    def batches(self, conf: ProviderSettings) -> OpenAIBatches:
        return OpenAIBatches(conf, self.api_key(conf))

    def image_tokens(self, detail: str, width: int, height: int) -> int:
        """85 at low detail, else 85 + 170 per 512px tile of the image scaled into 2048 and then 768 px."""
        if detail == "low":
            return 85
        scale = min(1.0, 2048 / max(width, height))
        w, h = width * scale, height * scale
        scale = min(1.0, 768 / min(w, h))
        w, h = w * scale, h * scale
        return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


class OpenAIBatches:
    max_bytes = 150 * 1024 * 1024  # OpenAI accepts 200 MB per batch file; stay well below
    max_requests = 40_000  # and 50,000 requests per batch

    def __init__(self, conf: ProviderSettings, api_key: str) -> None:
        import openai

        self.conf = conf
        self.client = openai.OpenAI(api_key=api_key, base_url=conf.base_url, max_retries=3)

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
        if remote.status not in FINISHED:
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

    def outcome(self, body: dict) -> Outcome:
        from bizsent.core.label.labelers.openai_chat import outcome_of_body

        return outcome_of_body(body)

    def cancel(self, remote_id: str) -> None:
        self.client.batches.cancel(remote_id)


register(OpenAI())
