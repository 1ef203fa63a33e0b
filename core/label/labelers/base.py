"""The labeler interface shared by every provider, and the HTTP header helpers they all need.

A labeler turns one `Request` (post text + downscaled image) into an `Outcome`: a validated
`LabelAnswer`, or the reason there is none (refusal, invalid JSON, label outside the set, empty).
Rate limits, server errors and dropped connections raise `Transient` (the runner backs off and
retries); a bad key or unknown model raises `LabelerError` (the whole run stops with one line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from bizsent.core.errors import BizsentError
from bizsent.core.labels import Example, LabelAnswer
from pydantic import ValidationError

KEY_HEADER = "X-Bizsent-Request-Key"


class LabelerError(BizsentError):
    """The provider refuses the whole run (bad key, unknown model): retrying will not help."""


class Transient(Exception):  # noqa: N818  (a signal to retry, not an error to report)
    """429, 5xx or a dropped connection: retry after `retry_after` seconds (None = use backoff)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Unreachable(Transient):
    """No HTTP answer came back. `maybe_sent`: the request may have reached the server (it timed out, or the
    connection was lost after sending), so its fate is unknown and it may be billed; False: it never left this
    machine (connection refused, name not resolved), so it cannot have been billed."""

    def __init__(self, cause: str, host: str, maybe_sent: bool) -> None:
        super().__init__(f"connection: {cause}")
        self.cause, self.host, self.maybe_sent = cause, host, maybe_sent


class QuotaExhausted(LabelerError):
    """The account is out of quota or credit: every further request would fail the same way, so the run stops."""


def host_of(base_url: str) -> str:
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    return f"{url.scheme}://{url.netloc}" if url.netloc else base_url


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def unreachable(exc: BaseException, base_url: str, timeout_s: float) -> Unreachable:
    """Classify a transport failure of any SDK (httpx, aiohttp, plain sockets) by the exceptions it chains."""
    chain = _chain(exc)
    names = {cls.__name__ for e in chain for cls in type(e).__mro__}
    text = " ".join(str(e) for e in chain).lower()
    host = host_of(base_url)
    if names & {"ConnectTimeout", "PoolTimeout"}:
        return Unreachable(f"no connection within {timeout_s:g} s", host, False)
    if names & {"ConnectError", "ClientConnectorError", "ConnectionRefusedError", "gaierror"}:
        if "ConnectionRefusedError" in names or "refused" in text:
            cause = "connection refused"
        elif "gaierror" in names or "name or service" in text or "nodename" in text:
            cause = "host name not found"
        else:
            cause = "cannot connect"
        return Unreachable(cause, host, False)
    if names & {"TimeoutException", "TimeoutError", "APITimeoutError", "ServerTimeoutError", "ReadTimeout",
                "WriteTimeout"}:
        return Unreachable(f"no answer within {timeout_s:g} s", host, True)
    return Unreachable("connection lost before the answer", host, True)


@dataclass(frozen=True, slots=True)
class Request:
    key: str  # the ledger's idempotency key; also sent as a header so servers and logs can match it
    text: str  # the user prompt (post subject + text)
    jpeg: bytes  # the post image, already downscaled
    examples: tuple[Example, ...] = ()


@dataclass(slots=True)
class Outcome:
    answer: LabelAnswer | None
    tokens_in: int = 0
    tokens_out: int = 0
    raw: Any = None  # the decoded response body, saved next to the ledger row
    error: str | None = None  # why there is no answer: "refusal: ...", "invalid JSON: ...", ...
    headers: Mapping[str, str] = field(default_factory=dict)


class Labeler(Protocol):
    provider: str
    model: str

    async def label(self, request: Request) -> Outcome: ...

    async def aclose(self) -> None: ...


def judge_content(content: str | None) -> tuple[LabelAnswer | None, str | None]:
    """Validate a model's JSON text against the contract; return (answer, None) or (None, reason)."""
    if content is None or not content.strip():
        return None, "empty response"
    try:
        return LabelAnswer.model_validate_json(content), None
    except ValidationError as exc:
        return None, reason_of(exc)


def reason_of(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return "invalid JSON"
    where = ".".join(str(p) for p in first["loc"]) or "answer"
    if where == "label":
        return f"label outside the set ({first.get('input')!r})"
    return f"invalid answer: {where} {first['msg'].lower()}"


def _seconds(value: str) -> float | None:
    """'2', '0.5', '1s', '6m0s', '20ms' or an HTTP date -> seconds."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = re.findall(r"([\d.]+)(ms|s|m|h)", value)
    if parts and "".join(n + u for n, u in parts) == value:
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[u] for n, u in parts)
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if it said."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        ms = _seconds(lower["retry-after-ms"])
        return ms / 1000 if ms is not None else None
    return _seconds(lower["retry-after"]) if "retry-after" in lower else None


def exhausted_for(headers: Mapping[str, str] | None) -> float | None:
    """When the server says no requests are left in its window, how long until it resets."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    remaining = lower.get("x-ratelimit-remaining-requests")
    if remaining is None or remaining.strip() not in ("0", "0.0"):
        return None
    return _seconds(lower.get("x-ratelimit-reset-requests", "1s")) or 1.0
