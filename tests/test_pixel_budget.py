"""The pixel budget holds against a processor config shaped like Qwen2.5-VL-7B-Instruct's, whose legacy
`max_pixels: 12845056` overrides the `size` asked for in transformers 5.x (platform-facts.md): every loader sees
the images at the run's budget, the run info records it and a loader refuses a processor that disagrees."""

from __future__ import annotations

import json
import shutil

import pytest
from bizsent.core.errors import BizsentError
from bizsent.core.model.modeling import load_processor
from bizsent.core.model.run_info import check_run_info, read_run_info
from bizsent.core.model.scoring import ScoreInput, encode_prompts, pixel_budget
from PIL import Image

# Qwen2.5-VL-7B-Instruct's preprocessor_config.json, whole: the legacy flat layout with the budget keys and no
# `size` (the checkpoint has no processor_config.json, which transformers 5 writes for the tiny model).
REAL_PREPROCESSOR_CONFIG = {
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
}


@pytest.fixture(scope="module")
def real_shaped(model_dir, tmp_path_factory):
    """The tiny model with the real checkpoint's processor files."""
    out = tmp_path_factory.mktemp("real-shaped") / "model"
    shutil.copytree(model_dir, out)
    (out / "processor_config.json").unlink()
    (out / "preprocessor_config.json").write_text(json.dumps(REAL_PREPROCESSOR_CONFIG), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def screenshot(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "screenshot.png"
    Image.new("RGB", (1920, 1080), (30, 200, 60)).save(path)
    return path


def image_tokens(processor, image) -> int:
    """Image tokens a post with this image gets from the processor, as scoring encodes it."""
    import torch

    batch = encode_prompts(processor, [ScoreInput(None, "wagmi", str(image))], torch.device("cpu"))
    merge = processor.image_processor.merge_size ** 2
    return int(batch["image_grid_thw"].prod(-1).sum()) // merge


@pytest.mark.parametrize(("budget", "tokens"), [(56 * 56, 2), (448 * 448, 252)])
def test_the_budget_asked_for_wins_over_the_checkpoints_legacy_keys(real_shaped, screenshot, budget, tokens):
    processor = load_processor(real_shaped, budget)
    assert pixel_budget(processor) == budget
    # 1920x1080 at 448x448's budget: 252 tokens (the checkpoint's own budget would give 2,691)
    assert image_tokens(processor, screenshot) == tokens


def _adapter_on(run, base, tmp_path):
    """A copy of the shared run's adapter whose run info names `base` as its base model."""
    adapter = tmp_path / "adapter"
    shutil.copytree(run["result"].adapter_dir, adapter)
    info = read_run_info(adapter)
    (adapter / "bizsent.json").write_text(json.dumps({**info, "base_model": str(base)}), encoding="utf-8")
    return adapter


def test_every_loader_scores_at_the_runs_budget(run, real_shaped, screenshot, tmp_path):
    from bizsent.core.model.loading import load_for_run
    from bizsent.core.model.selftrain import trained_processor
    from bizsent.core.serve.handler import load_worker

    settings = run["settings"]
    cfg = settings.train.model_copy(update={"base_model": str(real_shaped)})
    adapter = _adapter_on(run, real_shaped, tmp_path)
    row = {"id": 1, "name": "r", "kind": "train", "base_model": str(real_shaped), "adapter_path": str(adapter),
           "params": {"train": cfg.model_dump(mode="json")}, "state": "done"}
    processors = {
        "self-training": trained_processor(cfg),
        "eval, pool scoring, predict": load_for_run(row, settings)[1],
        "serverless handler": load_worker(str(adapter), str(real_shaped)).processor,
    }
    for where, processor in processors.items():
        assert pixel_budget(processor) == 56 * 56, where
        assert image_tokens(processor, screenshot) == 2, where


def test_the_run_info_records_the_budget_and_a_loader_refuses_another(run, model_dir):
    adapter = run["result"].adapter_dir
    assert read_run_info(adapter)["max_pixels"] == 56 * 56
    assert check_run_info(adapter, load_processor(model_dir, 56 * 56))["max_pixels"] == 56 * 56
    with pytest.raises(BizsentError, match="pixels"):
        check_run_info(adapter, load_processor(model_dir, 448 * 448))
