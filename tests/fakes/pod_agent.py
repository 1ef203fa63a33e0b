"""Fixtures for the in-pod agent's tests: the agent as a local process started the way a pod starts it (its zipapp
decoded from the pod environment's BIZSENT_AGENT_B64), a stub of RunPod's pod-action endpoint that records what
the watchdog asked and with which key, and a proxy that cuts chosen requests (RunPod's proxy ends long ones).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from fakes.runpod_hosts import Host, host, nvidia_smi

HOST = host("13.0")  # driver 580: fits any torch build

POD_ID = "pod-abc123"
POD_KEY = "pod-scoped-key-given-by-runpod-0042"  # what RunPod puts in the pod; never the user's key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class ActionStub:
    """RunPod's POST /v2/pods/{id}/action, recording (pod id, action, Authorization header)."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> ActionStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                pod = self.path.removeprefix("/v2/pods/").removesuffix("/action")
                stub.calls.append((pod, body["action"], self.headers.get("Authorization", "")))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve(Handler)
        return self

    def wait_for(self, action: str, timeout_s: float = 20.0) -> tuple[str, str, str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for call in self.calls:
                if call[1] == action:
                    return call
            time.sleep(0.05)
        raise AssertionError(f"no {action} call within {timeout_s} s; calls: {self.calls}")


@dataclass
class CutProxy:
    """Forwards to the agent. The PUTs whose numbers (1-based) are in `cut` are read, then dropped unanswered; the
    first adapter download stops after `cut_adapter_at` bytes of its body (as a proxy ending a long request)."""

    target: str
    cut: set[int] = field(default_factory=set)
    cut_adapter_at: int | None = None
    put_offsets: list[int] = field(default_factory=list)
    adapter_ranges: list[str | None] = field(default_factory=list)
    routes: set[str] = field(default_factory=set)  # the /proxy/{pod_id}-{port} prefixes requests came through
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> CutProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/proxy/"):
                    route, _, rest = self.path.removeprefix("/proxy/").partition("/")
                    proxy.routes.add(route)
                    self.path = "/" + rest
                if self.command == "PUT":
                    proxy.put_offsets.append(int(self.path.split("offset=")[1]))
                    if len(proxy.put_offsets) in proxy.cut:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                host, port = proxy.target.removeprefix("http://").split(":")
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() in
                           ("authorization", "content-type", "content-length", "x-chunk-sha256", "range")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for key in ("Content-Type", "X-Sha256", "Content-Range", "WWW-Authenticate"):
                    if resp.getheader(key):
                        self.send_header(key, resp.getheader(key))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                conn.close()
                if self.path == "/adapter":
                    proxy.adapter_ranges.append(self.headers.get("Range"))
                    if proxy.cut_adapter_at is not None and len(proxy.adapter_ranges) == 1:
                        self.wfile.write(data[: proxy.cut_adapter_at])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve(Handler)
        return self


@dataclass
class Agent:
    proc: subprocess.Popen
    url: str
    token: str
    workdir: Path
    env: dict[str, str]
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token or self.token}"}, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def launch_agent(tmp_path: Path, pod_env: dict[str, str], *, api_base: str, host: Host | None = None,
                 wait: bool = True, **extra: str) -> Agent:
    """Run the agent with the laptop's pod env plus what RunPod adds, the way the pod's start command does: decode
    BIZSENT_AGENT_B64 to a file and run it. Only PATH (after the host's fake nvidia-smi: `host`, else an RTX 4090
    whose driver fits this venv's torch), HOME and the offline switches come from this process. `wait`: until it
    answers."""
    port = free_port()
    workdir = tmp_path / "pod-volume" / "bizsent"
    script = tmp_path / "bizsent_agent.pyz"
    script.write_bytes(base64.b64decode(pod_env["BIZSENT_AGENT_B64"]))
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    smi = nvidia_smi(tmp_path / "host-bin", host or HOST, {"id": "NVIDIA GeForce RTX 4090", "memory": 24})
    base["PATH"] = f"{smi.parent}{os.pathsep}{base.get('PATH', '')}"
    env = {**base, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **pod_env, "BIZSENT_PORT": str(port),
           "BIZSENT_WORKDIR": str(workdir), "BIZSENT_API_BASE": api_base, "BIZSENT_WATCHDOG_S": "0.1",
           "RUNPOD_POD_ID": POD_ID, "RUNPOD_API_KEY": POD_KEY, **extra}
    log = tmp_path / "container.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
    agent = Agent(proc, f"http://127.0.0.1:{port}", pod_env["BIZSENT_TOKEN"], workdir, env, log)
    if not wait:
        return agent
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(httpx.TransportError), agent.client() as client:
            if client.get("/health").status_code == 200:
                return agent
        time.sleep(0.1)
    agent.stop()
    raise AssertionError(f"the agent did not answer: {log.read_text()}")


def token() -> str:
    return secrets.token_urlsafe(32)
