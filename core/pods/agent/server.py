"""The agent's HTTP API: every request needs the run's bearer token, every path stays inside the run folder, and
only fixed files inside it are ever read for a request."""

from __future__ import annotations

import hmac
import json
import re
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from .config import MAX_CHUNK, MAX_JSON, UPLOADS, Config, Refused, State
from .files import confined, parsed
from .job import latest_step, read_events
from .trainer import start
from .uploads import finish_upload, put_chunk, upload_status
from .watchdog import status


def health(cfg: Config, state: State) -> dict:
    with state.lock:
        watchdog = status(state)
        out = {"state": state.phase, "error": state.error, "adapter": state.adapter, "collected": state.collected,
               "gpu": state.gpu}
    return {**out, "step": latest_step(read_events(cfg, state)), "uptime_s": round(time.time() - cfg.billed_since, 1),
            "watchdog": watchdog}


def log_tail(cfg: Config, lines: int) -> list[str]:
    path = confined(cfg.workdir, "train.log")
    if not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4 * 1024 * 1024))
        text = fh.read().decode("utf-8", "replace")
    return text.splitlines()[-lines:] if lines else []


def collect(state: State, claimed: object) -> dict:
    with state.lock:
        if state.adapter is None:
            raise Refused(409, f"there is no adapter yet (state {state.phase})")
        if claimed != state.adapter["sha256"]:
            raise Refused(409, "that is not the adapter's sha256; download it again")
        state.collected = True
    return {"collected": True}


def int_arg(query: dict[str, str], name: str, default: int, most: int = 1 << 62) -> int:
    text = query.get(name, str(default))
    if not text.isdigit():
        raise Refused(400, f"{name} must be a whole number")
    return min(int(text), most)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # seconds a connection may sit silent (a client that went away mid-request)
    server: AgentServer

    def do_GET(self) -> None:
        self.serve("GET")

    def do_PUT(self) -> None:
        self.serve("PUT")

    def do_POST(self) -> None:
        self.serve("POST")

    def log_message(self, format: str, *args: object) -> None:
        pass  # health is polled every few seconds; the container log keeps the agent's own lines only

    def serve(self, method: str) -> None:
        self.unread = int(self.headers.get("Content-Length") or 0)
        try:
            given = self.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, f"Bearer {self.server.cfg.token}".encode()):
                raise Refused(401, "missing or wrong bearer token")
            url = urlsplit(self.path)
            parts = unquote(url.path).split("/")[1:]
            confined(self.server.cfg.workdir, "/".join(parts))
            result = self.route(method, parts, {k: v[-1] for k, v in parse_qs(url.query).items()})
            if result is not None:
                self.send_json(200, result)
        except Refused as exc:
            self.send_json(exc.status, {"error": str(exc), **exc.extra})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self.send_json(500, {"error": "internal error in the agent; see the pod's container log"})

    def route(self, method: str, parts: list[str], query: dict[str, str]) -> dict | None:
        cfg, state = self.server.cfg, self.server.state
        match method, parts:
            case "GET", ["health"]:
                return health(cfg, state)
            case "GET", ["logs"]:
                return {"lines": log_tail(cfg, int_arg(query, "tail", 100, most=10_000))}
            case "GET", ["metrics"]:
                lines = read_events(cfg, state)
                return {"events": parsed(lines[int_arg(query, "after", 0):]), "next": len(lines)}
            case "GET", ["upload", name] if name in UPLOADS:
                return upload_status(cfg, state, name)
            case "PUT", ["upload", name] if name in UPLOADS:
                offset = int_arg(query, "offset", -1) if "offset" in query else -1
                return put_chunk(cfg, state, name, offset, self.body(MAX_CHUNK), self.headers.get("X-Chunk-Sha256", ""))
            case "POST", ["upload", name, "done"] if name in UPLOADS:
                return finish_upload(cfg, state, name, self.json_body().get("sha256"))
            case "POST", ["start"]:
                return start(cfg, state)
            case "GET", ["adapter"]:
                return self.send_adapter(cfg, state)
            case "POST", ["adapter", "collected"]:
                return collect(state, self.json_body().get("sha256"))
        raise Refused(404, "no such endpoint")

    def body(self, limit: int) -> bytes:
        if self.unread > limit:
            raise Refused(413, f"a request body may hold at most {limit} bytes")
        length, self.unread = self.unread, 0
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            self.close_connection = True
            raise Refused(400, "the request body was cut short")
        return data

    def json_body(self) -> dict:
        try:
            value = json.loads(self.body(MAX_JSON) or b"{}")
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise Refused(400, "the request body must be a JSON object")
        return value

    def send_json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        if self.unread:  # a body we never read would be taken for the next request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def send_adapter(self, cfg: Config, state: State) -> None:
        """The adapter tar, from byte N on when asked with `Range: bytes=N-` (a download cut by the proxy resumes)."""
        with state.lock:
            adapter = state.adapter
        if adapter is None:
            raise Refused(409, f"there is no adapter yet (state {state.phase})")
        path = confined(cfg.workdir, "adapter.tar")
        size = path.stat().st_size
        ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        first = int(ranged[1]) if ranged else 0
        if first >= size > 0:
            raise Refused(416, f"the adapter has {size} bytes")
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Type", "application/x-tar")
        self.send_header("Content-Length", str(size - first))
        self.send_header("X-Sha256", adapter["sha256"])
        if ranged:
            self.send_header("Content-Range", f"bytes {first}-{size - 1}/{size}")
        self.end_headers()
        with path.open("rb") as fh:
            fh.seek(first)
            while block := fh.read(1 << 20):
                self.wfile.write(block)


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cfg: Config, state: State) -> None:
        super().__init__(("0.0.0.0", cfg.port), Handler)
        self.cfg, self.state = cfg, state
