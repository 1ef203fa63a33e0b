"""The in-pod agent: the one process a training pod runs. It starts from the pod's environment before anything of
bizsent is installed, so it is one file of standard library only and imports nothing from bizsent.

It receives the uploads the laptop sends through RunPod's HTTP proxy (the project wheel, the dataset bundle,
job.json) in resumable, checksummed chunks; installs the wheel into WORKDIR/site; trains with
`python -m bizsent train --local`; and serves health, the log tail, metric events and the adapter tar. Every
request needs the run's bearer token, and only fixed files inside WORKDIR are ever read for a request. A watchdog
thread stops or terminates the pod through the RunPod API with the pod-scoped key RunPod puts in the pod's
environment, so a pod whose laptop went away still ends (README, "Inside the pod").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import zipfile
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

UPLOADS = ("bizsent.whl", "bundle.tar", "job.json")
MAX_CHUNK = 64 * 1024 * 1024
MAX_JSON = 1024 * 1024
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SETTING_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
ACTION_RANK = {"stop": 1, "terminate": 2}
# Taken out of the agent's environment at start, so no child process (pip, training) ever sees them.
PRIVATE_ENV = ("BIZSENT_TOKEN", "RUNPOD_API_KEY", "BIZSENT_AGENT_B64")


class Refused(Exception):
    """A request the agent will not serve: an HTTP status, a one-line reason and extra JSON fields."""

    def __init__(self, status: int, reason: str, **extra: object) -> None:
        super().__init__(reason)
        self.status, self.extra = status, extra


class StepFailed(Exception):
    pass


@dataclass(frozen=True)
class Config:
    token: str
    port: int
    workdir: Path
    max_hours: float
    max_usd: float
    usd_per_hour: float
    idle_s: float
    grace_s: float
    tick_s: float
    install_deps: bool
    api_base: str
    pod_id: str
    pod_key: str
    billed_since: float  # wall clock: when the laptop created the pod (its bill starts there), else the agent's start


@dataclass
class State:
    phase: str = "waiting-upload"
    error: str | None = None
    adapter: dict | None = None
    collected: bool = False
    job: dict | None = None
    ended_at: float | None = None
    progress_at: float = field(default_factory=time.monotonic)
    fired: tuple[str, str] | None = None
    chunks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UPLOADS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)
    uploading: threading.Lock = field(default_factory=threading.Lock)  # held while a chunk or a whole file is checked


def say(line: str) -> None:
    print(f"bizsent-agent: {line}", flush=True)


def load_config(environ: MutableMapping[str, str]) -> Config:
    """The agent's settings; the secrets are popped from `environ` (os.environ) so children never inherit them."""
    secrets = {name: environ.pop(name, "") for name in PRIVATE_ENV}

    def number(name: str, default: float) -> float:
        try:
            value = float(environ.get(name, default))
        except ValueError:
            raise SystemExit(f"{name} must be a number") from None
        if not (value > 0 and math.isfinite(value)):
            raise SystemExit(f"{name} must be a positive number")
        return value

    if len(secrets["BIZSENT_TOKEN"]) < 16:
        raise SystemExit("BIZSENT_TOKEN is missing or shorter than 16 characters; the agent serves nothing without it")
    now = time.time()
    return Config(
        token=secrets["BIZSENT_TOKEN"], port=int(number("BIZSENT_PORT", 8765)),
        workdir=Path(environ.get("BIZSENT_WORKDIR", "/workspace/bizsent")).resolve(),
        max_hours=number("BIZSENT_MAX_HOURS", 5), max_usd=number("BIZSENT_MAX_USD", 5),
        usd_per_hour=number("BIZSENT_USD_PER_HOUR", 1), idle_s=number("BIZSENT_IDLE_MIN", 20) * 60,
        grace_s=number("BIZSENT_GRACE_MIN", 30) * 60, tick_s=number("BIZSENT_WATCHDOG_S", 15),
        install_deps=environ.get("BIZSENT_INSTALL_DEPS", "0") == "1",
        api_base=environ.get("BIZSENT_API_BASE", "https://api.runpod.io").rstrip("/"),
        pod_id=environ.get("RUNPOD_POD_ID", ""), pod_key=secrets["RUNPOD_API_KEY"],
        billed_since=min(number("BIZSENT_CREATED_AT", now), now),
    )


