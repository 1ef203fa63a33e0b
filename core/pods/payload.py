"""What the laptop sends a training pod: the project wheel (built here from this checkout, offline, cached by a hash
of its sources), the dataset bundle as one tar, job.json with the training arguments, and the pod's environment
(`pod_env`). None of them carries a secret of the user: the wheel holds the package's sources only, and
`pod_env` refuses to return an environment that contains the value of any secret variable of this process.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bizsent.core.config import Settings, TrainSettings
from bizsent.core.errors import BizsentError
from bizsent.core.log import secret_values
from bizsent.core.pods import agent
from bizsent.core.pods.agent.config import Refused
from bizsent.core.pods.agent.files import file_sha256
from bizsent.core.pods.agent.job import read_job
from bizsent.core.pods.gpu_fit import gpu_env
from bizsent.core.pods.podlock import read_pod_lock

REPO_ROOT = Path(__file__).resolve().parents[2]
POD_WORKDIR = "/workspace/bizsent"  # on the pod's volume, so a stopped pod keeps it
AGENT_PACKAGE = "bizsent_agent"  # the agent package's name inside the zipapp; it imports only itself and the stdlib
# The zipapp's entry runs the package's __main__ as a module of its package, so its relative imports resolve.
AGENT_ENTRY = f"import runpy\n\nrunpy.run_module({AGENT_PACKAGE!r}, run_name='__main__', alter_sys=True)\n"


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str  # the agent's upload name: bizsent.whl, bundle.tar or job.json
    path: Path
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True)
class Payload:
    wheel: Artifact
    bundle: Artifact
    job: Artifact

    @property
    def artifacts(self) -> tuple[Artifact, Artifact, Artifact]:
        return self.wheel, self.bundle, self.job


def artifact(name: str, path: Path) -> Artifact:
    return Artifact(name, path, file_sha256(path), path.stat().st_size)


def source_files(root: Path = REPO_ROOT) -> list[Path]:
    """The files setuptools builds the wheel from: pyproject.toml, README.md, and the modules and package data of
    every package pyproject.toml lists (each package's own folder, not its subfolders: those are packages too)."""
    pyproject = root / "pyproject.toml"
    if not pyproject.exists():
        raise BizsentError(f"{root} has no pyproject.toml; training on a pod builds the project wheel from the "
                           "bizsent source checkout, so run bizsent from one")
    tool = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["setuptools"]
    (top, top_dir), = tool["package-dir"].items()
    files = [pyproject, root / "README.md", *sorted(root.glob("LICEN[CS]E*"))]
    for package in tool["packages"]:
        folder = root / top_dir / Path(*package.removeprefix(top).split(".")[1:])
        files += sorted(folder.glob("*.py"))
        for pattern in tool.get("package-data", {}).get(package, []):
            files += sorted(p for p in folder.glob(pattern) if p.is_file())
    return files


def build_wheel(cache_dir: Path, root: Path = REPO_ROOT) -> Artifact:
    """The project wheel, built with setuptools from a copy of `source_files` (so nothing else of the checkout can
    end up in it), offline; a wheel built before from the same sources is reused."""
    files = source_files(root)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    folder = Path(cache_dir) / digest.hexdigest()[:24]
    built = sorted(folder.glob("*.whl"))
    if built:
        return artifact("bizsent.whl", built[0])
    with tempfile.TemporaryDirectory(prefix="bizsent-wheel-") as tmp:
        stage, out = Path(tmp) / "src", Path(tmp) / "out"
        for path in files:
            dest = stage / path.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        secrets = {name for name, _ in secret_values()}
        env = {k: v for k, v in os.environ.items() if k not in secrets}
        code = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
        done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=stage, env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BizsentError(f"building the project wheel failed: {last}; is setuptools installed "
                               f"({sys.executable} -m pip install 'setuptools>=69')?")
        wheel = out / done.stdout.strip().splitlines()[-1]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, folder / f"{wheel.name}.part")
        (folder / f"{wheel.name}.part").replace(folder / wheel.name)
    return artifact("bizsent.whl", folder / wheel.name)


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def pack_bundle(bundle_dir: Path, dest: Path, *, splits: tuple[str, ...] = ("train", "val", "dev"),
                extra: dict[str, Path] | None = None) -> Artifact:
    """The bundle folder (`bizsent dataset build`) as one tar, names relative to it: its manifest, the `splits`
    it lists and the images those splits use, so the human test labels go to a pod only for the step that scores
    them; plus each folder of `extra` under its name (a run's adapter, the pool's posts)."""
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "manifest.json").exists():
        raise BizsentError(f"{bundle_dir} is not a dataset bundle (no manifest.json); build one with "
                           "`bizsent dataset build`")
    members = [(bundle_dir / "manifest.json", "manifest.json")]
    for split in splits:
        path = bundle_dir / f"{split}.jsonl"
        if path.exists():
            members.append((path, path.name))
            members += [(bundle_dir / image, image) for row in path.read_text(encoding="utf-8").splitlines()
                        if row.strip() for image in json.loads(row).get("images", [])]
    for name, folder in (extra or {}).items():
        members += [(p, f"{name}/{p.relative_to(folder).as_posix()}") for p in sorted(Path(folder).rglob("*"))
                    if not p.is_dir()]
    part = dest.with_name(dest.name + ".part")
    with tarfile.open(part, "w") as tar:
        for arcname, path in sorted(dict((a, p) for p, a in members).items()):
            if path.is_symlink() or not path.is_file():
                raise BizsentError(f"{path} in the bundle is a link, a special file or missing; rebuild the bundle")
            tar.add(path, arcname=arcname, recursive=False, filter=_plain)
    part.replace(dest)
    return artifact("bundle.tar", dest)


