"""A stand-in agent whose /health says what the test sets in STUB_HEALTH (JSON), e.g. a pod in training whose
watchdog reports a stop it could not make; /metrics has no events and /logs no lines. Stdlib only, like the real
agent (core/pods/agent/), behind the same bearer token."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = os.environ["BIZSENT_TOKEN"]
HEALTH = {"state": "training", "step": 1, "error": None, "uptime_s": 0, "adapter": None, "collected": False,
          "watchdog": None, **json.loads(os.environ.get("STUB_HEALTH", "{}"))}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"error": "run token required"})
        elif self.path.startswith("/health"):
            self._send(200, HEALTH)
        elif self.path.startswith("/metrics"):
            self._send(200, {"events": [], "next": 0})
        elif self.path.startswith("/logs"):
            self._send(200, {"lines": []})
        else:
            self._send(404, {"error": "no such path"})

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


print("stand-in agent listening", flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["BIZSENT_PORT"])), Handler).serve_forever()
