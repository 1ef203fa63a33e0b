"""A stand-in for the agent (core/pods/agent/) in the pod tests: stdlib only, like the real one. It prints numbered
lines (the container log), then serves GET /health behind the bearer token until killed."""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = os.environ["BIZSENT_TOKEN"]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"state": "waiting-upload", "step": 0, "error": None, "uptime_s": 0,
                           "adapter": None, "pod": os.environ.get("RUNPOD_POD_ID")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


for i in range(int(os.environ.get("STUB_LINES", "10"))):
    print(f"stub line {i}", flush=True)
server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["BIZSENT_PORT"])), Handler)
print("agent listening", file=sys.stderr, flush=True)
server.serve_forever()