def confined(root: Path, relative: str) -> Path:
    """`root/relative`, refused unless it stays inside `root` once resolved (no absolute, '..' or symlink out)."""
    parts = relative.split("/")
    if relative.startswith("/") or "\\" in relative or any(p in ("", ".", "..") for p in parts):
        raise Refused(400, f"path {relative!r} is not a plain path inside the run folder")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise Refused(404, f"{relative!r} is outside the run folder")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def safe_extract(archive: Path, dest: Path) -> None:
    """Untar regular files and folders only, each inside `dest`: an absolute name, a '..' or a link refuses all."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            if not (m.isfile() or m.isdir()) or m.name.startswith("/") or "\\" in m.name or ".." in m.name.split("/"):
                raise tarfile.TarError(f"{archive.name} holds {m.name!r}, a link or a path outside its folder")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # Python before 3.11.4: the check above is the whole guard
            tar.extractall(dest, members=members)


def read_job(path: Path) -> dict:
    """job.json, checked: every value ends up on a command line or in a TOML file, so each has a strict shape."""
    try:
        job = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise Refused(400, "job.json is not a JSON object") from None
    if not isinstance(job, dict) or not isinstance(job.get("name"), str) or not RUN_NAME.fullmatch(job["name"]):
        raise Refused(400, "job.json needs a name of letters, digits, '.', '_' or '-' (at most 64)")
    if not isinstance(job.get("base_model"), str) or not job["base_model"]:
        raise Refused(400, "job.json needs a base_model")
    steps, four_bit = job.get("max_steps"), job.get("load_in_4bit")
    if steps is not None and (type(steps) is not int or steps < 1):
        raise Refused(400, "job.json max_steps must be a positive integer or null")
    if four_bit is not None and not isinstance(four_bit, bool):
        raise Refused(400, "job.json load_in_4bit must be true, false or null")
    train = job.get("train", {})
    scalar = (str, int, float, bool)
    if not isinstance(train, dict) or not all(
            isinstance(k, str) and SETTING_KEY.fullmatch(k) and (
                isinstance(v, scalar) or (isinstance(v, list) and all(isinstance(i, str) for i in v)))
            and not (isinstance(v, float) and not math.isfinite(v)) for k, v in train.items()):
        raise Refused(400, "job.json train must map setting names to strings, numbers, booleans or string lists")
    return {"name": job["name"], "base_model": job["base_model"], "max_steps": steps, "load_in_4bit": four_bit,
            "evaluate": job.get("evaluate", True) is True, "train": train}


def config_toml(job: dict) -> str:
    # JSON strings, numbers, booleans and string lists are valid TOML values too.
    return "[train]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in sorted(job["train"].items()))


def train_command(cfg: Config, job: dict) -> list[str]:
    w = cfg.workdir
    cmd = [sys.executable, "-m", "bizsent", "--config", str(w / "config.toml"), "--db", str(w / "pod.db"), "train",
           "--local", "--bundle", str(w / "bundle"), "--name", job["name"], "--base-model", job["base_model"],
           "--eval" if job["evaluate"] else "--no-eval"]
    if job["max_steps"] is not None:
        cmd += ["--max-steps", str(job["max_steps"])]
    if job["load_in_4bit"] is not None:
        cmd.append("--4bit" if job["load_in_4bit"] else "--no-4bit")
    return cmd


def run_dir(cfg: Config, job: dict) -> Path:
    return confined(cfg.workdir, f"runs/{job['name']}")  # where `train --db WORKDIR/pod.db --name N` writes


def child_env(site: Path) -> dict[str, str]:
    # The agent's own BIZSENT_* variables would read as bizsent settings (BIZSENT_SECTION__KEY) in the child.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIZSENT_") and k not in PRIVATE_ENV}
    # The base model (16 GB for the 7B) goes on the volume: the container disk is small and lost on a stop.
    return {"HF_HOME": str(site.parent / "hf"), **env, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}


def wheel_copy(upload: Path, dist: Path) -> Path:
    """The uploaded wheel under its real file name (pip reads name, version and tag from it)."""
    try:
        with zipfile.ZipFile(upload) as whl:
            info = next(n for n in whl.namelist() if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n))
            tag = next(line.split(":", 1)[1].strip() for line in whl.read(info).decode().splitlines()
                       if line.startswith("Tag:"))
    except (zipfile.BadZipFile, StopIteration, KeyError, UnicodeDecodeError):
        raise StepFailed("bizsent.whl is not a wheel") from None
    dist_name = info.split("/")[0].removesuffix(".dist-info")
    name_ok = re.fullmatch(r"[A-Za-z0-9_.]+-[A-Za-z0-9_.+!]+", dist_name)
    if not name_ok or not re.fullmatch(r"[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+", tag):
        raise StepFailed("bizsent.whl has an odd name or tag in its metadata")
    dist.mkdir(parents=True, exist_ok=True)
    target = dist / f"{dist_name}-{tag}.whl"
    shutil.copyfile(upload, target)
    return target


def step(log, what: str, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    log.write(f"bizsent-agent: {what}\n".encode())
    log.flush()
    code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          check=False).returncode
    if code != 0:
        raise StepFailed(f"{what} failed (exit code {code}); see the log")


def pack_adapter(folder: Path, dest: Path) -> dict:
    part = dest.with_name(dest.name + ".part")
    with tarfile.open(part, "w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    part.replace(dest)
    adapter = {"sha256": file_sha256(dest), "bytes": dest.stat().st_size}
    dest.with_name(dest.name + ".json").write_text(json.dumps(adapter), encoding="utf-8")
    return adapter


def run_job(cfg: Config, state: State) -> None:
    """Untar, install, train, pack the adapter; any failure ends in phase "failed" with a one-line error."""
    w, site = cfg.workdir, cfg.workdir / "site"
    job = state.job
    try:
        safe_extract(w / "uploads" / "bundle.tar", w / "bundle")
        wheel = wheel_copy(w / "uploads" / "bizsent.whl", w / "dist")
        env, py = child_env(site), sys.executable
        with (w / "train.log").open("ab") as log:
            if cfg.install_deps:
                step(log, "installing the training dependencies", [py, "-m", "pip", "install", "--no-input",
                                                                    f"{wheel}[train]"], env, w)
            step(log, "installing the project wheel", [py, "-m", "pip", "install", "--no-deps", "--no-index",
                                                      "--no-input", "--upgrade", "--target", str(site), str(wheel)],
                 env, w)
            # An older bizsent in the image would otherwise train silently with the wrong code.
            step(log, "checking that bizsent imports from the wheel", [py, "-c", (
                f"import sys, bizsent; print('bizsent from', bizsent.__file__); "
                f"sys.exit(not bizsent.__file__.startswith({str(site)!r}))")], env, w)
            (w / "config.toml").write_text(config_toml(job), encoding="utf-8")
            step(log, "creating the pod's database", [py, "-m", "bizsent", "--config", str(w / "config.toml"),
                                                     "--db", str(w / "pod.db"), "init"], env, w)
            with state.lock:
                state.phase = "training"
            step(log, "training", train_command(cfg, job), env, w)
        adapter_dir = run_dir(cfg, job) / "adapter"
        if not adapter_dir.is_dir():
            raise StepFailed("training ended without an adapter folder")
        adapter = pack_adapter(adapter_dir, w / "adapter.tar")
        with state.lock:
            state.phase, state.adapter = "done", adapter
    except (StepFailed, Refused, OSError, tarfile.TarError) as exc:
        with state.lock:
            state.phase, state.error = "failed", str(exc)
    except Exception as exc:  # the thread's edge: a bug here must still end in "failed", or the laptop waits on
        traceback.print_exc()
        with state.lock:
            state.phase, state.error = "failed", f"agent error {type(exc).__name__}; see the pod's container log"
    finally:
        with state.lock:
            state.ended_at = time.monotonic()
        say(f"job ended: {state.phase}{'' if state.error is None else ' (' + state.error + ')'}")


def recover(cfg: Config, state: State) -> None:
    """After a stop and a start the volume still holds the adapter: serve it again instead of waiting for uploads."""
    record, tar = cfg.workdir / "adapter.tar.json", cfg.workdir / "adapter.tar"
    try:
        if record.exists() and tar.exists():
            state.job = read_job(cfg.workdir / "uploads" / "job.json")
            state.phase, state.adapter, state.ended_at = "done", json.loads(record.read_text()), time.monotonic()
    except (Refused, OSError, ValueError) as exc:
        say(f"the adapter of an earlier start cannot be served ({exc}); waiting for uploads")


def complete_lines(path: Path) -> list[bytes]:
    """The file's lines up to its last newline: a line still being written is not read half."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines()


