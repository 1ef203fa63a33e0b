"""The job on the pod: untar the bundle, install the uploaded wheel into WORKDIR/site, run the task
(`python -m bizsent train --local`, or `bizsent pod-work` for scoring tasks), and pack its result (the adapter, or
the scores) as a tar with its sha256."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import zipfile
from pathlib import Path

from .config import PRIVATE_ENV, UPLOADS, Config, Refused, State, say
from .files import file_sha256, safe_extract
from .gpu import PROBE, Unusable, check_host, check_torch, probe_result, read_host
from .gpu import report as gpu_report
from .job import config_toml, evaluates_after_training, read_job, result_dir, task_command, torch_index, work_command
from .uploads import upload_status

STARTED = "job.started"  # on the volume once /start was accepted: a later start of the agent knows a run was cut


class StepFailed(Exception):
    """A step of the job that failed; its one line becomes the job's error."""


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


def install_command(cfg: Config, job: dict, wheel: Path) -> list[str]:
    """pip install of the wheel's training extra, pinned by job.json's constraints (the laptop's constraints.txt
    for this torch build), from PyTorch's index where the pinned torch build is not on PyPI."""
    if not job["constraints"]:
        raise StepFailed("job.json has no constraints; a pod installs pinned versions only (update bizsent)")
    pins = cfg.workdir / "constraints.txt"
    pins.write_text("\n".join(job["constraints"]) + "\n", encoding="utf-8")
    index = torch_index(job["constraints"])
    return [sys.executable, "-m", "pip", "install", "--no-input", "-c", str(pins),
            *(["--extra-index-url", index] if index else []), f"{wheel}[train]"]


def check_gpu_at_boot(cfg: Config, state: State) -> None:
    """Before any upload: the host's GPU (nvidia-smi) against the torch build the pod installs and the recipe. A
    GPU that does not fit fails the run at once, one line in /health, so nothing is uploaded or installed."""
    try:
        host = read_host()
        checked = check_host(host, require_gpu=cfg.require_gpu, torch_cuda=cfg.torch_cuda if cfg.install_deps else "",
                             min_capability=cfg.min_capability, min_free_mib=cfg.min_free_mib)
    except Unusable as exc:
        with state.lock:
            state.phase, state.error, state.ended_at = "failed", str(exc), time.monotonic()
        say(str(exc))
        return
    with state.lock:
        state.gpu = gpu_report(host, checked)
    say("GPU check: " + "; ".join(checked))


def check_torch_build(cfg: Config, state: State, log, env: dict[str, str]) -> None:
    """After the installs, before training: the torch the run imports, against the host's driver, and (with
    require_gpu) that it can use the GPU."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=cfg.workdir,
                          stdin=subprocess.DEVNULL, check=False)
    log.write(f"bizsent-agent: checking torch against the GPU\n{done.stdout}{done.stderr}".encode())
    log.flush()
    try:
        torch = probe_result(done.stdout)
        line = check_torch(read_host(), torch, require_gpu=cfg.require_gpu)
    except Unusable as exc:
        raise StepFailed(str(exc)) from None
    say(f"GPU check: {line}")
    with state.lock:
        state.gpu = {**(state.gpu or gpu_report(None, [])), "torch": torch, "cuda": bool(torch.get("available"))}
        state.gpu["checked"] = [*state.gpu["checked"], line]


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
                step(log, "installing the training dependencies (pinned)", install_command(cfg, job, wheel), env, w)
            step(log, "installing the project wheel", [py, "-m", "pip", "install", "--no-deps", "--no-index",
                                                      "--no-input", "--upgrade", "--target", str(site), str(wheel)],
                 env, w)
            # An older bizsent in the image would otherwise train silently with the wrong code.
            step(log, "checking that bizsent imports from the wheel", [py, "-c", (
                f"import sys, bizsent; print('bizsent from', bizsent.__file__); "
                f"sys.exit(not bizsent.__file__.startswith({str(site)!r}))")], env, w)
            check_torch_build(cfg, state, log, env)
            (w / "config.toml").write_text(config_toml(job, require_cuda=cfg.require_gpu), encoding="utf-8")
            step(log, "creating the pod's database", [py, "-m", "bizsent", "--config", str(w / "config.toml"),
                                                     "--db", str(w / "pod.db"), "init"], env, w)
            with state.lock:
                state.phase = "training" if job["task"] == "train" else "running"
            step(log, "training" if job["task"] == "train" else f"running {job['task']}", task_command(cfg, job),
                 env, w)
            if evaluates_after_training(job):  # on the same pod: no second start-up for the evaluation
                with state.lock:
                    state.phase = "running"
                step(log, "evaluating the new adapter", work_command(cfg), env, w)
        adapter_dir = result_dir(cfg, job)
        if not adapter_dir.is_dir():
            raise StepFailed(f"{job['task']} ended without its result folder ({adapter_dir.name})")
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
    """A new start of the agent on the same volume. After a stop and a start the volume still holds the adapter:
    serve it again instead of waiting for uploads. A job that had started but left no adapter was cut short (RunPod
    restarts a container whose process died, and the container disk with it): the run has failed, say so."""
    record, tar = cfg.workdir / "adapter.tar.json", cfg.workdir / "adapter.tar"
    try:
        if record.exists() and tar.exists():
            state.job = read_job(cfg.workdir / "uploads" / "job.json")
            state.phase, state.adapter, state.ended_at = "done", json.loads(record.read_text()), time.monotonic()
        elif (cfg.workdir / STARTED).exists():
            state.job = read_job(cfg.workdir / "uploads" / "job.json")
            state.phase, state.ended_at = "failed", time.monotonic()
            state.error = ("the pod's container restarted during the run (the agent or training was killed); "
                           "its log is on the pod's volume")
    except (Refused, OSError, ValueError) as exc:
        say(f"the adapter of an earlier start cannot be served ({exc}); waiting for uploads")


def start(cfg: Config, state: State) -> dict:
    with state.lock:
        if state.phase != "waiting-upload":
            raise Refused(409, f"already started (state {state.phase})")
        missing = [n for n in UPLOADS if not upload_status(cfg, state, n)["done"]]
        if missing:
            raise Refused(409, f"not uploaded and verified yet: {', '.join(missing)}", missing=missing)
        state.job, state.phase = read_job(cfg.workdir / "uploads" / "job.json"), "installing"
        (cfg.workdir / STARTED).write_text(state.job["name"], encoding="utf-8")
    threading.Thread(target=run_job, args=(cfg, state), daemon=True, name="job").start()
    return {"state": "installing"}