def write_job(dest: Path, *, name: str, cfg: TrainSettings, max_steps: int | None = None,
              load_in_4bit: bool | None = None, evaluate: bool = True,
              constraints: list[str] | None = None, task: str = "train", args: dict | None = None) -> Artifact:
    """job.json: the run's name, the task (train, or a scoring task with its args), the training arguments and
    the pins the pod installs with (core.pods.podlock), checked by the same rule the agent applies."""
    job = {"name": name, "base_model": cfg.base_model, "max_steps": max_steps, "load_in_4bit": load_in_4bit,
           "evaluate": evaluate, "train": cfg.model_dump(mode="json"), "constraints": constraints or [],
           "task": task, "args": args or {}}
    dest.write_text(json.dumps(job, indent=2), encoding="utf-8")
    try:
        read_job(dest)
    except Refused as exc:
        raise BizsentError(f"the pod would refuse this run: {exc}") from None
    return artifact("job.json", dest)


def prepare_payload(settings: Settings, bundle_dir: Path, work_dir: Path, *, name: str, max_steps: int | None = None,
                    load_in_4bit: bool | None = None, evaluate: bool = True, cfg: TrainSettings | None = None,
                    task: str = "train", args: dict | None = None, splits: tuple[str, ...] = ("train", "val", "dev"),
                    extra: dict[str, Path] | None = None) -> Payload:
    """Wheel (cached under data/pods/wheels), bundle.tar (the bundle's `splits` and the `extra` folders) and
    job.json (in `work_dir`) for one pod job."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    return Payload(
        wheel=build_wheel(settings.data_dir / "pods" / "wheels"),
        bundle=pack_bundle(bundle_dir, work_dir / "bundle.tar", splits=splits, extra=extra),
        job=write_job(work_dir / "job.json", name=name, cfg=cfg or settings.train, max_steps=max_steps,
                      load_in_4bit=load_in_4bit, evaluate=evaluate, task=task, args=args,
                      constraints=read_pod_lock(REPO_ROOT / "constraints.txt", settings.runpod.torch_cuda)),
    )


def agent_zipapp(package_dir: Path) -> bytes:
    """The agent package as a zipapp, built in memory: its modules under AGENT_PACKAGE/ plus a __main__.py that
    runs it. Deterministic (sorted names, fixed timestamps and modes), so the pod's env value only changes with
    the agent's sources."""
    buffer = io.BytesIO()
    members = [("__main__.py", AGENT_ENTRY.encode())]
    members += [(f"{AGENT_PACKAGE}/{path.name}", path.read_bytes()) for path in sorted(package_dir.glob("*.py"))]
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            zf.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def agent_b64(agent_path: Path | None = None) -> str:
    """The pod's BIZSENT_AGENT_B64 (the start command decodes it to a file and runs it with python3), read now: a
    pod runs the agent of the bizsent that started it. The agent package goes as a zipapp; `agent_path` may name
    another package folder, or one script file (a test's stand-in agent), which goes as it is."""
    path = Path(agent_path or Path(agent.__file__).parent)
    try:
        data = agent_zipapp(path) if path.is_dir() else path.read_bytes()
    except OSError as exc:
        raise BizsentError(f"cannot read the pod agent {path} ({exc.strerror}); reinstall bizsent") from None
    return base64.b64encode(data).decode("ascii")


def pod_env(settings: Settings, token: str, *, port: int, usd_per_hour: float, grace_min: float,
            install_deps: bool, created_at: float | None = None, workdir: str = POD_WORKDIR,
            agent_path: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the laptop gives the pod (RunPod adds RUNPOD_POD_ID and a pod-scoped RUNPOD_API_KEY).

    Raises when any name or value would carry a secret of this process (the user's RUNPOD_API_KEY above all)."""
    runpod = settings.runpod
    env = {
        "BIZSENT_TOKEN": token, "BIZSENT_PORT": str(port), "BIZSENT_WORKDIR": workdir,
        "BIZSENT_MAX_HOURS": repr(runpod.max_hours), "BIZSENT_MAX_USD": repr(runpod.max_dollars),
        "BIZSENT_USD_PER_HOUR": repr(usd_per_hour), "BIZSENT_IDLE_MIN": repr(runpod.idle_timeout_min),
        "BIZSENT_GRACE_MIN": repr(grace_min), "BIZSENT_INSTALL_DEPS": "1" if install_deps else "0",
        "BIZSENT_API_BASE": runpod.api_base.rstrip("/"), "BIZSENT_CREATED_AT": repr(created_at or time.time()),
        "BIZSENT_AGENT_B64": agent_b64(agent_path), **gpu_env(settings), **(extra or {}),
    }
    leaked = sorted({var for var, value in secret_values() for name, text in env.items()
                     if var == name or value in text})
    if leaked:
        raise BizsentError(f"the pod's environment would contain the value of {', '.join(leaked)}; refusing to "
                           "create the pod (is the run token or a setting equal to a key?)")
    return env