def read_events(cfg: Config, state: State) -> list[bytes]:
    return complete_lines(run_dir(cfg, state.job) / "events.jsonl") if state.job else []


def parsed(lines: list[bytes]) -> list[dict]:
    """The events among `lines`; a line that is not a JSON object (a writer killed mid-line) is skipped."""
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def latest_step(lines: list[bytes]) -> int | None:
    steps = [e["step"] for e in parsed(lines[-50:]) if e.get("kind") == "train" and isinstance(e.get("step"), int)]
    return steps[-1] if steps else None


def decide(cfg: Config, state: State, now: float, mono: float) -> tuple[str, str] | None:
    """What the watchdog does now, if anything: (action, reason)."""
    hours = (now - cfg.billed_since) / 3600
    if state.collected:
        return "terminate", "the adapter was collected"
    if state.ended_at is not None and mono - state.ended_at >= cfg.grace_s:
        # Stop, not terminate: the volume keeps the adapter (or the log of a failure) for a later collect.
        return "stop", f"training ended {cfg.grace_s / 60:g} min ago and the adapter was not collected"
    if hours >= cfg.max_hours:
        return "stop", f"the pod ran {cfg.max_hours:g} h (max_hours)"
    if hours * cfg.usd_per_hour >= cfg.max_usd:
        return "stop", f"the pod cost ${cfg.max_usd:g} at ${cfg.usd_per_hour:g}/h (max_dollars)"
    if state.ended_at is None and mono - state.progress_at >= cfg.idle_s:
        return "stop", f"no progress for {cfg.idle_s / 60:g} min (idle_timeout_min)"
    return None


