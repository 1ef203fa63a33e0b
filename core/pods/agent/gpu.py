"""Is this pod's GPU usable for the run? The host as `nvidia-smi` reports it (driver, the newest CUDA version that
driver supports, compute capability, free memory), checked against the torch build the run uses and the recipe's
needs, before anything is trained. A check that fails is one line, `no usable GPU: ...`.

The rule (docs/pods.md "Inside the pod"): the host driver's CUDA version must be at least the one torch was built for
(a driver runs builds for its own CUDA version and older ones; CUDA's minor-version compatibility within a major
version does not cover PTX compiled at run time, so an older minor is refused too); with `require_gpu` the GPU's
compute capability and free memory must fit the recipe, and torch must see CUDA. Without `require_gpu` (tests on
machines without a GPU) only the driver-versus-build rule applies, to whatever `nvidia-smi` reports.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass

QUERY = ["nvidia-smi", "--query-gpu=driver_version,name,compute_cap,memory.total,memory.free",
         "--format=csv,noheader,nounits"]
# What the training child runs before training: the torch it imports (the build the run trains with), and, where
# it sees a GPU, one small computation on it (is_available() alone holds on a GPU whose kernels this build lacks).
PROBE = """
import json, torch
out = {"torch": torch.__version__, "cuda": torch.version.cuda, "available": torch.cuda.is_available()}
if out["available"]:
    try:
        out["sum"] = float((torch.ones(4, device="cuda") * 2).sum().item())
        out["capability"] = "%d.%d" % torch.cuda.get_device_capability(0)
        out["free_mib"] = torch.cuda.mem_get_info(0)[0] // 2**20
    except Exception as exc:
        out["available"], out["why"] = False, (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0][:200]
print("BIZSENT_TORCH " + json.dumps(out))
"""


class Unusable(Exception):
    """The GPU does not fit the run; the message is the one line the laptop prints."""

    def __init__(self, why: str) -> None:
        super().__init__(f"no usable GPU: {why}")


@dataclass(frozen=True, slots=True)
class Host:
    driver: str
    cuda: str  # the newest CUDA version the driver supports ("CUDA Version" in nvidia-smi's header)
    name: str
    capability: str
    total_mib: int
    free_mib: int


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def read_host(run=subprocess.run) -> Host | None:
    """The first GPU as nvidia-smi sees it; None when there is no nvidia-smi (no NVIDIA driver in the container)."""
    try:
        header = run(["nvidia-smi"], capture_output=True, text=True, timeout=60, check=False)
        query = run(QUERY, capture_output=True, text=True, timeout=60, check=False)
    except (FileNotFoundError, PermissionError):
        return None
    except subprocess.TimeoutExpired:
        raise Unusable("nvidia-smi did not answer within 60 s (a hung driver)") from None
    cuda = re.search(r"CUDA Version:\s*(\d+\.\d+)", header.stdout)
    rows = [line.split(",") for line in query.stdout.splitlines() if line.strip()]
    if header.returncode != 0 or query.returncode != 0 or not cuda or not rows or len(rows[0]) != 5:
        last = (header.stderr or query.stderr or header.stdout).strip().splitlines()
        raise Unusable(f"nvidia-smi failed ({last[-1] if last else 'no output'})")
    driver, name, capability, total, free = (part.strip() for part in rows[0])
    try:
        return Host(driver, cuda[1], name, capability, int(float(total)), int(float(free)))
    except ValueError:
        raise Unusable(f"nvidia-smi reported memory as {total!r} / {free!r}") from None


def check_build(host: Host, torch_cuda: str) -> None:
    """The driver-versus-build rule (the message names both, as the issue asks the laptop to print)."""
    if version(host.cuda) < version(torch_cuda):
        raise Unusable(f"driver {host.driver} supports CUDA {host.cuda}, torch was built for {torch_cuda}")


def check_host(host: Host | None, *, require_gpu: bool, torch_cuda: str, min_capability: str,
               min_free_mib: int) -> list[str]:
    """The checks nvidia-smi alone allows (before anything is installed); returns what was checked."""
    if host is None:
        if require_gpu:
            raise Unusable("nvidia-smi is missing, so this container has no NVIDIA driver")
        return ["no nvidia-smi: no GPU (require_gpu is off, so the run may use the CPU)"]
    done = [f"{host.name}, driver {host.driver}, CUDA {host.cuda}, compute capability {host.capability}, "
            f"{host.free_mib} MiB free"]
    if torch_cuda:
        check_build(host, torch_cuda)
        done.append(f"driver fits the CUDA {torch_cuda} build of torch")
    if version(host.capability) < version(min_capability):
        raise Unusable(f"the {host.name} has compute capability {host.capability}, the recipe needs "
                       f"{min_capability} (bf16)")
    if host.free_mib < min_free_mib:
        raise Unusable(f"the {host.name} has {host.free_mib} MiB free, the recipe needs about {min_free_mib} MiB")
    return done


def probe_result(output: str) -> dict:
    """The probe's report from the child's output (other lines, such as warnings, are skipped)."""
    for line in reversed(output.splitlines()):
        if line.startswith("BIZSENT_TORCH "):
            return json.loads(line.split(" ", 1)[1])
    raise Unusable("torch could not be imported in the pod's environment; see the log")


def check_torch(host: Host | None, torch: dict, *, require_gpu: bool) -> str:
    """The installed torch against the host: its CUDA build, and (with require_gpu) that it can use the GPU."""
    build = torch.get("cuda")
    if host is not None and build:
        check_build(host, build)
    if require_gpu:
        if not build:
            raise Unusable(f"torch {torch.get('torch')} is a CPU-only build")
        if not torch.get("available"):
            where = f"driver {host.driver} (CUDA {host.cuda})" if host else "no driver"
            failed = f" ({torch['why']})" if torch.get("why") else ""
            raise Unusable(f"CUDA does not work: torch {torch.get('torch')} (CUDA {build}) sees no GPU with "
                           f"{where}{failed}")
        return f"torch {torch.get('torch')} (CUDA {build}) uses the GPU"
    if torch.get("available"):
        return f"torch {torch.get('torch')} (CUDA {build}) uses the GPU"
    return f"torch {torch.get('torch')} (CUDA {build or 'none'}) sees no GPU; require_gpu is off: training on the CPU"


def report(host: Host | None, checked: list[str]) -> dict:
    """What /health says about the GPU: the host, and each check that passed."""
    return {"host": asdict(host) if host else None, "checked": checked}
