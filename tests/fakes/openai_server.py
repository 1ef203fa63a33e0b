"""A fake OpenAI-compatible API on 127.0.0.1: chat completions with images and structured output, files, batches.

The real `openai` SDK talks to it through base_url. Behaviour per request is chosen by `FakeOpenAI.script`
(a function of the request number and body returning "ok", "429", "500", "malformed", "refusal",
"bad_label", "empty", "echo_auth": a 400 whose error message quotes the request's Authorization header back,
as some servers do, "quota": a 429 insufficient_quota (the account is out of credit), "drop": the connection is
closed without an answer after the request arrived (a server killed mid-request; counted as billed, since the
client cannot know), or "hang": no answer for `hang_s` seconds, then the same); `latency_s` delays every answer.
Every chat request is logged with its arrival time, its ledger key header and whether it was billed (answered
with usage), so tests can count requests paid twice. Token usage is counted independently of bizsent's
estimator: 1.3 tokens a word plus punctuation, 85 per low-detail image.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY_HEADER = "x-bizsent-request-key"


def count_tokens(text: str) -> int:
    words = re.findall(r"\w+", text)
    punct = re.findall(r"[^\w\s]", text)
    return math.ceil(len(words) * 1.3) + len(punct)


def guess_label(text: str) -> str:
    """The fake model's 'opinion': a keyword rule, so tests know the expected label."""
    low = text.lower()
    if any(w in low for w in ("moon", "wagmi", "so back", "ape in", "green")):
        return "bullish"
    if any(w in low for w in ("over", "rekt", "ngmi", "rugged", "dump")):
        return "bearish"
    return "neutral"


def prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages", []):
        total += 4
        content = message.get("content")
        if isinstance(content, str):
            total += count_tokens(content)
            continue
        for part in content or []:
            if part.get("type") == "text":
                total += count_tokens(part["text"])
            elif part.get("type") == "image_url":
                detail = part["image_url"].get("detail", "auto")
                total += 85 if detail == "low" else 255
    return total


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if p.get("type") == "text")


def has_image(body: dict[str, Any]) -> bool:
    content = body["messages"][-1]["content"]
    return isinstance(content, list) and any(
        p.get("type") == "image_url" and p["image_url"]["url"].startswith("data:image/") for p in content)


@dataclass
class Call:
    at: float
    key: str | None
    outcome: str
    billed: bool


