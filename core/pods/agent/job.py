"""The run itself: job.json's strict rule, the training command it becomes, and where the run writes its events."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from .config import Config, Refused, State
from .files import complete_lines, confined, parsed

# What a pod does for the laptop: train a run, or score with one (evaluate, the pool, self-train); each task but
# train runs `bizsent pod-work` (bizsent.jobs.pod_work), which reads this same job.json.
TASKS = ("train", "eval", "score-pool", "selftrain")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SETTING_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
# One pinned install, with the python_version marker constraints.txt gives a package pinned per Python (pip on the
# pod picks the line for its own Python); nothing else, so a job file cannot smuggle pip options in.
PIN = re.compile(r'([A-Za-z0-9][A-Za-z0-9._-]{0,99})==([A-Za-z0-9.!+_-]{1,64})'
                 r'(; python_version (?:<|<=|==|>=|>) "\d+\.\d+"(?: and python_version (?:<|<=|==|>=|>) "\d+\.\d+")?)?')


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
    train, task, args = job.get("train", {}), job.get("task", "train"), job.get("args", {})
    if not _settings_shaped(train):
        raise Refused(400, "job.json train must map setting names to strings, numbers, booleans or string lists")
    if task not in TASKS:
        raise Refused(400, f"job.json task must be one of {', '.join(TASKS)}")
    if not _settings_shaped(args):
        raise Refused(400, "job.json args must map names to strings, numbers, booleans or string lists")
    pins = job.get("constraints", [])
    if not isinstance(pins, list) or not all(isinstance(p, str) and PIN.fullmatch(p) for p in pins):
        raise Refused(400, "job.json constraints must be a list of name==version pins")
    return {"name": job["name"], "base_model": job["base_model"], "max_steps": steps, "load_in_4bit": four_bit,
            "evaluate": job.get("evaluate", True) is True, "train": train, "constraints": pins, "task": task,
            "args": args}


def _settings_shaped(values: object) -> bool:
    scalar = (str, int, float, bool)
    return isinstance(values, dict) and all(
        isinstance(k, str) and SETTING_KEY.fullmatch(k) and (
            isinstance(v, scalar) or (isinstance(v, list) and all(isinstance(i, str) for i in v)))
        and not (isinstance(v, float) and not math.isfinite(v)) for k, v in values.items())


def config_toml(job: dict, *, require_cuda: bool) -> str:
    # JSON strings, numbers, booleans and string lists are valid TOML values too. require_cuda is the agent's
    # own setting (runpod.require_gpu), whatever job.json says: training.py then never falls back to the CPU.
    train = {**job["train"], "require_cuda": require_cuda}
    return "[train]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in sorted(train.items()))


def torch_index(pins: list[str]) -> str | None:
    """PyTorch's index for a pinned torch build that PyPI does not have (`torch==2.14.1+cu128` -> .../whl/cu128)."""
    for pin in pins:
        name, _, ver = pin.partition("==")
        local = re.fullmatch(r"[0-9.]+\+(cu[0-9]{3})", ver)
        if name.lower() == "torch" and local:
            return f"https://download.pytorch.org/whl/{local[1]}"
    return None


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


def evaluates_after_training(job: dict) -> bool:
    """A train job whose args name a split: the same pod evaluates the new adapter on it (`bizsent pod-work`)."""
    return job["task"] == "train" and bool(job["args"].get("split"))


def task_command(cfg: Config, job: dict) -> list[str]:
    """The command of the job's task: training, or `bizsent pod-work` reading job.json for any other task."""
    if job["task"] == "train":
        return train_command(cfg, job)
    return work_command(cfg)


def work_command(cfg: Config) -> list[str]:
    w = cfg.workdir
    return [sys.executable, "-m", "bizsent", "--config", str(w / "config.toml"), "--db", str(w / "pod.db"),
            "pod-work", "--workdir", str(w)]


def result_dir(cfg: Config, job: dict) -> Path:
    """The folder the task leaves for the laptop (served as the result tar): a training run's adapter, or the
    scores of any other task (and of an evaluation after training, with the adapter in it)."""
    plain_training = job["task"] == "train" and not evaluates_after_training(job)
    return run_dir(cfg, job) / ("adapter" if plain_training else "result")


def run_dir(cfg: Config, job: dict) -> Path:
    return confined(cfg.workdir, f"runs/{job['name']}")  # where `train --db WORKDIR/pod.db --name N` writes


def read_events(cfg: Config, state: State) -> list[bytes]:
    return complete_lines(run_dir(cfg, state.job) / "events.jsonl") if state.job else []


def latest_step(lines: list[bytes]) -> int | None:
    steps = [e["step"] for e in parsed(lines[-50:]) if e.get("kind") == "train" and isinstance(e.get("step"), int)]
    return steps[-1] if steps else None
