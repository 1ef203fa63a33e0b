"""Loading the base model, its processor and a LoRA adapter: one code path for the 7B checkpoint on a GPU
and the tiny test model on a CPU.

torch, transformers, peft and bitsandbytes are the optional `train` extra; importing this module without them
raises a one-line BizsentError instead of an ImportError traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bizsent.core.errors import BizsentError

INSTALL_HINT = "install the training extra: scripts/setup train"
# Qwen2-VL's own lower bound: 4 patches of 28 px (merged 2x2), below which an image has no tokens.
MIN_PIXELS = 56 * 56


# The training extra's packages a run imports (torchvision: the Qwen2-VL processors need it, even for still images).
TRAINING_MODULES = ("peft", "torch", "torchvision", "transformers", "trl")


def require_training_stack() -> None:
    import importlib

    try:
        for name in TRAINING_MODULES:
            importlib.import_module(name)
    except ImportError as exc:
        raise BizsentError(f"{exc.name} is not installed; {INSTALL_HINT}") from None


def training_stack_missing() -> str | None:
    """The first training package not installed, found without importing any (the console asks before a launch)."""
    from importlib.util import find_spec

    return next((name for name in TRAINING_MODULES if find_spec(name) is None), None)


def check_model_path(path: str | Path) -> str:
    """A local folder, or a hub name (owner/name) that transformers downloads; anything else is a user error."""
    text = str(path)
    local = Path(text).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise BizsentError(f"{local} has no config.json; point train.base_model at a model folder")
        return str(local)
    looks_like_hub = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if not looks_like_hub:
        raise BizsentError(f"base model {text} does not exist; set train.base_model (or --base-model) to a model "
                           "folder or a hub name like Qwen/Qwen2.5-VL-7B-Instruct")
    return text


def model_here(name: str) -> bool:
    """Can the model `name` be loaded without a network: a folder here, or a hub name whose config.json is in
    the Hugging Face cache? Nothing is downloaded; huggingface_hub only, no torch."""
    if not name:
        return False
    if Path(name).expanduser().exists():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an invalid repo name or a broken cache: the model is not usable either way
        return False


def require_model(path: str | Path, connect_timeout_s: float = 3.0) -> str:
    """Fail in seconds, with one line, when the base model can be neither read from disk nor downloaded.

    A local folder or a hub name already in the Hugging Face cache passes at once. For anything else the hub
    must answer a TCP connect within `connect_timeout_s` (and HF_HUB_OFFLINE must be unset); otherwise
    transformers would retry for minutes before giving up. Nothing is downloaded here."""
    import os
    import socket
    from urllib.parse import urlsplit

    source = check_model_path(path)
    if model_here(source):
        return source
    from huggingface_hub import constants

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    how = (f"download it with `hf download {source}` on a connected machine (it lands in the Hugging Face "
           "cache), or set train.base_model (--base-model) to a model folder")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise BizsentError(f"base model {source} is not on disk and HF_HUB_OFFLINE is set; {how}")
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=connect_timeout_s).close()
    except OSError:
        raise BizsentError(f"base model {source} is not on disk and the hub ({endpoint}) cannot be reached; "
                           f"{how}") from None
    return source


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# Kept out of 4-bit when the vision tower is not quantised (train.quantize_vision = false, the default recipe):
# the tower by both spellings of its module path (transformers 5 nests it under model.) and the output layer,
# which transformers leaves unquantised anyway when no skip list is given.
VISION_SKIP_MODULES = ["model.visual", "visual", "lm_head"]


def quantization_config(*, quantize_vision: bool = True) -> Any:
    """QLoRA's 4-bit NF4 with double quantisation and bf16 compute; the vision tower stays bf16 unless
    `quantize_vision`."""
    import torch
    from transformers import BitsAndBytesConfig

    skip = None if quantize_vision else list(VISION_SKIP_MODULES)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=skip)


def load_model(path: str | Path, *, load_in_4bit: bool, adapter: str | Path | None = None,
               quantize_vision: bool = True) -> Any:
    """The Qwen2.5-VL model at `path` (optionally 4-bit NF4, its vision tower too only with `quantize_vision`),
    with the LoRA adapter at `adapter` applied."""
    require_training_stack()
    import torch
    from transformers import AutoModelForImageTextToText

    source = check_model_path(path)
    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if load_in_4bit:
        kwargs["quantization_config"] = quantization_config(quantize_vision=quantize_vision)
    if cuda:
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise BizsentError(f"cannot load base model {source}: {str(exc).splitlines()[0]}") from None
    if load_in_4bit and not cuda:
        keep_cpu_4bit_weights_unpacked(model)
    if adapter is not None:
        model = apply_adapter(model, adapter)
    return model


def keep_cpu_4bit_weights_unpacked(model: Any) -> int:
    """Turn off bitsandbytes' AVX512-BF16 weight packing on every 4-bit layer; returns how many layers it touched.

    On CPUs with AVX512-BF16 (Zen 4, Sapphire Rapids and newer), `Linear4bit.forward` repacks its weight into a
    CPU-only layout the first time it runs in eval mode without grad (an evaluation or scoring pass). A training
    step after that takes the packed path and fails ("a view of a leaf Variable that requires grad is being used
    in an in-place operation"), and scores differ slightly from CPUs without it. Keeping every CPU on the plain
    dequantising path makes training, evaluation during training, scoring and self-training behave and score
    the same on every x86-64 CPU; the packed layout's speed only matters for CPU inference of a big model, which
    bizsent does on a GPU.
    """
    from bitsandbytes.nn import Linear4bit

    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def apply_adapter(model: Any, adapter: str | Path) -> Any:
    from peft import PeftModel

    folder = Path(adapter)
    if not (folder / "adapter_config.json").exists():
        raise BizsentError(f"{folder} is not a LoRA adapter (no adapter_config.json); pass a run's adapter folder")
    model = PeftModel.from_pretrained(model, str(folder))
    model.eval()
    return model


def load_processor(path: str | Path, max_pixels: int) -> Any:
    """The model's processor with its image budget set to `max_pixels` (the same at training and scoring), checked
    by resizing a probe image through the processor's own call (the path training and scoring take).

    In transformers 5.x a checkpoint's legacy `max_pixels` / `min_pixels` keys in preprocessor_config.json override
    the `size` passed to from_pretrained (Qwen2VLImageProcessor.__init__; Qwen2.5-VL-7B-Instruct ships max_pixels
    12845056, platform-facts.md), and passing them as from_pretrained keywords makes every call warn that they are
    deprecated. So the budget is set on the loaded image processor, and a processor that still resizes to another
    budget is refused in one line, never used."""
    require_training_stack()
    from transformers import AutoProcessor

    source = check_model_path(path)
    try:
        processor = AutoProcessor.from_pretrained(source)
    except OSError as exc:
        raise BizsentError(f"cannot load the processor of {source}: {str(exc).splitlines()[0]}") from None
    low = min(MIN_PIXELS, max_pixels)
    image_processor = processor.image_processor
    budget = {"shortest_edge": low, "longest_edge": max_pixels}
    image_processor.size = budget if isinstance(image_processor.size, dict) else type(image_processor.size)(**budget)
    check_budget(processor, max_pixels, str(source))
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


PROBE_SIZE = (3000, 2000)  # a large screenshot: any budget of bizsent's scales it down


def probe_pixels(processor: Any) -> int:
    """Pixels a PROBE_SIZE image has after the processor's own call resized it."""
    from PIL import Image

    image = Image.new("RGB", PROBE_SIZE, (128, 128, 128))
    batch = processor(text=[processor.image_token], images=[image], return_tensors="pt")
    patch = int(processor.image_processor.patch_size)
    _, h, w = (int(v) for v in batch["image_grid_thw"][0])
    return h * w * patch * patch


def check_budget(processor: Any, max_pixels: int, source: str) -> None:
    """Refuse a processor that resizes a large image to more than `max_pixels`, or to far fewer (the 28 px grid
    rounds a side down by at most one cell: a quarter of the budget is lost only by a broken config)."""
    got = probe_pixels(processor)
    if not max_pixels // 2 <= got <= max_pixels:
        raise BizsentError(f"the processor of {source} resizes a {PROBE_SIZE[0]}x{PROBE_SIZE[1]} image to {got} "
                           f"pixels, outside the budget of {max_pixels} (train.max_pixels); check its "
                           "preprocessor_config.json")


def image_budget(image_processor: Any) -> int | None:
    """The most pixels the image processor resizes an image to (its size's longest_edge)."""
    size = getattr(image_processor, "size", None)
    value = size.get("longest_edge") if isinstance(size, dict) else getattr(size, "longest_edge", None)
    return int(value) if value else None


def free_memory() -> None:
    """Give back what dropped models and optimizers held: Python cycles first, then the CUDA allocator's cache."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def model_device(model: Any) -> Any:
    return next(model.parameters()).device
