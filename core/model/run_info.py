"""A run's bizsent.json, next to its adapter: what the run was trained with (prompt version, label tokens, pixel
budget, base model, library versions), written when training ends and checked by every loader (evaluation, pool
scoring, `predict`, the serverless worker) before the model is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bizsent.core.config import TrainSettings
from bizsent.core.errors import BizsentError
from bizsent.core.labels import LABELS, PROMPT_VERSION
from bizsent.core.model.scoring import label_token_ids, pixel_budget

RUN_INFO = "bizsent.json"
STACK = ("torch", "torchvision", "transformers", "peft", "trl", "bitsandbytes", "accelerate")  # recorded per run


def write_run_info(adapter: Path, cfg: TrainSettings, manifest: dict, processor: Any) -> None:
    info = {
        "prompt_version": PROMPT_VERSION,
        "base_model": cfg.base_model,
        "labels": list(LABELS),
        "label_token_ids": label_token_ids(processor.tokenizer),
        "train": cfg.model_dump(mode="json"),
        # what the processor really resized to (a checkpoint's own config can override what was asked for)
        "max_pixels": pixel_budget(processor),
        "manifest": manifest,
        "versions": stack_versions(),
    }
    (adapter / RUN_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")


def stack_versions() -> dict[str, str | None]:
    """The versions this run trained with (Python, the training libraries, torch's CUDA build, the GPU)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    found = {name: installed(name) for name in STACK}
    cuda = torch.cuda.is_available()
    return {"python": platform.python_version(), **found, "torch_cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu"}


def read_run_info(adapter: Path) -> dict:
    path = Path(adapter) / RUN_INFO
    if not path.exists():
        raise BizsentError(f"{path} does not exist; {adapter} is not an adapter trained by bizsent")
    return json.loads(path.read_text(encoding="utf-8"))


def run_pixel_budget(info: dict) -> int:
    """The pixel budget a run's images were prepared with: recorded at the top of bizsent.json (what the processor
    really used), or for older adapters their [train] max_pixels (the bundle's images were downscaled to it)."""
    return int(info.get("max_pixels") or info.get("train", {}).get("max_pixels") or TrainSettings().max_pixels)


def check_run_info(adapter: Path, processor: Any, base_model: str | None = None) -> dict:
    """The adapter's bizsent.json, checked against what scoring uses now: the prompt version (core.labels), the
    label tokens of the loaded tokenizer, the pixel budget of the loaded processor and the base model. A mismatch
    is one line saying what to do."""
    info = read_run_info(adapter)
    want, got = run_pixel_budget(info), pixel_budget(processor)
    if got != want:
        raise BizsentError(f"adapter {adapter} was trained on images of at most {want} pixels, but this processor "
                           f"resizes to {got}; load it with max_pixels {want} (the run's train.max_pixels)")
    theirs = info.get("prompt_version")
    if theirs != PROMPT_VERSION:
        raise BizsentError(f"adapter {adapter} was trained with prompt version {theirs}, scoring uses "
                           f"{PROMPT_VERSION}; retrain on a bundle built with {PROMPT_VERSION}, or score it with a "
                           f"bizsent whose prompt version is {theirs}")
    ids = label_token_ids(processor.tokenizer)
    if info.get("label_token_ids") != ids or list(info.get("labels", LABELS)) != list(LABELS):
        raise BizsentError(f"adapter {adapter} was trained to answer with label tokens {info.get('label_token_ids')} "
                           f"({info.get('labels')}), this tokenizer scores {ids} ({list(LABELS)}); retrain the "
                           "adapter with this base model and label set")
    if base_model is not None and info.get("base_model") != str(base_model):
        raise BizsentError(f"adapter {adapter} was trained on {info.get('base_model')}, not {base_model}; load it "
                           f"with base model {info.get('base_model')} or retrain")
    return info
