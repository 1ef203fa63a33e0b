"""The RunPod serverless worker: `python -m bizsent.core.serve.handler` (the Docker image's command).

It loads the base model and a trained run's LoRA adapter once, then answers each job {text, image, subject?}
with {label, probabilities, latency_ms} by label-token scoring (core.model.scoring), the image prepared exactly
as in training. latency_ms is this request's time on the loaded model: reading the image (a download for a URL)
and scoring it. Bad input answers {"error": one line}, which RunPod reports as a FAILED job with that line.

Settings come from the environment, never a key:
  BIZSENT_ADAPTER     the adapter folder of a trained run (baked into the image or on a network volume)
  BIZSENT_BASE_MODEL  the base model folder or hub name (default: the one the adapter was trained on)
The adapter's bizsent.json also gives the run's pixel budget and whether its vision tower was quantised. The
model is loaded 4-bit on CUDA when the run trained that way, in full precision on a CPU (the tests' tiny model).

`--test_input '{"input": {...}}'` runs one job locally and exits (the runpod SDK's test mode).
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bizsent.core.errors import BizsentError
from bizsent.core.log import redact
from bizsent.core.serve.request import Post, read_post

ADAPTER_ENV = "BIZSENT_ADAPTER"
BASE_MODEL_ENV = "BIZSENT_BASE_MODEL"


@dataclass(frozen=True, slots=True)
class Worker:
    model: Any
    processor: Any
    adapter: str
    base_model: str


@functools.cache
def load_worker(adapter: str, base_model: str | None) -> Worker:
    """The model with the adapter applied and its processor, checked against the adapter's bizsent.json (prompt
    version, label tokens) before the weights are loaded. Cached: a worker loads once, whatever it serves."""
    from bizsent.core.model.modeling import cuda_available, load_model, load_processor
    from bizsent.core.model.run_info import check_run_info, read_run_info, run_pixel_budget

    folder = Path(adapter)
    if not folder.is_dir():
        raise BizsentError(f"{ADAPTER_ENV}={adapter} is not a folder; point it at a trained run's adapter folder")
    info = read_run_info(folder)
    base = base_model or info.get("base_model")
    if not base:
        raise BizsentError(f"{folder}/bizsent.json names no base model; set {BASE_MODEL_ENV}")
    train = info.get("train", {})
    processor = load_processor(base, run_pixel_budget(info))
    check_run_info(folder, processor)
    four_bit = bool(train.get("load_in_4bit", True)) and cuda_available()
    model = load_model(base, load_in_4bit=four_bit, adapter=folder,
                       quantize_vision=bool(train.get("quantize_vision", True)))
    return Worker(model, processor, str(folder), str(base))


def loaded() -> Worker:
    """The worker for the adapter and base model the environment names now."""
    adapter = os.environ.get(ADAPTER_ENV, "").strip()
    if not adapter:
        raise BizsentError(f"{ADAPTER_ENV} is not set; set it in the endpoint's environment to a trained run's "
                           "adapter folder (baked into the image or on a network volume)")
    return load_worker(adapter, os.environ.get(BASE_MODEL_ENV, "").strip() or None)


def predict(worker: Worker, post: Post) -> dict[str, Any]:
    from bizsent.core.model.scoring import ScoreInput, score

    with tempfile.TemporaryDirectory(prefix="bizsent-serve-") as tmp:
        path = Path(tmp) / "image"
        path.write_bytes(post.image)
        (result,) = score(worker.model, worker.processor, [ScoreInput(None, post.text, str(path), post.subject)],
                          batch_size=1)
    return {"label": result.label, "probabilities": result.probs}


def handler(job: dict[str, Any]) -> dict[str, Any]:
    """One job: {"input": {"text", "image", "subject"?}} -> {label, probabilities, latency_ms} or {error}."""
    try:
        started = time.perf_counter()
        post = read_post(job.get("input"))  # bad input is refused before any model is loaded
        reading = time.perf_counter() - started
        worker = loaded()
        started = time.perf_counter()
        answer = predict(worker, post)
    except BizsentError as exc:
        return {"error": redact(str(exc))}
    return {**answer, "latency_ms": round((reading + time.perf_counter() - started) * 1000, 1)}


def main() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        loaded()  # a misconfigured worker fails at start, in one line, before it takes a job
    except BizsentError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(1)
    import runpod

    runpod.serverless.start({"handler": handler})


if __name__ == "__main__":
    main()
