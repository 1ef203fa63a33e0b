"""A fake RunPod REST v2 server on 127.0.0.1 that runs each pod's container as a local subprocess.

    with FakeRunpod(user_key, root=tmp_path) as fake:
        settings.runpod.api_base = fake.url            # what bizsent's client and the pod's watchdog call
        settings.runpod.proxy_url = fake.proxy_url     # "http://127.0.0.1:{port}/proxy/{pod_id}-{port}"
        ... fake.billing_now() == []                   # no pod accruing money

API (field names from RunPod's OpenAPI file): /v2/pods (GET, POST), /v2/pods/{id} (GET, PATCH, DELETE),
/v2/pods/{id}/action, /v2/pods/{id}/logs (SSE: `id:` "<ts>/<seq>", data {ts, source, line}; source, tail,
since and Last-Event-ID resume; a `tail` outside 0..5000 is 422 problem+json, as the OpenAPI file specifies),
/v2/catalog/gpus (prices; stock with include=AVAILABILITY&product=POD&cloud=),
/v2/billing/pods. Errors are problem+json. Auth: `Bearer <user_key>` for everything; a pod's own pod-scoped key
(its env RUNPOD_API_KEY) for GET and POST .../action on that pod only (403 elsewhere); anything else 401.

Pods: PROVISIONING -> STARTING -> RUNNING after `boot_delay_s`, then the create body's `args` runs (shlex-split)
as a subprocess in its own session, with env: PATH (this Python's bin first, so `python3` is the test venv's),
HOME, `extra_env`, the request's env, RUNPOD_POD_ID, RUNPOD_API_KEY (pod-scoped, never the user's key) and
BIZSENT_PORT replaced by a free local port (the container port mapping). Emulating the container's private
filesystem: the container's own "/tmp/" files in the command and a BIZSENT_WORKDIR under /workspace are moved under
<root>/<pod id>/ (a host path that exists, such as a checkout under /tmp, is left alone).
stdout/stderr become 'container' log lines, lifecycle events 'system' lines. A container whose main process exits
while the pod is wanted running is started again after `restart_delay_s`, and the pod bills on (*reported*:
dstackai/dstack#1142, runpodctl#149; `FakePod.restarts` counts them). stop/terminate kill the process group;
terminated pods vanish from GET /v2/pods and 404 on GET /v2/pods/{id}.
Hosts (tests/fakes/runpod_hosts.py, sources there): `hosts` maps each GPU type to its hosts' CUDA versions and
drivers; a create's `gpu.allowedCudaVersions` / `gpu.minCudaVersion` picks the host (none fits: capacity error),
the catalog lists `cudaVersions`, a pod reports its host's `cudaVersion`, and its container finds an
`nvidia-smi` for that host first on its PATH.
Gateway: API requests without a User-Agent, or with urllib's default one, get Cloudflare's 403 `error code: 1010`
as text/plain (*reported* for RunPod's REST API: lumpenspace/raft#14).

Billing: a pod accrues seconds from create until stop/terminate (`billed_seconds`, `billing_now`). A stopped
(EXITED) pod's volume bills on while GET says `cost` 0.0 (docs pods/pricing: $0.20/GB/month stopped; the create
body's mounts.persistent.size): `stored_seconds`, `storage_billing_now`, and `diskAmount` in /v2/billing/pods.
The running volume's $0.10/GB/month is not imitated.
Network volumes (a guess at the v2 shape: `mounts.network` = {id, path}): the ids in `network_volumes` exist;
another is 400, and so is one in COMMUNITY cloud (docs: network volumes are Secure Cloud only). The container's
env values under the mount path point at <root>/network-volumes/<id>, shared by every pod that mounts it.
Proxy: /proxy/{pod_id}-{port}/PATH forwards to the pod's subprocess (502 until it runs); `proxy_cut_s` answers
524 to requests slower than that (RunPod's proxy cuts at 100 s); `proxy_down` drops connections unanswered.
Faults: `no_capacity` (GPU ids or (gpu, cloud) pairs: 400 "no longer any instances"), `never_boot` (GPU ids
that stay PROVISIONING), `boot_error` (GPU ids that go to ERROR), `fail(method, path_prefix, status, ...)`
(the next matching calls answer that status, e.g. 429 with Retry-After or 500), `lose_create_answers` (creates
whose pod is made but whose answer is lost), `create_answer_delay_s` (a create's pod is made, and listed, at once;
its answer comes that much later, or when the fake stops: a create "in flight" that a killed client never hears;
that RunPod lists the pod before it answers the create is a guess), `drop_logs_after(n)` (the next log stream is
cut after n events),
`cut_proxy(method, path_part, after_forward=...)` (the next matching proxied request loses its connection,
before it reaches the pod or after the pod answered).
Inspection: `requests` (method, path, who), `refused_agents` (403 1010), `proxied` (method, path after the pod id,
cut or not), `created_bodies` (each create's body, env included), `pods`, `gone`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import shlex
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.runpod_hosts import Host, PlacementError, default_hosts, nvidia_smi, place

CAPACITY_DETAIL = ("There are no longer any instances available with the requested specifications. Please refresh"
                   " and try again.")
CREATE_KEYS = {"args", "disk", "env", "image", "ports", "registry", "name", "cloud", "cpu", "dataCenterIds",
               "globalNetworking", "gpu", "mounts", "startJupyter", "startSsh", "templateId"}
ACTIONS = {"RUNNING": ("stop", "restart", "terminate"), "EXITED": ("start", "terminate"),
           "ERROR": ("start", "terminate"), "PROVISIONING": ("stop", "terminate"), "STARTING": ("stop", "terminate")}
MAX_LOG_TAIL = 5000  # GET /v2/pods/{id}/logs: tail 0..5000, default 100 (OpenAPI)
STOPPED_USD_PER_GB_MONTH = 0.20  # docs pods/pricing: a stopped pod's volume
HOURS_PER_MONTH = 730
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
       "proxy-authenticate", "host", "content-length"}


def default_gpus() -> list[dict[str, Any]]:
    def gpu(gid: str, name: str, mem: int, secure: float, community: float) -> dict[str, Any]:
        return {"id": gid, "name": name, "pool": None, "manufacturer": "NVIDIA", "memory": mem, "secure": True,
                "community": True, "price": {"secure": secure, "community": community},
                "maxCount": {"secure": 8, "community": 4}}

    return [gpu("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.69, 0.34),
            gpu("NVIDIA GeForce RTX 3090", "RTX 3090", 24, 0.43, 0.22),
            gpu("NVIDIA RTX A5000", "RTX A5000", 24, 0.27, 0.16),
            gpu("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 2.99, 2.69)]


def stamp(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The user's RunPod key in the pods tests (a canary: it must reach the fake's API and nothing else), and the
# stand-in agent a test pod runs when the real one is not what the test is about.
USER_KEY = "canary-runpod-user-key-5d1e7b"
STUB_AGENT = Path(__file__).parent / "stub_agent.py"

@dataclass
class FakePod:
    id: str
    name: str
    body: dict[str, Any]
    gpu: str
    cloud: str
    usd_per_hour: float
    key: str  # the pod-scoped API key RunPod puts in the pod's env
    root: Path
    status: str = "PROVISIONING"
    created: float = field(default_factory=time.time)
    started: float | None = None  # when the container last started (uptime)
    billed_s: float = 0.0
    billing_since: float | None = field(default_factory=time.monotonic)
    stored_s: float = 0.0  # seconds stopped with its volume kept (billed per GB)
    stored_since: float | None = None
    proc: subprocess.Popen | None = None
    local_port: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    generation: int = 0  # bumped by every stop/start, so a stale boot thread does nothing
    host: Host | None = None  # the machine it runs on (its driver's CUDA version)
    restarts: int = 0  # times RunPod started its container again after the main process exited

    @property
    def agent_port(self) -> int | None:
        for port in self.body.get("ports") or []:
            if str(port).endswith("/http"):
                return int(str(port).split("/")[0])
        return None

    def billed(self) -> float:
        live = time.monotonic() - self.billing_since if self.billing_since is not None else 0.0
        return self.billed_s + live

    @property
    def volume_gb(self) -> int:
        return int(((self.body.get("mounts") or {}).get("persistent") or {}).get("size") or 0)

    def stored(self) -> float:
        live = time.monotonic() - self.stored_since if self.stored_since is not None else 0.0
        return self.stored_s + live

    def storage_usd(self) -> float:
        return self.stored() / 3600 * self.volume_gb * STOPPED_USD_PER_GB_MONTH / HOURS_PER_MONTH

    def json(self) -> dict[str, Any]:
        running = self.status == "RUNNING"
        live = self.status in ("PROVISIONING", "STARTING", "RUNNING")
        return {"id": self.id, "name": self.name, "image": self.body.get("image", ""),
                "args": self.body.get("args", ""), "disk": self.body.get("disk", 20),
                "ports": self.body.get("ports", []), "env": self.body.get("env", {}), "registry": None,
                "status": self.status, "actions": list(ACTIONS.get(self.status, ())),
                "mounts": self.body.get("mounts", {}), "gpu": {"id": self.gpu, "count": 1}, "cloud": self.cloud,
                "dataCenterId": "FAKE-1",
                "cudaVersion": self.host.cuda if self.host else None, "ssh": None, "template": None,
                "cost": self.usd_per_hour if live else 0.0, "locked": False, "globalNetworking": {"enabled": False},
                "runtime": {"uptime": int(time.time() - self.started), "ports": []} if running and self.started
                else None, "createdAt": stamp(self.created), "startedAt": stamp(self.started) if self.started else None}


class FakeRunpod:
    def __init__(self, user_key: str, *, root: Path, boot_delay_s: float = 0.2, gpus: list[dict] | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.user_key = user_key
        self.root = Path(root)
        self.boot_delay_s = boot_delay_s
        self.gpus = gpus if gpus is not None else default_gpus()
        self.hosts: dict[str, list[Host]] = default_hosts(self.gpus)
        self.restart_delay_s = 0.5
        self.extra_env = dict(extra_env or {})
        self.stock: dict[Any, str] = {}  # gpu id or (gpu, cloud) -> NONE|LOW|MEDIUM|HIGH (default HIGH)
        self.no_capacity: set[Any] = set()
        self.never_boot: set[str] = set()
        self.boot_error: set[str] = set()
        self.proxy_cut_s: float | None = None
        self.proxy_down = False
        self.lose_create_answers = 0
        self.create_answer_delay_s = 0.0
        self.network_volumes: set[str] = set()
        self.pods: dict[str, FakePod] = {}
        self.gone: dict[str, FakePod] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.refused_agents: list[tuple[str, str, str]] = []  # (method, path, User-Agent) answered 403 1010
        self.created_bodies: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self._faults: list[dict[str, Any]] = []
        self._drop_logs: int | None = None
        self._proxy_cuts: list[dict[str, Any]] = []
        self.proxied: list[tuple[str, str, bool]] = []
        self._seq = 0
        self._closing = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proxy_url = f"{self.url}/proxy/{{pod_id}}-{{port}}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # lifecycle

    def __enter__(self) -> FakeRunpod:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        with self.cond:
            self._closing = True
            self.cond.notify_all()
            pods = list(self.pods.values())
        for pod in pods:
            self._kill(pod)
        self._server.shutdown()
        self._server.server_close()

    # test controls and inspection

    def fail(self, method: str, path_prefix: str, status: int, *, times: int = 1, retry_after: float | None = None,
             detail: str = "injected fault") -> None:
        self._faults.append({"method": method, "path": path_prefix, "status": status, "times": times,
                             "retry_after": retry_after, "detail": detail})

    def drop_logs_after(self, events: int) -> None:
        self._drop_logs = events

    def cut_proxy(self, method: str, path_part: str, *, times: int = 1, after_forward: bool = False) -> None:
        self._proxy_cuts.append({"method": method, "part": path_part, "times": times, "after": after_forward})

    def add_pod(self, name: str, gpu: str = "NVIDIA GeForce RTX 4090", cloud: str = "SECURE",
                status: str = "RUNNING", volume_gb: int = 40) -> str:
        """A pod the account already has, made elsewhere (no container runs)."""
        body = {"name": name, "image": "other/image",
                "mounts": {"persistent": {"size": volume_gb, "path": "/workspace"}}}
        pod = self._new_pod(name, body, gpu, cloud)
        pod.status, pod.started = status, time.time()
        if status not in ("PROVISIONING", "STARTING", "RUNNING"):
            pod.billing_since = None
        if status == "EXITED":
            pod.stored_since = time.monotonic()
        return pod.id

    def billed_seconds(self, pod_id: str) -> float:
        with self.cond:
            pod = self.pods.get(pod_id) or self.gone[pod_id]
            return pod.billed()

    def billing_now(self) -> list[str]:
        """Ids of the pods accruing GPU money right now (the 'never leave a pod billing' check)."""
        with self.cond:
            return [p.id for p in self.pods.values() if p.billing_since is not None]

    def stored_seconds(self, pod_id: str) -> float:
        with self.cond:
            return (self.pods.get(pod_id) or self.gone[pod_id]).stored()

    def storage_billing_now(self) -> list[str]:
        """Ids of the stopped pods whose volume bills right now (GET shows them at cost 0.0)."""
        with self.cond:
            return [p.id for p in self.pods.values() if p.stored_since is not None and p.volume_gb > 0]

    def env_of(self, pod_id: str) -> dict[str, str]:
        pod = self.pods.get(pod_id) or self.gone[pod_id]
        return dict(pod.body.get("env") or {})

    def log_lines(self, pod_id: str) -> list[str]:
        pod = self.pods.get(pod_id) or self.gone[pod_id]
        with self.cond:
            return [e["line"] for e in pod.events]

    def wait_log(self, pod_id: str, text: str, timeout_s: float = 30.0) -> list[str]:
        """The pod's log lines holding `text`, once there is one. A container's output reaches the log through
        a reader of its pipe, as RunPod's log does through its own collector: a line written just before the
        pod was stopped can land after the status changed."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not (found := [line for line in self.log_lines(pod_id) if text in line]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"pod {pod_id}'s log never said {text!r}")
                self.cond.wait(left)
        return found

    def wait_status(self, pod_id: str, status: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while (self.pods.get(pod_id) or self.gone[pod_id]).status != status:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"pod {pod_id} not {status}")
                self.cond.wait(left)

    # pods

    def _new_pod(self, name: str, body: dict[str, Any], gpu: str, cloud: str) -> FakePod:
        rate = next(float(g["price"][cloud.lower()]) for g in self.gpus if g["id"] == gpu)
        pid = "".join(random.choices(string.ascii_lowercase + string.digits, k=10))
        pod = FakePod(pid, name, body, gpu, cloud, rate, key="rpa_POD_" + "".join(random.choices(string.ascii_letters,
                      k=24)), root=self.root / pid)
        with self.cond:
            self.pods[pid] = pod
            self._event(pod, "system", f"pod {pid} created on {gpu} ({cloud})")
        return pod

    def _event(self, pod: FakePod, source: str, line: str) -> None:
        """Append a log event (caller holds or takes the condition)."""
        with self.cond:
            self._seq += 1
            ts = stamp()
            pod.events.append({"id": f"{ts}/{self._seq:012d}", "seq": self._seq, "ts": ts, "source": source,
                               "line": line})
            self.cond.notify_all()

    def _set(self, pod: FakePod, status: str) -> None:
        with self.cond:
            pod.status = status
            self.cond.notify_all()

    def _boot(self, pod: FakePod, generation: int) -> None:
        time.sleep(self.boot_delay_s / 2)
        with self.cond:
            if pod.generation != generation or pod.status != "PROVISIONING" or pod.gpu in self.never_boot:
                return
            self._set(pod, "STARTING")
        self._event(pod, "system", "starting container")
        time.sleep(self.boot_delay_s / 2)
        with self.cond:
            if pod.generation != generation or pod.status != "STARTING":
                return
            if pod.gpu in self.boot_error:
                self._set(pod, "ERROR")
                self._event(pod, "system", "container failed to start")
                return
            self._run_container(pod)
            pod.started = time.time()
            self._set(pod, "RUNNING")
        self._event(pod, "system", "container running")

    def _run_container(self, pod: FakePod) -> None:
        args = pod.body.get("args") or ""
        if not args:
            return
        pod.root.mkdir(parents=True, exist_ok=True)
        (pod.root / "tmp").mkdir(exist_ok=True)
        bin_dir = [str(nvidia_smi(pod.root / "host-bin", pod.host, self._gpu(pod.gpu)).parent)] if pod.host else []
        env = {"PATH": os.pathsep.join([*bin_dir, str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
               "HOME": str(pod.root), "LANG": "C.UTF-8", **self.extra_env, **(pod.body.get("env") or {})}
        pod.local_port = free_port()
        env.update(RUNPOD_POD_ID=pod.id, RUNPOD_API_KEY=pod.key, BIZSENT_PORT=str(pod.local_port))
        workdir = env.get("BIZSENT_WORKDIR", "")
        if workdir.startswith("/workspace"):
            env["BIZSENT_WORKDIR"] = str(pod.root / workdir.lstrip("/"))
        network = (pod.body.get("mounts") or {}).get("network")
        if network:
            shared = self.root / "network-volumes" / network["id"]
            shared.mkdir(parents=True, exist_ok=True)
            env.update({k: v.replace(network["path"], str(shared), 1) for k, v in env.items()
                        if v.startswith(network["path"])})
        command = [_container_tmp(part, pod.root) for part in shlex.split(args)]
        pod.proc = subprocess.Popen(command, env=env, cwd=pod.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        with self.cond:
            closing = self._closing
        if closing:  # the fake was stopped while this pod booted: no container outlives the test
            self._kill(pod)
            return
        readers = [threading.Thread(target=self._read, args=(pod, pod.proc, s), daemon=True)
                   for s in (pod.proc.stdout, pod.proc.stderr)]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._reap_when_done, args=(pod, pod.proc, readers, pod.generation),
                         daemon=True).start()

    def _gpu(self, gpu_id: str) -> dict[str, Any]:
        return next(g for g in self.gpus if g["id"] == gpu_id)

    def _read(self, pod: FakePod, proc: subprocess.Popen, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            self._event(pod, "container", raw.decode("utf-8", "replace").rstrip("\n"))

    def _reap_when_done(self, pod: FakePod, proc: subprocess.Popen, readers: list[threading.Thread],
                        generation: int) -> None:
        code = proc.wait()
        for reader in readers:
            reader.join(timeout=5)
        self._event(pod, "system", f"container exited with code {code}")
        time.sleep(self.restart_delay_s)
        with self.cond:
            # Exited by itself (not killed by a stop, terminate or restart) while the pod is wanted running: RunPod
            # starts the container again, and the pod bills on.
            if self._closing or pod.proc is not proc or pod.generation != generation or pod.status != "RUNNING":
                return
            pod.restarts += 1
            self._run_container(pod)
            pod.started = time.time()
        self._event(pod, "system", f"restarting the container (restart {pod.restarts})")

    def _kill(self, pod: FakePod) -> None:
        proc, pod.proc = pod.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def _stop_billing(self, pod: FakePod) -> None:
        if pod.billing_since is not None:
            pod.billed_s += time.monotonic() - pod.billing_since
            pod.billing_since = None

    def _store(self, pod: FakePod, stored: bool) -> None:
        """Start (a stop) or end (a start, a terminate) the billing of a stopped pod's volume."""
        if pod.stored_since is not None:
            pod.stored_s += time.monotonic() - pod.stored_since
        pod.stored_since = time.monotonic() if stored else None

    def _action(self, pod: FakePod, action: str) -> None:
        with self.cond:
            pod.generation += 1
        if action in ("stop", "terminate", "restart"):
            self._kill(pod)
        with self.cond:
            if action == "stop":
                self._stop_billing(pod)
                self._store(pod, pod.status != "EXITED")
                self._set(pod, "EXITED")
            elif action == "terminate":
                self._stop_billing(pod)
                self._store(pod, False)
                self._set(pod, "TERMINATED")
                # Two terminate calls can race (the pod's own after its adapter was collected, and the
                # laptop's): like RunPod, the second finds the pod already gone and is answered the same.
                self.gone[pod.id] = self.pods.pop(pod.id, pod)
            elif action == "start":
                self._store(pod, False)
                pod.billing_since = time.monotonic()
                self._set(pod, "PROVISIONING")
            elif action == "restart":
                self._run_container(pod)
                pod.started = time.time()
        self._event(pod, "system", f"{action} requested")
        if action == "start":
            threading.Thread(target=self._boot, args=(pod, pod.generation), daemon=True).start()

    # HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._dispatch(self, "GET")

            def do_POST(self) -> None:
                fake._dispatch(self, "POST")

            def do_PUT(self) -> None:
                fake._dispatch(self, "PUT")

            def do_PATCH(self) -> None:
                fake._dispatch(self, "PATCH")

            def do_DELETE(self) -> None:
                fake._dispatch(self, "DELETE")

        return Handler

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: Any = None, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        data = b"" if body is None else json.dumps(body).encode()
        h.send_response(status)
        if data:
            h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a pod killed by its own stop call
            h.wfile.write(data)

    @staticmethod
    def _send_text(h: BaseHTTPRequestHandler, status: int, text: str) -> None:
        data = text.encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/plain; charset=UTF-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            h.wfile.write(data)

    def _problem(self, h: BaseHTTPRequestHandler, status: int, detail: str, headers: dict[str, str] | None = None,
                 errors: list[str] | None = None) -> None:
        body: dict[str, Any] = {"title": http.client.responses.get(status, "Error"), "status": status,
                                "detail": detail}
        if errors:
            body["errors"] = errors
        self._send(h, status, body, headers, "application/problem+json")

    @staticmethod
    def _body(h: BaseHTTPRequestHandler) -> bytes:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    h.rfile.readline()
                    return out
                out += h.rfile.read(size)
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    def _who(self, h: BaseHTTPRequestHandler) -> str:
        auth = h.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if token and token == self.user_key:
            return "user"
        with self.cond:
            for pod in list(self.pods.values()) + list(self.gone.values()):
                if token and token == pod.key:
                    return f"pod:{pod.id}"
        return "none" if not token else "bad"

    def _dispatch(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        path = url.path.rstrip("/") or "/"
        if path.startswith("/proxy/"):
            self._proxy(h, method, url)
            return
        who = self._who(h)
        self.requests.append((method, path, who))
        body = self._body(h)
        agent = h.headers.get("User-Agent") or ""
        if not agent or agent.startswith("Python-urllib/"):
            self.refused_agents.append((method, path, agent))
            self._send_text(h, 403, "error code: 1010")
            return
        if who in ("none", "bad"):
            self._problem(h, 401, "missing bearer token" if who == "none" else "invalid api key")
            return
        parts = path.strip("/").split("/")
        if who.startswith("pod:"):
            own = who[4:]
            allowed = len(parts) >= 3 and parts[:2] == ["v2", "pods"] and parts[2] == own and (
                (method == "GET" and len(parts) == 3) or (method == "POST" and parts[3:] == ["action"]))
            if not allowed:
                self._problem(h, 403, "access denied: a pod-scoped key acts on its own pod only")
                return
        for fault in self._faults:
            if fault["times"] > 0 and fault["method"] == method and path.startswith(fault["path"]):
                fault["times"] -= 1
                headers = {"Retry-After": f"{fault['retry_after']:g}"} if fault["retry_after"] is not None else None
                self._problem(h, fault["status"], fault["detail"], headers)
                return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            self._problem(h, 400, "body is not JSON")
            return
        self._route(h, method, parts, query, payload)

    def _route(self, h: BaseHTTPRequestHandler, method: str, parts: list[str], query: dict[str, str],
               payload: Any) -> None:
        if parts == ["v2", "pods"] and method == "GET":
            with self.cond:
                self._send(h, 200, {"pods": [p.json() for p in self.pods.values()]})
        elif parts == ["v2", "pods"] and method == "POST":
            self._create(h, payload)
        elif parts == ["v2", "catalog", "gpus"] and method == "GET":
            self._catalog(h, query)
        elif parts == ["v2", "billing", "pods"] and method == "GET":
            self._billing(h, query)
        elif len(parts) >= 3 and parts[:2] == ["v2", "pods"]:
            with self.cond:
                pod = self.pods.get(parts[2])
            if pod is None:
                self._problem(h, 404, "pod not found")
            elif len(parts) == 3 and method == "GET":
                with self.cond:
                    self._send(h, 200, pod.json())
            elif len(parts) == 3 and method == "PATCH":
                pod.body.update({k: v for k, v in payload.items() if k in ("name", "env", "image", "ports")})
                pod.name = pod.body.get("name", pod.name)
                self._send(h, 200, pod.json())
            elif len(parts) == 3 and method == "DELETE":
                self._action(pod, "terminate")
                self._send(h, 204)
            elif parts[3:] == ["action"] and method == "POST":
                action = payload.get("action") if isinstance(payload, dict) else None
                if action not in ("start", "stop", "restart", "terminate"):
                    self._problem(h, 422, "Request validation failed.", errors=[f"$.action: {action!r} invalid"])
                elif action not in ACTIONS.get(pod.status, ()):
                    self._problem(h, 409, f"cannot {action} a pod that is {pod.status}")
                else:
                    self._action(pod, action)
                    if action == "terminate":
                        self._send(h, 204)
                    else:
                        self._send(h, 200, pod.json())
            elif parts[3:] == ["logs"] and method == "GET":
                self._logs(h, pod, query)
            else:
                self._problem(h, 405, "The requested method is not allowed for this path.")
        else:
            self._problem(h, 404, "resource not found")

    def _create(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        if not isinstance(body, dict):
            self._problem(h, 422, "Request validation failed.", errors=["$: must be an object"])
            return
        extra = sorted(set(body) - CREATE_KEYS)
        errors = [f"$: additional properties '{k}' not allowed" for k in extra]
        if not body.get("name"):
            errors.append("$.name: required")
        if not body.get("image"):
            errors.append("$.image: required")
        env = body.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            errors.append("$.env: values must be strings")
        if not isinstance(body.get("args", ""), str):
            errors.append("$.args: must be a string")
        if body.get("cloud", "SECURE") not in ("SECURE", "COMMUNITY"):
            errors.append("$.cloud: must be SECURE or COMMUNITY")
        if errors:
            self._problem(h, 422, "Request validation failed.", errors=errors)
            return
        gpu = (body.get("gpu") or {}).get("id")
        cloud = body.get("cloud", "SECURE")
        if gpu is None:
            self._problem(h, 400, "exactly one of gpu or cpu must be set")
            return
        offer = next((g for g in self.gpus if g["id"] == gpu), None)
        if offer is None or not offer[cloud.lower()]:
            self._problem(h, 400, f"GPU type {gpu} is not offered in {cloud} cloud")
            return
        network = (body.get("mounts") or {}).get("network")
        if network and network.get("id") not in self.network_volumes:
            self._problem(h, 400, f"network volume {network.get('id')} not found")
            return
        if network and cloud != "SECURE":
            self._problem(h, 400, "network volumes are available in Secure Cloud only")
            return
        if gpu in self.no_capacity or (gpu, cloud) in self.no_capacity:
            self._problem(h, 400, CAPACITY_DETAIL)
            return
        try:
            machine = place(self.hosts.get(gpu, []), body["gpu"], CAPACITY_DETAIL)
        except PlacementError as exc:
            self._problem(h, exc.status, exc.detail)
            return
        self.created_bodies.append(body)
        pod = self._new_pod(body["name"], body, gpu, cloud)
        pod.host = machine
        threading.Thread(target=self._boot, args=(pod, pod.generation), daemon=True).start()
        if self.create_answer_delay_s > 0:
            with self.cond:
                self.cond.wait_for(lambda: self._closing, timeout=self.create_answer_delay_s)
        if self.lose_create_answers > 0:
            self.lose_create_answers -= 1
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        with self.cond:
            self._send(h, 201, pod.json())

    def _catalog(self, h: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        include = query.get("include")
        if include and not query.get("product"):
            self._problem(h, 400, "product is required with include=AVAILABILITY")
            return
        cloud = query.get("cloud", "SECURE")
        out = []
        for g in self.gpus:
            entry = {**g, "cudaVersions": sorted({h.cuda for h in self.hosts.get(g["id"], [])})}
            if include == "AVAILABILITY":
                entry["availability"] = self.stock.get((g["id"], cloud), self.stock.get(g["id"], "HIGH"))
            out.append(entry)
        self._send(h, 200, {"gpus": out})

    def _billing(self, h: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        with self.cond:
            every = list(self.pods.values()) + list(self.gone.values())
            wanted = [p for p in every if p.id == query["podId"]] if query.get("podId") else every
            records = [{"startTime": stamp(p.created), "endTime": stamp(), "podId": p.id,
                        "totalAmount": round(p.billed() * p.usd_per_hour / 3600 + p.storage_usd(), 6),
                        "gpuAmount": round(p.billed() * p.usd_per_hour / 3600, 6), "cpuAmount": 0.0,
                        "diskAmount": round(p.storage_usd(), 6)} for p in wanted]
        total, gpu, disk = (sum(r[k] for r in records) for k in ("totalAmount", "gpuAmount", "diskAmount"))
        self._send(h, 200, {"records": records, "metadata": {
            "query": {"podId": query.get("podId")}, "recordCount": len(records), "uniquePodCount": len(records),
            "totals": {"totalAmount": total, "gpuAmount": gpu, "cpuAmount": 0.0, "diskAmount": disk}}})

    def _logs(self, h: BaseHTTPRequestHandler, pod: FakePod, query: dict[str, str]) -> None:
        source = query.get("source")
        tail = query.get("tail", "100")
        if not tail.isdigit() or not 0 <= int(tail) <= MAX_LOG_TAIL:  # the spec's range; 422 as RunPod answers
            self._problem(h, 422, "Request validation failed.", errors=[f"$.tail: {tail} is not in 0..{MAX_LOG_TAIL}"])
            return
        resume = h.headers.get("Last-Event-ID")
        with self.cond:
            events = [e for e in pod.events if source in (None, e["source"])]
            if resume:
                try:
                    after = int(resume.rsplit("/", 1)[-1])
                except ValueError:
                    self._problem(h, 400, f"Last-Event-ID {resume!r} was not emitted by this endpoint")
                    return
                start = next((i for i, e in enumerate(events) if e["seq"] > after), len(events))
            elif query.get("since"):
                start = next((i for i, e in enumerate(events) if e["ts"] >= query["since"]), len(events))
            else:
                start = max(len(events) - int(tail), 0)
            cursor = events[start - 1]["seq"] if start > 0 else 0
            drop, self._drop_logs = self._drop_logs, None
        h.send_response(200)
        for name, value in (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                            ("Transfer-Encoding", "chunked"), ("Connection", "close"), ("X-Accel-Buffering", "no")):
            h.send_header(name, value)
        h.end_headers()
        h.close_connection = True
        sent = 0
        try:
            while True:
                with self.cond:
                    fresh = [e for e in pod.events if e["seq"] > cursor and source in (None, e["source"])]
                    if not fresh:
                        if self._closing or pod.status in ("EXITED", "TERMINATED", "ERROR"):
                            break
                        self.cond.wait(0.2)
                        continue
                for event in fresh:
                    if drop is not None and sent >= drop:
                        h.connection.shutdown(socket.SHUT_RDWR)  # cut mid-stream: no terminating chunk
                        return
                    data = json.dumps({"ts": event["ts"], "source": event["source"], "line": event["line"]})
                    chunk = f"id: {event['id']}\ndata: {data}\n\n".encode()
                    h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    h.wfile.flush()
                    cursor, sent = event["seq"], sent + 1
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            return

    @staticmethod
    def _drop(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)

    def _proxy(self, h: BaseHTTPRequestHandler, method: str, url: Any) -> None:
        body = self._body(h)
        if self.proxy_down:
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        target, _, rest = url.path[len("/proxy/"):].partition("/")
        pod_id, _, port = target.rpartition("-")
        with self.cond:
            pod = self.pods.get(pod_id)
        if pod is None or pod.status != "RUNNING" or pod.local_port is None or str(pod.agent_port) != port:
            self._problem(h, 502, f"no service on {target}")
            return
        cut = next((c for c in self._proxy_cuts if c["times"] > 0 and c["method"] == method
                    and c["part"] in url.path), None)
        if cut is not None:
            cut["times"] -= 1
        self.proxied.append((method, "/" + rest, cut is not None))
        if cut is not None and not cut["after"]:
            self._drop(h)
            return
        conn = http.client.HTTPConnection("127.0.0.1", pod.local_port, timeout=self.proxy_cut_s or 300)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP}
        try:
            conn.request(method, "/" + rest + (f"?{url.query}" if url.query else ""), body=body or None,
                         headers=headers)
            response = conn.getresponse()
            data = response.read()
        except TimeoutError:
            self._problem(h, 524, "a timeout occurred (the proxy cut the request)")
            return
        except (ConnectionError, http.client.HTTPException):
            self._problem(h, 502, f"no service on {target}")
            return
        finally:
            conn.close()
        if cut is not None:
            self._drop(h)
            return
        h.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP:
                h.send_header(name, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            h.wfile.write(data)


def _container_tmp(part: str, root: Path) -> str:
    """The container's own /tmp files (the agent the start command writes) land in the pod's folder; a path under
    /tmp that exists on this machine (a test file, a checkout under /tmp) is the host's and stays as it is."""
    return re.sub(r"/tmp/[^\s'\"&;|]*",
                  lambda m: m.group(0) if os.path.exists(m.group(0)) else f"{root}{m.group(0)}", part)
