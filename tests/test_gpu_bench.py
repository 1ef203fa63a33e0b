"""bench/gpu.py in its CPU mode (a GPU is not lent to every machine): it says that the CUDA parts are skipped,
still trains and scores the tiny model (including the bf16/fp32 mix training leaves, scored outside autocast),
and prints the 7B-shaped batches with core.model.memory's estimate; the last line is JSON with every key."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_mode_skips_cuda_and_prints_every_key(gpu_bench, model_dir, tmp_path, capsys):
    from bizsent.core.model.memory import shape_from_config

    out, notes = gpu_bench.run(tmp_path, tiny_steps=2, big_steps=1, tiny_model=model_dir, cuda=False)
    gpu_bench.report(out, notes)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("NO CUDA: the CUDA parts were SKIPPED")
    data = json.loads(lines[-1])
    assert list(data) == list(gpu_bench.KEYS)
    assert data["mode"] == "cpu" and data["cuda_skipped"] is True
    assert data["tiny_scored_outside_autocast"] is True
    assert data["tiny_train_s_per_example"] > 0 and data["tiny_score_posts_per_s"] > 0
    for part in gpu_bench.PARTS:  # measured only on CUDA; the estimate always
        assert data[f"{part}_peak_allocated_gib"] is None and data[f"{part}_peak_reserved_gib"] is None
        assert data[f"{part}_rows"] == 4
    assert data["train_longest_tokens"] >= data["train_typical_tokens"]
    # the estimate is core.model.memory's for the 7B's shape (from the config the bench wrote) and that batch
    shape = shape_from_config(tmp_path / "qwen7b-shape")
    assert (shape.hidden, shape.layers, shape.vocab, shape.vision_layers) == (3584, 28, 152064, 32)
    assert data["train_longest_estimate_gib"] >= data["train_typical_estimate_gib"] > 5
