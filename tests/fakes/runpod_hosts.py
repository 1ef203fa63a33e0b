"""The fake RunPod's GPU hosts: each GPU type runs on hosts whose NVIDIA driver supports one CUDA version, a create
may ask for it, and the pod's container sees its host through an `nvidia-smi` on its PATH.

What it imitates, and where that was found (tests/../platform-facts.md):
- The create body's `gpu.allowedCudaVersions` (exact `major.minor`; a version no host reports is a capacity error,
  not a fallback) or `gpu.minCudaVersion` (not both: 422); the GPU catalog lists each type's `cudaVersions`; a pod
  reports its host's `cudaVersion` (RunPod OpenAPI v2, CreatePodRequest / GpuType / Pod).
- Drivers per CUDA version: CUDA 13.0 needs driver 580.95.05 or newer; pods have been seen with drivers 550 and
  570, and CUDA 13.0 is "not available on Runpod" per runpod/containers (*reported*). Each CUDA version below
  comes with a driver of the branch that NVIDIA's CUDA toolkit release notes name for it (550 for 12.4, 560 for
  12.6, 570 for 12.8, 580 for 13.0); the exact driver releases hosts run are a guess.
- `nvidia-smi`'s header line (`Driver Version: ... CUDA Version: ...`) and its `--query-gpu=...
  --format=csv,noheader,nounits` output, as the real tool prints them; compute capabilities from NVIDIA's CUDA GPUs
  list. A GPU with memory in use (another process) shows less free (a guess at how often that happens: tests set it).
- With no constraint, RunPod places the pod on any host of the type (a guess at which: the fake takes the first
  listed, so a test decides).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DRIVER_FOR = {"12.4": "550.127.05", "12.6": "560.35.03", "12.8": "570.133.20", "13.0": "580.95.05"}
CAPABILITY = {"NVIDIA GeForce RTX 4090": "8.9", "NVIDIA GeForce RTX 3090": "8.6", "NVIDIA RTX A5000": "8.6",
              "NVIDIA H100 80GB HBM3": "9.0", "Tesla V100-SXM2-16GB": "7.0"}


@dataclass(frozen=True)
class Host:
    cuda: str
    driver: str
    free_mib: int | None = None  # None: the whole GPU is free
    capability: str | None = None  # None: the GPU type's own


def host(cuda: str, *, free_mib: int | None = None, capability: str | None = None) -> Host:
    return Host(cuda, DRIVER_FOR[cuda], free_mib, capability)


def default_hosts(gpus: list[dict[str, Any]]) -> dict[str, list[Host]]:
    """Every GPU type on hosts of CUDA 12.4, 12.8 and 13.0 (tests narrow this down)."""
    return {g["id"]: [host("12.4"), host("12.8"), host("13.0")] for g in gpus}


def cuda_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


class PlacementError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def place(hosts: list[Host], gpu: dict[str, Any], capacity_detail: str) -> Host:
    """The host a create lands on, by its `gpu` constraints; PlacementError (422 or 400 capacity) otherwise."""
    allowed, least = gpu.get("allowedCudaVersions"), gpu.get("minCudaVersion")
    if allowed is not None and least is not None:
        raise PlacementError(422, "set gpu.allowedCudaVersions or gpu.minCudaVersion, not both")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(v, str) and v.count(".") == 1 for v in allowed):
            raise PlacementError(422, "gpu.allowedCudaVersions must be a list of major.minor strings")
        fits = [h for h in hosts if h.cuda in allowed]
    elif least is not None:
        if not isinstance(least, str) or least.count(".") != 1:
            raise PlacementError(422, "gpu.minCudaVersion must be a major.minor string")
        fits = [h for h in hosts if cuda_key(h.cuda) >= cuda_key(least)]
    else:
        fits = list(hosts)
    if not fits:
        raise PlacementError(400, capacity_detail)
    return fits[0]


def nvidia_smi(folder: Path, the_host: Host, gpu: dict[str, Any]) -> Path:
    """An executable `nvidia-smi` in `folder` that prints this host's GPU as the real tool does."""
    total = int(gpu.get("memory", 24)) * 1024 - 12
    free = the_host.free_mib if the_host.free_mib is not None else total - 3
    capability = the_host.capability or CAPABILITY.get(gpu["id"], "8.6")
    query = f"{the_host.driver}, {gpu['id']}, {capability}, {total}, {free}"
    header = (f"| NVIDIA-SMI {the_host.driver:<22} Driver Version: {the_host.driver:<14} "
              f"CUDA Version: {the_host.cuda:<9}|")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "nvidia-smi"
    path.write_text(f"#!{sys.executable}\nimport sys\n"
                    f"if any(a.startswith('--query-gpu') for a in sys.argv[1:]):\n    print({query!r})\n"
                    f"else:\n    print('+' + '-' * 89 + '+')\n    print({header!r})\n    print('+' + '-' * 89 + '+')\n",
                    encoding="utf-8")
    path.chmod(0o755)
    return path
