"""OpenAI (and any OpenAI-compatible server) through the official SDK's structured outputs.

`chat.completions.parse(response_format=LabelAnswer)` sends the pydantic schema as a strict
json_schema; we call it through `with_raw_response` to keep the headers (rate-limit adaptation)
and the raw body (saved for every ledger row, even when parsing fails).
"""

from __future__ import annotations

import json
from typing import Any

import openai
from bizsent.core.label.labelers.base import (
    KEY_HEADER,
    LabelerError,
    Outcome,
    QuotaExhausted,
    Request,
    Transient,
    host_of,
    reason_of,
    retry_after,
    unreachable,
)
from bizsent.core.labels import PROMPT_RULES, LabelAnswer, data_url
from bizsent.core.sections import ProviderSettings
from pydantic import ValidationError


def messages(request: Request, detail: str) -> list[dict[str, Any]]:
    """System rules, few-shot pairs (user image+text -> assistant JSON), then the post itself."""
    out: list[dict[str, Any]] = [{"role": "system", "content": PROMPT_RULES}]
    for ex in request.examples:
        out.append({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": ex.image_url, "detail": detail}},
            {"type": "text", "text": ex.text},
        ]})
        out.append({"role": "assistant", "content": ex.answer.model_dump_json()})
    out.append({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(request.jpeg), "detail": detail}},
        {"type": "text", "text": request.text},
    ]})
    return out


def reasoning(conf: ProviderSettings) -> dict[str, str]:
    """The reasoning_effort to send, if any ("default" leaves it to the model or server)."""
    effort = getattr(conf, "reasoning_effort", "default")
    return {} if effort == "default" else {"reasoning_effort": effort}


def request_body(request: Request, model: str, conf: ProviderSettings) -> dict[str, Any]:
    """The same request as a plain JSON body (what a Batch API JSONL line carries)."""
    from openai.lib._parsing._completions import type_to_response_format_param

    return {"model": model, "messages": messages(request, conf.detail),
            "response_format": type_to_response_format_param(LabelAnswer), **reasoning(conf)}


def outcome_of_body(body: dict[str, Any], headers: dict[str, str] | None = None) -> Outcome:
    """Judge a chat.completion JSON body (live response or one Batch API output line)."""
    from bizsent.core.label.labelers.base import judge_content

    usage = body.get("usage") or {}
    tokens_in, tokens_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    choices = body.get("choices") or []
    message = (choices[0].get("message") or {}) if choices else {}
    if message.get("refusal"):
        return Outcome(None, tokens_in, tokens_out, body, f"refusal: {message['refusal'][:200]}", headers or {})
    if choices and choices[0].get("finish_reason") == "length":
        return Outcome(None, tokens_in, tokens_out, body, "answer cut off (max tokens)", headers or {})
    answer, error = judge_content(message.get("content"))
    return Outcome(answer, tokens_in, tokens_out, body, error, headers or {})


class OpenAIChatLabeler:
    def __init__(self, conf: ProviderSettings, model: str, api_key: str, provider: str = "openai",
                 timeout_s: float = 60.0) -> None:
        self.provider = provider
        self.model = model
        self.detail = conf.detail
        self.reasoning = reasoning(conf)
        self.base_url = conf.base_url
        self.timeout_s = timeout_s
        # Retries are ours (tenacity, ledger row per attempt), so the SDK must not retry behind our back.
        self.client = openai.AsyncOpenAI(api_key=api_key, base_url=conf.base_url, max_retries=0, timeout=timeout_s)

    async def label(self, request: Request) -> Outcome:
        try:
            raw = await self.client.chat.completions.with_raw_response.parse(
                model=self.model, messages=messages(request, self.detail), response_format=LabelAnswer,
                extra_headers={KEY_HEADER: request.key}, **self.reasoning,
            )
        except openai.APIStatusError as exc:
            return classify(exc, self.provider, self.model, self.base_url)
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            # Refused before sending (never billed) or no answer after sending (fate unknown: maybe billed).
            raise unreachable(exc, self.base_url, self.timeout_s) from None
        headers = dict(raw.headers)
        try:
            body = json.loads(raw.text)
        except ValueError:
            return Outcome(None, raw=raw.text, error="response body is not JSON", headers=headers)
        try:
            raw.parse()
        except ValidationError as exc:
            outcome = outcome_of_body(body, headers)
            outcome.answer, outcome.error = None, outcome.error or reason_of(exc)
            return outcome
        except openai.OpenAIError as exc:  # length / content-filter finish reasons
            outcome = outcome_of_body(body, headers)
            outcome.answer, outcome.error = None, f"no answer: {type(exc).__name__}"
            return outcome
        return outcome_of_body(body, headers)

    async def aclose(self) -> None:
        await self.client.close()


BILLING_URL = "https://platform.openai.com/settings/organization/billing"


def classify(exc: openai.APIStatusError, provider: str, model: str, base_url: str = "") -> Outcome:
    """Raise for errors that retrying (Transient) or nothing (LabelerError) fixes; other 4xx become an Outcome."""
    status = exc.status_code
    if status == 429 and "insufficient_quota" in (str(getattr(exc, "code", "")), str(getattr(exc, "type", ""))):
        # Out of credit, not a rate limit: retrying only repeats it.
        if provider == "openai":
            raise QuotaExhausted(f"OpenAI says insufficient_quota: check billing at {BILLING_URL}")
        raise QuotaExhausted(f"the server at {host_of(base_url)} says insufficient_quota: check that account's"
                             " credit or billing")
    if status in (408, 409, 429) or status >= 500:
        raise Transient(f"HTTP {status}", retry_after(exc.response.headers))
    if status in (401, 403):
        raise LabelerError(f"{provider} rejected the API key (HTTP {status}); check the key in your environment")
    if status == 404:
        raise LabelerError(f"{provider} does not know model {model!r} (HTTP 404); set another model in config.toml")
    return Outcome(None, raw=exc.body, error=f"HTTP {status}: {str(exc)[:200]}")
