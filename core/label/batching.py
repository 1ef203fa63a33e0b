"""The Batch API interface every provider with one implements (core.label.providers: `Provider.batches`), so
jobs.batches has a single submit/poll/collect flow whatever the provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bizsent.core.label.labelers.base import Outcome, Request


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
