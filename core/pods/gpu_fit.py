"""What a training pod's GPU must offer, decided on the laptop from the settings (one place): the least CUDA version
its driver supports (asked of RunPod at create, checked again by the agent), the compute capability and the free
memory the recipe needs, and whether the pod may fall back to its CPU (never, unless runpod.require_gpu is off for
tests). The agent (core/pods/agent/gpu.py) receives them in its environment and checks them with nvidia-smi.
"""

from __future__ import annotations

import math

from bizsent.core.config import Settings
from bizsent.core.model.memory import GB, estimate_training_memory, shape_for

# bf16 compute (the recipe's 4-bit compute dtype and its trainer setting) needs Ampere or newer.
MIN_CAPABILITY = "8.0"


def min_free_mib(settings: Settings) -> int:
    """The recipe's estimated peak memory (`train --dry-run`'s total), in MiB: less free on the GPU cannot fit."""
    cfg = settings.train
    shape, _ = shape_for(cfg.base_model)
    return math.ceil(estimate_training_memory(cfg, shape).total / GB * 1024)


def gpu_env(settings: Settings) -> dict[str, str]:
    """The agent's GPU settings (its environment)."""
    runpod = settings.runpod
    return {"BIZSENT_REQUIRE_GPU": "1" if runpod.require_gpu else "0", "BIZSENT_TORCH_CUDA": runpod.torch_cuda,
            "BIZSENT_MIN_CAPABILITY": MIN_CAPABILITY, "BIZSENT_MIN_GPU_MIB": str(min_free_mib(settings))}


def gpu_request(settings: Settings, gpu_id: str) -> dict[str, object]:
    """The create body's `gpu`: RunPod places the pod only on a host whose driver supports the torch build's CUDA
    (`minCudaVersion`, not `allowedCudaVersions`: a driver runs older builds too, and an exact version no host
    reports is a capacity error)."""
    return {"id": gpu_id, "count": 1, "minCudaVersion": settings.runpod.torch_cuda}
