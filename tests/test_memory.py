"""The training-memory estimate of `bizsent train --dry-run`: the 7B recipe on a 24 GB card, from the config alone."""

from __future__ import annotations

import pytest
from bizsent.core.config import TrainSettings
from bizsent.core.model.memory import GB, QWEN25_VL_7B, estimate_training_memory, shape_from_config, vision_params


def test_the_7b_recipe_fits_a_24_gb_card_and_the_full_tower_would_not_leave_room():
    est = estimate_training_memory(TrainSettings())
    parts = {name: size / GB for name, size, _ in est.rows}
    assert 3.0 < parts["language model weights"] < 3.5  # 6.5B params at 4.127 bits
    assert parts["vision tower weights"] == pytest.approx(676e6 * 2 / GB, rel=0.01)  # bf16, out of 4-bit
    assert 10 < est.total / GB < 18 and est.verdict.startswith("fits in 24 GiB")
    assert vision_params(QWEN25_VL_7B) == pytest.approx(675e6, rel=0.01)
    quantised = estimate_training_memory(TrainSettings(quantize_vision=True))
    assert quantised.total < est.total  # the tower in NF4 saves ~0.9 GB but cannot learn through LoRA as well
    big = estimate_training_memory(TrainSettings(batch_size=16))
    assert big.verdict.startswith("does not fit")  # the logits alone grow to ~14 GB
    assert any("in full" in note for note in est.notes)


def test_shape_comes_from_a_local_config(model_dir):
    shape = shape_from_config(model_dir)
    assert shape.hidden == 64 and shape.layers == 2 and shape.vision_layers == 2


def test_cli_dry_run_prints_the_estimate_without_loading_a_model(settings, monkeypatch):
    import bizsent.core.model.modeling
    from bizsent.cli import app
    from typer.testing import CliRunner

    def refuse(*args, **kwargs):
        raise AssertionError("--dry-run loaded a model")

    monkeypatch.setattr(bizsent.core.model.modeling, "load_model", refuse)
    monkeypatch.setattr(bizsent.core.model.modeling, "require_model", refuse)
    result = CliRunner().invoke(app, ["--config", str(settings.source), "train", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Qwen2.5-VL-7B" in result.stdout and "total" in result.stdout and "fits in 24 GiB" in result.stdout
    assert "estimates" in result.stdout
