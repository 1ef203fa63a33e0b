"""Google Gemini through `google-genai`: JSON output constrained by the LabelAnswer schema, image as bytes.

The SDK's own retries are switched off (attempts=1): the runner retries, writing a ledger row per attempt.
"""

from __future__ import annotations

import json
from typing import Any

from bizsent.core.label.labelers.base import (
    KEY_HEADER,
    LabelerError,
    Outcome,
    QuotaExhausted,
    Request,
    Transient,
    judge_content,
    retry_after,
    unreachable,
)
from bizsent.core.labels import PROMPT_RULES, LabelAnswer
from bizsent.core.sections import ProviderSettings
from google import genai
from google.genai import errors, types

try:  # the async client uses aiohttp when it is installed, httpx otherwise
    import aiohttp

    _TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, TimeoutError)
except ImportError:  # pragma: no cover
    _TRANSPORT_ERRORS = (OSError, TimeoutError)


def contents(request: Request) -> list[types.Content]:
    """Few-shot pairs (user image+text -> model JSON), then the post: image first, then its text."""
    import base64

    out: list[types.Content] = []
    for ex in request.examples:
        jpeg = base64.b64decode(ex.image_url.split(",", 1)[1])
        out.append(types.Content(role="user", parts=[types.Part.from_bytes(data=jpeg, mime_type="image/jpeg"),
                                                     types.Part.from_text(text=ex.text)]))
        out.append(types.Content(role="model", parts=[types.Part.from_text(text=ex.answer.model_dump_json())]))
    out.append(types.Content(role="user", parts=[types.Part.from_bytes(data=request.jpeg, mime_type="image/jpeg"),
                                                 types.Part.from_text(text=request.text)]))
    return out


def generation_config(key: str | None = None, thinking_budget: int | None = None) -> types.GenerateContentConfig:
    """JSON constrained by LabelAnswer; `thinking_budget` caps the (billed) thinking tokens, 0 = none."""
    return types.GenerateContentConfig(
        system_instruction=PROMPT_RULES,
        response_mime_type="application/json",
        response_schema=LabelAnswer,
        thinking_config=types.ThinkingConfig(thinking_budget=thinking_budget) if thinking_budget is not None else None,
        http_options=types.HttpOptions(headers={KEY_HEADER: key}) if key else None,
    )


def inlined_request(request: Request, model: str, thinking_budget: int | None) -> types.InlinedRequest:
    """One request of a Gemini batch job; the ledger key rides in its metadata and comes back with the answer."""
    return types.InlinedRequest(model=model, contents=contents(request), metadata={"key": request.key},
                                config=generation_config(None, thinking_budget))


def outcome_of_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Outcome:
    """Judge a GenerateContentResponse as JSON (camelCase REST or snake_case SDK dump)."""
    usage = body.get("usageMetadata") or body.get("usage_metadata") or {}

    def count(*names: str) -> int:
        return sum(int(usage.get(n) or 0) for n in names)

    tokens_in = count("promptTokenCount", "prompt_token_count")
    # Thinking tokens are billed as output.
    tokens_out = count("candidatesTokenCount", "candidates_token_count", "thoughtsTokenCount", "thoughts_token_count")
    feedback = body.get("promptFeedback") or body.get("prompt_feedback") or {}
    block = feedback.get("blockReason") or feedback.get("block_reason")
    if block:
        return Outcome(None, tokens_in, tokens_out, body, f"refusal: prompt blocked ({block})", headers or {})
    candidates = body.get("candidates") or []
    if not candidates:
        return Outcome(None, tokens_in, tokens_out, body, "empty response", headers or {})
    first = candidates[0]
    finish = first.get("finishReason") or first.get("finish_reason")
    parts = (first.get("content") or {}).get("parts") or []
    text = "".join(p.get("text") or "" for p in parts if not p.get("thought"))
    if finish in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "RECITATION") and not text:
        return Outcome(None, tokens_in, tokens_out, body, f"refusal: {finish}", headers or {})
    if finish == "MAX_TOKENS":
        return Outcome(None, tokens_in, tokens_out, body, "answer cut off (max tokens)", headers or {})
    answer, error = judge_content(text)
    return Outcome(answer, tokens_in, tokens_out, body, error, headers or {})


QUOTA_URL = "https://aistudio.google.com/usage"


def quota_exhausted(exc: errors.APIError) -> bool:
    """A 429 RESOURCE_EXHAUSTED is usually a per-minute rate limit (retry later); it is a spent quota when it
    names a daily quota or billing. Per-minute limits come with a retry delay; these do not help today."""
    if exc.code != 429:
        return False
    text = json.dumps(exc.details, default=str).lower() if exc.details else ""
    text += " " + str(exc.message or "").lower()
    return any(word in text for word in ("perday", "per_day", "billing", "insufficient", "credit"))


class GeminiLabeler:
    def __init__(self, conf: ProviderSettings, model: str, api_key: str, timeout_s: float = 60.0) -> None:
        self.provider = "gemini"
        self.model = model
        self.thinking_budget = getattr(conf, "thinking_budget", None)
        self.base_url = conf.base_url
        self.timeout_s = timeout_s
        self.client = genai.Client(api_key=api_key, http_options=types.HttpOptions(
            base_url=conf.base_url, retry_options=types.HttpRetryOptions(attempts=1),
            timeout=int(timeout_s * 1000)))  # milliseconds

    async def label(self, request: Request) -> Outcome:
        try:
            response = await self.client.aio.models.generate_content(
                model=self.model, contents=contents(request),
                config=generation_config(request.key, self.thinking_budget))
        except errors.APIError as exc:
            headers = dict(getattr(exc.response, "headers", None) or {})
            if quota_exhausted(exc):
                raise QuotaExhausted(f"Gemini says its quota is exhausted (RESOURCE_EXHAUSTED): check quota and"
                                     f" billing at {QUOTA_URL}") from None
            if exc.code in (408, 429) or exc.code >= 500:
                raise Transient(f"HTTP {exc.code}", retry_after(headers)) from None
            if exc.code in (401, 403):
                raise LabelerError(f"gemini rejected the API key (HTTP {exc.code}); check GEMINI_API_KEY") from None
            if exc.code == 404:
                raise LabelerError(f"gemini does not know model {self.model!r}; set another in config.toml") from None
            return Outcome(None, raw=exc.details, error=f"HTTP {exc.code}: {exc.message}")
        except _TRANSPORT_ERRORS as exc:
            # Refused before sending (never billed) or no answer after sending (fate unknown: maybe billed).
            raise unreachable(exc, self.base_url, self.timeout_s) from None
        headers = dict(response.sdk_http_response.headers or {}) if response.sdk_http_response else {}
        body = json.loads(response.model_dump_json(exclude_none=True, exclude={"sdk_http_response", "parsed"}))
        return outcome_of_response(body, headers)

    async def aclose(self) -> None:
        await self.client.aio.aclose()
