"""The pod's pinned installs: constraints.txt (the versions the suite was green with on the laptop) turned into
the pins a pod installs with, for the torch build of runpod.torch_cuda.

PyPI's torch wheel is the CUDA 13.0 build; the other builds come from PyTorch's own index as local versions
(`torch==2.14.1+cu128`), and their CUDA libraries are the `nvidia-*-cu12` wheels that torch's own metadata pins
exactly, so the CUDA 13 library lines of constraints.txt are left out for them. Everything else keeps its pin, and
a pin per Python keeps its python_version marker: pip on the pod takes the line for the pod's own Python.
"""

from __future__ import annotations

import re
from pathlib import Path

from bizsent.core.errors import BizsentError
from bizsent.core.pods.agent.job import PIN  # the agent's rule for a pin, so a lock it would refuse is never sent

PYPI_TORCH_CUDA = "13.0"  # PyPI's torch 2.14.1 on Linux (platform-facts: `torch.version.cuda == "13.0"`)
TORCH_PACKAGES = ("torch", "torchvision")
CUDA_LIBRARIES = re.compile(r"(nvidia-|cuda-)")  # the CUDA runtime wheels of one CUDA build


def pod_lock(constraints: str, torch_cuda: str) -> list[str]:
    """The pins (`name==version`) of constraints.txt for a pod whose torch is the `torch_cuda` build."""
    suffix = "" if torch_cuda == PYPI_TORCH_CUDA else f"+cu{torch_cuda.replace('.', '')}"
    pins = []
    for line in constraints.splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        pin = PIN.fullmatch(text)
        if pin is None:
            raise BizsentError(f"constraints.txt line {line!r} is not a name==version pin; refresh it with "
                               "scripts/lock")
        name, ver, marker = pin[1], pin[2], pin[3] or ""
        if suffix and CUDA_LIBRARIES.match(name.lower()):
            continue
        build = suffix if suffix and name.lower() in TORCH_PACKAGES else ""
        pins.append(f"{name}=={ver}{build}{marker}")
    return pins


def read_pod_lock(path: Path, torch_cuda: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BizsentError(f"cannot read {path} ({exc.strerror}); the pod installs from it: run bizsent from its "
                           "source checkout") from None
    return pod_lock(text, torch_cuda)