def pod_action(cfg: Config, action: str) -> bool:
    if not (cfg.pod_id and cfg.pod_key):
        say(f"watchdog: cannot {action} the pod: RUNPOD_POD_ID or RUNPOD_API_KEY is not set")
        return False
    request = urllib.request.Request(
        f"{cfg.api_base}/v2/pods/{cfg.pod_id}/action", data=json.dumps({"action": action}).encode(), method="POST",
        headers={"Authorization": f"Bearer {cfg.pod_key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30):
            return True
    except urllib.error.HTTPError as exc:
        say(f"watchdog: {action} refused by the RunPod API (HTTP {exc.code}); trying again")
    except (urllib.error.URLError, OSError) as exc:
        say(f"watchdog: {action} did not reach the RunPod API ({type(exc).__name__}); trying again")
    return False


def watchdog(cfg: Config, state: State) -> None:
    sizes: tuple[int, ...] = ()
    while True:
        time.sleep(cfg.tick_s)
        try:
            sizes = watch_once(cfg, state, sizes)
        except Exception:  # the watchdog is the pod's last brake: it must outlive any one bad tick
            traceback.print_exc()


def watch_once(cfg: Config, state: State, seen: tuple[int, ...]) -> tuple[int, ...]:
    """One tick: growth of the log or the events counts as progress; then the first rule of `decide` that holds
    acts. Returns the file sizes seen."""
    with state.lock:
        files = [cfg.workdir / "train.log"] + ([run_dir(cfg, state.job) / "events.jsonl"] if state.job else [])
    sizes = tuple(p.stat().st_size if p.exists() else -1 for p in files)
    with state.lock:
        if sizes != seen:
            state.progress_at = time.monotonic()
        decision = decide(cfg, state, time.time(), time.monotonic())
        # Only ever escalate: a stop that took effect ends this process; a later collect may still terminate.
        if decision is None or (state.fired and ACTION_RANK[state.fired[0]] >= ACTION_RANK[decision[0]]):
            return sizes
    say(f"watchdog: {decision[0]} the pod: {decision[1]}")
    if pod_action(cfg, decision[0]):
        with state.lock:
            state.fired = decision
    return sizes


def upload_status(cfg: Config, state: State, name: str) -> dict:
    folder = cfg.workdir / "uploads"
    record, final, part = folder / f"{name}.sha256", folder / name, folder / f"{name}.part"
    if record.exists() and final.exists():
        return {"bytes": final.stat().st_size, "chunks": state.chunks[name], "done": True, "sha256": record.read_text()}
    return {"bytes": part.stat().st_size if part.exists() else 0, "chunks": state.chunks[name], "done": False,
            "sha256": None}


def put_chunk(cfg: Config, state: State, name: str, offset: int, body: bytes, claimed: str) -> dict:
    if state.phase != "waiting-upload":
        raise Refused(409, "training has started; uploads are closed")
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), claimed.strip().lower()):
        raise Refused(400, "chunk checksum mismatch (X-Chunk-Sha256); send the chunk again")
    with state.uploading:
        status = upload_status(cfg, state, name)
        if status["done"]:
            raise Refused(409, f"{name} is already complete", **status)
        if offset != status["bytes"]:
            raise Refused(409, f"{name} continues at byte {status['bytes']}, not {offset}", bytes=status["bytes"])
        with (cfg.workdir / "uploads" / f"{name}.part").open("ab") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        with state.lock:
            state.chunks[name] += 1
            state.progress_at = time.monotonic()
    return {"bytes": offset + len(body)}


