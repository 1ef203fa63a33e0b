"""A fake Gemini API on 127.0.0.1 for the real `google-genai` SDK: generateContent and batch jobs.

Answers in the REST format (camelCase), checks that the post's image arrives as inline bytes, counts
258 tokens an image, and can answer 429 (with Retry-After), invalid JSON, or "quota" (a 429 RESOURCE_EXHAUSTED
naming a daily quota and billing, as Gemini does when the quota is spent) on demand via `script`.
Batch jobs (`models/{m}:batchGenerateContent` with inlined requests, `batches/{id}`, `batches/{id}:cancel`)
go BATCH_STATE_PENDING -> RUNNING -> SUCCEEDED over `batch_steps` polls; `batch_script(request)` picks
"ok", "malformed" or "error" (a per-request error instead of a response) for each request.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from fakes.openai_server import JsonHandler, count_tokens, guess_label

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


@dataclass
class FakeGemini:
    script: Callable[[int, dict[str, Any]], str] = lambda n, body: "ok"
    calls: list[tuple[str, str | None]] = field(default_factory=list)  # (outcome, request key)
    thinking: list[int | None] = field(default_factory=list)  # the thinking budget of every request (None: unset)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_steps: int = 2  # polls before a batch job succeeds
    batch_script: Callable[[dict[str, Any]], str] = lambda request: "ok"
    billed_batch: list[str] = field(default_factory=list)  # ledger keys answered by batch jobs
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any], outcome: str) -> dict[str, Any]:
        """A GenerateContentResponse (REST JSON) for a request body."""
        parts = body["contents"][-1]["parts"]
        text = " ".join(p.get("text", "") for p in parts)
        answer = json.dumps({"label": guess_label(text), "confidence": 0.7, "sarcastic": False,
                             "rationale": "keywords"})
        if outcome == "malformed":
            answer = answer[:20]
        prompt = 258 + count_tokens(text) + count_tokens(json.dumps(body.get("systemInstruction", {})))
        out = count_tokens(answer)
        return {"candidates": [{"content": {"parts": [{"text": answer}], "role": "model"}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": out,
                                  "totalTokenCount": prompt + out},
                "modelVersion": "gemini-fake"}

    def run_batch(self, batch: dict[str, Any]) -> None:
        responses = []
        for entry in batch["_requests"]:
            request, metadata = entry["request"], entry.get("metadata")
            self.thinking.append(thinking_budget(request))
            outcome = self.batch_script(request)
            if outcome == "error":
                responses.append({"error": {"code": 13, "message": "internal error, try again"},
                                  "metadata": metadata})
                continue
            self.billed_batch.append((metadata or {}).get("key"))
            responses.append({"response": self.answer(request, outcome), "metadata": metadata})
        batch["metadata"]["output"] = {"inlinedResponses": {"inlinedResponses": responses}}


def thinking_budget(body: dict[str, Any]) -> int | None:
    """generationConfig.thinkingConfig.thinkingBudget; the API (like the SDK) also takes snake_case names."""
    config = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    return config.get("thinkingBudget", config.get("thinking_budget"))


def public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def make_handler(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            m = re.fullmatch(r"/v1(?:beta)?/batches/([\w-]+)", path)
            if not m or m.group(1) not in fake.batches:
                return self.send_json(404, {"error": {"code": 404, "message": "no such batch", "status": "NOT_FOUND"}})
            with fake.lock:
                batch = fake.batches[m.group(1)]
                batch["_polls"] += 1
                if batch["metadata"]["state"] in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
                    if batch["_polls"] >= fake.batch_steps:
                        fake.run_batch(batch)
                        batch["metadata"]["state"] = "BATCH_STATE_SUCCEEDED"
                    else:
                        batch["metadata"]["state"] = "BATCH_STATE_RUNNING"
                return self.send_json(200, public(batch))

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            path = self.path.split("?")[0]
            if not self.headers.get("x-goog-api-key"):
                return self.send_json(401, {"error": {"code": 401, "message": "no key", "status": "UNAUTHENTICATED"}})
            if m := re.fullmatch(r"/v1(?:beta)?/models/([^/:]+):batchGenerateContent", path):
                return self.create_batch(m.group(1), body)
            if m := re.fullmatch(r"/v1(?:beta)?/batches/([\w-]+):cancel", path):
                with fake.lock:
                    fake.batches[m.group(1)]["metadata"]["state"] = "BATCH_STATE_CANCELLED"
                return self.send_json(200, {})
            if not re.search(r"/models/[^/:]+:generateContent$", path):
                return self.send_json(404, {"error": {"code": 404, "message": f"unknown path {path}",
                                                  "status": "NOT_FOUND"}})
            parts = body["contents"][-1]["parts"]
            has_image = any("inlineData" in p or "inline_data" in p for p in parts)
            with fake.lock:
                outcome = fake.script(len(fake.calls), body) if has_image else "no_image"
                fake.calls.append((outcome, self.headers.get("x-bizsent-request-key")))
                fake.thinking.append(thinking_budget(body))
            if outcome == "429":
                return self.send_json(429, {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
                                      {"retry-after": "0"})
            if outcome == "quota":
                return self.send_json(429, {"error": {
                    "code": 429, "status": "RESOURCE_EXHAUSTED",
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel"}]}]}})
            if outcome == "no_image":
                return self.send_json(400, {"error": {"code": 400, "message": "no image",
                                                      "status": "INVALID_ARGUMENT"}})
            return self.send_json(200, fake.answer(body, outcome))

        def create_batch(self, model: str, body: dict[str, Any]) -> None:
            requests = body["batch"]["inputConfig"]["requests"]["requests"]
            for entry in requests:
                parts = entry["request"]["contents"][-1]["parts"]
                if not any("inlineData" in p for p in parts):
                    return self.send_json(400, {"error": {"code": 400, "message": "no image",
                                                          "status": "INVALID_ARGUMENT"}})
            with fake.lock:
                batch_id = f"job{len(fake.batches) + 1}"
                fake.batches[batch_id] = {
                    "name": f"batches/{batch_id}",
                    "metadata": {"@type": BATCH_TYPE, "model": f"models/{model}",
                                 "displayName": body["batch"].get("displayName", ""), "state": "BATCH_STATE_PENDING",
                                 "createTime": "2026-01-01T00:00:00Z"},
                    "_requests": requests, "_polls": 0}
                return self.send_json(200, public(fake.batches[batch_id]))

    return Handler
