"""A fake Gemini API (generateContent) on 127.0.0.1 for the real `google-genai` SDK.

Answers in the REST format (camelCase), checks that the post's image arrives as inline bytes, counts
258 tokens an image, and can answer 429 (with Retry-After) or invalid JSON on demand via `script`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from fakes.openai_server import count_tokens, guess_label


@dataclass
class FakeGemini:
    script: Callable[[int, dict[str, Any]], str] = lambda n, body: "ok"
    calls: list[tuple[str, str | None]] = field(default_factory=list)  # (outcome, request key)
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_handler(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            if not re.search(r"/models/[^/:]+:generateContent$", self.path.split("?")[0]):
                return self.send_json(404, {"error": {"code": 404, "message": "unknown", "status": "NOT_FOUND"}})
            if not self.headers.get("x-goog-api-key"):
                return self.send_json(401, {"error": {"code": 401, "message": "no key", "status": "UNAUTHENTICATED"}})
            parts = body["contents"][-1]["parts"]
            has_image = any("inlineData" in p or "inline_data" in p for p in parts)
            text = " ".join(p.get("text", "") for p in parts)
            with fake.lock:
                outcome = fake.script(len(fake.calls), body) if has_image else "no_image"
                fake.calls.append((outcome, self.headers.get("x-bizsent-request-key")))
            if outcome == "429":
                return self.send_json(429, {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
                                      {"retry-after": "0"})
            if outcome == "no_image":
                return self.send_json(400, {"error": {"code": 400, "message": "no image",
                                                      "status": "INVALID_ARGUMENT"}})
            answer = json.dumps({"label": guess_label(text), "confidence": 0.7, "sarcastic": False,
                                 "rationale": "keywords"})
            if outcome == "malformed":
                answer = answer[:20]
            prompt = 258 + count_tokens(text) + count_tokens(json.dumps(body.get("systemInstruction", {})))
            out = count_tokens(answer)
            return self.send_json(200, {
                "candidates": [{"content": {"parts": [{"text": answer}], "role": "model"}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": out,
                                  "totalTokenCount": prompt + out},
                "modelVersion": "gemini-fake"})

    return Handler