@dataclass
class FakeOpenAI:
    latency_s: float = 0.0
    script: Callable[[int, dict[str, Any]], str] = lambda n, body: "ok"
    extra_completion_tokens: int = 0  # inflate usage (e.g. to cross a budget midway)
    rate_limit_remaining: int | None = None  # when set, sent as x-ratelimit-remaining-requests
    calls: list[Call] = field(default_factory=list)
    efforts: list[str | None] = field(default_factory=list)  # reasoning_effort of every chat request (None: unset)
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_steps: int = 2  # retrieves before a batch completes
    batch_script: Callable[[dict[str, Any]], str] = lambda line: "ok"
    authorizations: list[str | None] = field(default_factory=list)  # the Authorization header of every request
    echo_auth_on_upload: bool = False  # answer file uploads with a 400 that quotes the Authorization header
    hang_s: float = 30.0  # how long a "hang" answer keeps the client waiting
    lock: threading.RLock = field(default_factory=threading.RLock)

    def billed_keys(self) -> list[str]:
        return [c.key for c in self.calls if c.billed and c.key]

    def completion(self, body: dict[str, Any], outcome: str) -> dict[str, Any]:
        answer = {"label": guess_label(last_user_text(body)), "confidence": 0.8, "sarcastic": False,
                  "rationale": "keywords in the text"}
        refusal = None
        if outcome == "malformed":
            content = '{"label": "bullish", "confidence": '
        elif outcome == "bad_label":
            content = json.dumps({**answer, "label": "very bullish"})
        elif outcome == "empty":
            content = ""
        elif outcome == "refusal":
            content, refusal = None, "I can't help with that."
        else:
            content = json.dumps(answer)
        tokens_out = (count_tokens(content or refusal or "")) + self.extra_completion_tokens
        tokens_in = prompt_tokens(body)
        return {"id": f"chatcmpl-{len(self.calls)}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content, "refusal": refusal}}],
                "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                          "total_tokens": tokens_in + tokens_out}}

    # ---- batches ----
    def run_batch(self, batch: dict[str, Any]) -> None:
        out_lines, err_lines = [], []
        for raw in self.files[batch["input_file_id"]].decode().splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            outcome = self.batch_script(line)
            self.efforts.append(line["body"].get("reasoning_effort"))
            if outcome == "error":
                err_lines.append({"id": f"r-{line['custom_id']}", "custom_id": line["custom_id"], "response": None,
                                  "error": {"code": "server_error", "message": "try again"}})
                continue
            with self.lock:
                self.calls.append(Call(time.monotonic(), line["custom_id"], outcome, True))
            out_lines.append({"id": f"r-{line['custom_id']}", "custom_id": line["custom_id"], "error": None,
                              "response": {"status_code": 200, "request_id": "req",
                                           "body": self.completion(line["body"], outcome)}})
        out_id, err_id = f"file-out-{batch['id']}", f"file-err-{batch['id']}"
        self.files[out_id] = "".join(json.dumps(x) + "\n" for x in out_lines).encode()
        batch["output_file_id"] = out_id
        if err_lines:
            self.files[err_id] = "".join(json.dumps(x) + "\n" for x in err_lines).encode()
            batch["error_file_id"] = err_id
        batch["request_counts"] = {"total": len(out_lines) + len(err_lines), "completed": len(out_lines),
                                   "failed": len(err_lines)}


def batch_object(batch_id: str, input_file_id: str, endpoint: str) -> dict[str, Any]:
    return {"id": batch_id, "object": "batch", "endpoint": endpoint, "errors": None, "input_file_id": input_file_id,
            "completion_window": "24h", "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": int(time.time()), "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": None, "_polls": 0}


class JsonHandler(BaseHTTPRequestHandler):
    """Keep-alive JSON answers, quiet logs: the part every fake API server shares."""

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
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client died: still "billed"
            self.wfile.write(data)


def make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):

        def read_body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if m := re.fullmatch(r"/v1/batches/([\w-]+)", path):
                batch = fake.batches.get(m.group(1))
                if batch is None:
                    return self.send_json(404, {"error": {"message": "no such batch"}})
                with fake.lock:
                    batch["_polls"] += 1
                    if batch["status"] not in ("completed", "cancelled", "failed"):
                        if batch["_polls"] >= fake.batch_steps:
                            fake.run_batch(batch)
                            batch["status"] = "completed"
                        else:
                            batch["status"] = "in_progress"
                return self.send_json(200, {k: v for k, v in batch.items() if not k.startswith("_")})
            if m := re.fullmatch(r"/v1/files/([\w-]+)/content", path):
                data = fake.files.get(m.group(1))
                if data is None:
                    return self.send_json(404, {"error": {"message": "no such file"}})
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            return self.send_json(404, {"error": {"message": f"unknown path {path}"}})

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            raw = self.read_body()
            with fake.lock:
                fake.authorizations.append(self.headers.get("authorization"))
            if path == "/v1/files" and fake.echo_auth_on_upload:
                return self.send_json(400, {"error": {"message": "invalid upload for "
                                                      f"{self.headers.get('authorization')}"}})
            if path == "/v1/chat/completions":
                return self.chat(json.loads(raw))
            if path == "/v1/files":
                msg = BytesParser(policy=HTTP).parsebytes(
                    b"Content-Type: " + self.headers["content-type"].encode() + b"\r\n\r\n" + raw)
                data = b""
                for part in msg.iter_parts():
                    if part.get_param("name", header="content-disposition") == "file":
                        data = part.get_payload(decode=True)
                with fake.lock:
                    file_id = f"file-{len(fake.files) + 1}"
                    fake.files[file_id] = data
                return self.send_json(200, {"id": file_id, "object": "file", "bytes": len(data),
                                            "created_at": int(time.time()), "filename": "batch.jsonl",
                                            "purpose": "batch", "status": "processed"})
            if path == "/v1/batches":
                body = json.loads(raw)
                with fake.lock:
                    batch_id = f"batch_{len(fake.batches) + 1}"
                    fake.batches[batch_id] = batch_object(batch_id, body["input_file_id"], body["endpoint"])
                return self.send_json(200, {k: v for k, v in fake.batches[batch_id].items() if not k.startswith("_")})
            if m := re.fullmatch(r"/v1/batches/([\w-]+)/cancel", path):
                batch = fake.batches[m.group(1)]
                batch["status"] = "cancelled"
                return self.send_json(200, {k: v for k, v in batch.items() if not k.startswith("_")})
            return self.send_json(404, {"error": {"message": f"unknown path {path}"}})

        def chat(self, body: dict[str, Any]) -> None:
            key = self.headers.get(KEY_HEADER)
            with fake.lock:
                number = len(fake.calls)
                outcome = fake.script(number, body) if has_image(body) else "no_image"
                billed = outcome not in ("429", "500", "no_image", "quota")
                fake.calls.append(Call(time.monotonic(), key, outcome, billed))
                fake.efforts.append(body.get("reasoning_effort"))
            if fake.latency_s:
                time.sleep(fake.latency_s)
            if outcome in ("drop", "hang"):
                if outcome == "hang":
                    time.sleep(fake.hang_s)
                self.close_connection = True  # no status line at all: the client sees the connection go
                return None
            headers = {"x-ratelimit-limit-requests": "10000", "x-ratelimit-reset-requests": "1s"}
            if fake.rate_limit_remaining is not None:
                headers["x-ratelimit-remaining-requests"] = str(fake.rate_limit_remaining)
            if outcome == "429":
                return self.send_json(429, {"error": {"message": "Rate limit reached", "type": "requests",
                                                      "code": "rate_limit_exceeded"}},
                                      {"retry-after": "0", **headers})
            if outcome == "quota":
                return self.send_json(429, {"error": {
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})
            if outcome == "echo_auth":
                return self.send_json(400, {"error": {"message": f"bad request with {self.headers.get('authorization')}"
                                                      " (check your parameters)", "type": "invalid_request_error"}})
            if outcome == "500":
                return self.send_json(500, {"error": {"message": "server error", "type": "server_error"}})
            if outcome == "no_image":
                return self.send_json(400, {"error": {"message": "the post must carry an image"}})
            return self.send_json(200, fake.completion(body, outcome), headers)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        # A client killed mid-request (a test case) resets the connection or leaves a truncated JSON body.
        if not isinstance(sys.exc_info()[1], ConnectionError | json.JSONDecodeError):
            super().handle_error(request, client_address)


class Server:
    """Start `fake` on 127.0.0.1 in a thread; `url` is the base_url for the SDK (ends in /v1)."""

    def __init__(self, fake: Any, handler_factory: Callable[[Any], type[BaseHTTPRequestHandler]] = make_handler,
                 suffix: str = "/v1") -> None:
        self.httpd = _QuietServer(("127.0.0.1", 0), handler_factory(fake))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{suffix}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
