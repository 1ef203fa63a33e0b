"""A fake RunPod serverless queue API on 127.0.0.1 that runs the real worker handler in-process.

POST /v2/{id}/runsync answers {id, status, output | error, executionTime, delayTime} as RunPod does, running
core.serve.handler.handler on the job (the tiny model, from BIZSENT_ADAPTER); GET /v2/{id}/status/{job} and POST
/v2/{id}/cancel/{job} follow a queued job. `script(n)` picks what the n-th runsync gets: "ok", "queued" (IN_QUEUE
until `queued_polls` status checks have passed, then run), "stuck" (IN_QUEUE for ever), "401" (echoing the
Authorization header back, as a careless server might), "500", "garbage" (COMPLETED with a non-bizsent output),
"bad-input" (the job's image replaced by something that is not base64: the handler's own FAILED answer).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from fakes.openai_server import JsonHandler


@dataclass
class FakeServerless:
    endpoint: str = "bizsent-test"
    script: Callable[[int], str] = lambda n: "ok"
    queued_polls: int = 2
    authorizations: list[str | None] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)  # runsync's ?wait= values
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, job_id: str) -> dict[str, Any]:
        from bizsent.core.serve.handler import handler

        job = self.jobs[job_id]
        out = handler({"id": job_id, "input": job["input"]})
        if "error" in out:
            return {"id": job_id, "status": "FAILED", "error": out["error"], "executionTime": 40, "delayTime": 5}
        return {"id": job_id, "status": "COMPLETED", "output": out, "executionTime": 120, "delayTime": 5}


def make_handler(fake: FakeServerless) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def read_json(self) -> Any:
            import json

            return json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"null")

        def do_POST(self) -> None:
            body = self.read_json()
            with fake.lock:
                fake.authorizations.append(self.headers.get("authorization"))
            if m := re.fullmatch(rf"/v2/{fake.endpoint}/cancel/([\w-]+)", self.path):
                fake.cancelled.append(m.group(1))
                return self.send_json(200, {"id": m.group(1), "status": "CANCELLED"})
            m = re.fullmatch(rf"/v2/{fake.endpoint}/runsync\?wait=(\d+)", self.path)
            if m is None:
                return self.send_json(404, {"error": "endpoint not found"})
            with fake.lock:
                fake.waits.append(m.group(1))
                fake.inputs.append(body["input"])
                outcome = fake.script(len(fake.inputs))
            job_id = f"job-{uuid.uuid4().hex[:8]}"
            if outcome == "bad-input":
                body["input"] = {**body["input"], "image": "not base64!"}
            fake.jobs[job_id] = {"input": body["input"], "outcome": outcome, "polls": 0}
            if outcome == "401":
                return self.send_json(401, {"error": f"bad key {self.headers.get('authorization')}"})
            if outcome == "500":
                return self.send_json(500, {"error": "internal"})
            if outcome == "garbage":
                return self.send_json(200, {"id": job_id, "status": "COMPLETED", "output": "hello"})
            if outcome in ("queued", "stuck"):
                return self.send_json(200, {"id": job_id, "status": "IN_QUEUE"})
            return self.send_json(200, fake.run(job_id))

        def do_GET(self) -> None:
            with fake.lock:
                fake.authorizations.append(self.headers.get("authorization"))
            m = re.fullmatch(rf"/v2/{fake.endpoint}/status/([\w-]+)", self.path)
            if m is None or m.group(1) not in fake.jobs:
                return self.send_json(404, {"error": "request does not exist"})
            job = fake.jobs[m.group(1)]
            job["polls"] += 1
            if job["outcome"] == "stuck" or job["polls"] < fake.queued_polls:
                return self.send_json(200, {"id": m.group(1), "status": "IN_QUEUE"})
            return self.send_json(200, fake.run(m.group(1)))

    return Handler