def finish_upload(cfg: Config, state: State, name: str, claimed: object) -> dict:
    folder = cfg.workdir / "uploads"
    with state.uploading:
        status = upload_status(cfg, state, name)
        if status["done"]:
            if status["sha256"] != claimed:
                raise Refused(409, f"{name} is already complete with another checksum", **status)
            return status
        part = folder / f"{name}.part"
        if not isinstance(claimed, str) or not part.exists() or file_sha256(part) != claimed.lower():
            part.unlink(missing_ok=True)  # a bad whole file has no good prefix to resume from
            state.chunks[name] = 0
            raise Refused(400, f"{name} does not match the sha256 given; upload it again from byte 0", bytes=0)
        try:
            if name == "job.json":
                read_job(part)
        except Refused:
            part.unlink()
            raise
        part.replace(folder / name)
        (folder / f"{name}.sha256").write_text(claimed.lower(), encoding="utf-8")
        return upload_status(cfg, state, name)


def start(cfg: Config, state: State) -> dict:
    with state.lock:
        if state.phase != "waiting-upload":
            raise Refused(409, f"already started (state {state.phase})")
        missing = [n for n in UPLOADS if not upload_status(cfg, state, n)["done"]]
        if missing:
            raise Refused(409, f"not uploaded and verified yet: {', '.join(missing)}", missing=missing)
        state.job, state.phase = read_job(cfg.workdir / "uploads" / "job.json"), "installing"
    threading.Thread(target=run_job, args=(cfg, state), daemon=True, name="job").start()
    return {"state": "installing"}


def health(cfg: Config, state: State) -> dict:
    with state.lock:
        fired = state.fired
        out = {"state": state.phase, "error": state.error, "adapter": state.adapter, "collected": state.collected}
    return {**out, "step": latest_step(read_events(cfg, state)), "uptime_s": round(time.time() - cfg.billed_since, 1),
            "watchdog": {"action": fired[0], "reason": fired[1]} if fired else None}


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


def main() -> None:
    cfg = load_config(os.environ)
    (cfg.workdir / "uploads").mkdir(parents=True, exist_ok=True)
    state = State()
    recover(cfg, state)
    threading.Thread(target=watchdog, args=(cfg, state), daemon=True, name="watchdog").start()
    server = AgentServer(cfg, state)
    say(f"listening on port {cfg.port}, run folder {cfg.workdir}, state {state.phase}")
    server.serve_forever()


if __name__ == "__main__":
    main()
