"""The training-memory estimate of `bizsent train --dry-run`: the 7B recipe on a 24 GB card, from the config alone."""

from __future__ import annotations

import pytest
from bizsent.core.config import TrainSettings
from bizsent.core.model.memory import (
    GB,
    QWEN25_VL_7B,
    BatchShape,
    estimate_scoring_memory,
    estimate_training_memory,
    shape_from_config,
    vision_params,
)


def test_the_7b_recipe_fits_a_24_gb_card_and_the_full_tower_would_not_leave_room():
    est = estimate_training_memory(TrainSettings())
    parts = {name: size / GB for name, size, _ in est.rows}
    assert 3.0 < parts["language model weights"] < 3.5  # 6.5B params at 4.127 bits
    assert parts["vision tower weights"] == pytest.approx(676e6 * 2 / GB, rel=0.01)  # bf16, out of 4-bit
    assert 8 < est.total / GB < 14 and est.verdict.startswith("fits in 24 GiB")
    assert vision_params(QWEN25_VL_7B) == pytest.approx(675e6, rel=0.01)
    quantised = estimate_training_memory(TrainSettings(quantize_vision=True))
    assert quantised.total < est.total  # the tower in NF4 saves ~0.9 GB but cannot learn through LoRA as well
    big = estimate_training_memory(TrainSettings(batch_size=48))
    assert big.verdict.startswith("does not fit")  # activations and checkpoints grow with the batch
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
    assert "pool scoring" in result.stdout and "--bundle" in result.stdout
    assert "estimates" in result.stdout


def test_no_full_logits_buffer_with_trls_chunked_loss():
    """TRL 1.16 on CUDA computes the loss at the labelled positions only (platform-facts.md): no batch x sequence
    x vocabulary logits row; the CPU path's full buffer is still what chunked_loss=False models."""
    cfg = TrainSettings()
    rows = {name: size / GB for name, size, _ in estimate_training_memory(cfg).rows}
    full = {name: size / GB for name, size, _ in estimate_training_memory(cfg, chunked_loss=False).rows}
    assert rows["logits and loss"] < 0.05
    assert full["logits and loss"] > 3.0


def _bundle(tmp_path, sizes_and_words):
    """A bundle's train split: posts of `words` words with a `size` image each."""
    import json

    from PIL import Image

    (tmp_path / "images").mkdir()
    rows = []
    for k, (size, words) in enumerate(sizes_and_words):
        Image.new("RGB", size, (10, 20, 30)).save(tmp_path / "images" / f"{k}.jpg")
        rows.append({"post_id": k, "label": "neutral", "images": [f"images/{k}.jpg"],
                     "messages": [{"role": "system", "content": "classify"},
                                  {"role": "user", "content": " ".join(["wagmi"] * words)},
                                  {"role": "assistant", "content": "neutral"}]})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return tmp_path


def test_typical_and_longest_batch_come_from_the_bundles_token_counts(tmp_path):
    from bizsent.core.model.batches import bundle_lengths, dry_run, resized, text_counter, typical_and_longest

    assert resized(1920, 1080, 448 * 448) == (588, 336)  # 21 x 12 = 252 tokens, as the processor resizes it
    posts = [((448, 448), 20)] * 15 + [((1000, 300), 600)]  # one long post with a wide image
    bundle = _bundle(tmp_path, posts)
    count, how = text_counter("Qwen/not-on-disk")
    assert "approximated" in how
    lengths = bundle_lengths(bundle, 448 * 448, count, QWEN25_VL_7B)
    typical, longest = typical_and_longest(lengths, 4)
    longest_post = max(p.text + p.image for p in lengths)
    assert longest.seq == longest_post and longest.rows == 4
    assert typical.seq < longest.seq and typical.seq == lengths[0].text + lengths[0].image
    cfg = TrainSettings()
    assert (estimate_training_memory(cfg, batch=typical).total < estimate_training_memory(cfg, batch=longest).total)
    shown = dry_run(cfg, bundle=bundle)
    assert f"longest batch ({longest.seq} tok)" in shown and "typical batch" in shown and "pool scoring" in shown


def test_pool_scoring_is_estimated_with_the_kv_cache_and_the_kept_hidden_states():
    cfg = TrainSettings(batch_size=8)
    batch = BatchShape("scoring batch", 8, 1050, 8 * 1024, 794)
    est = estimate_scoring_memory(cfg, batch=batch)
    parts = {name: size / GB for name, size, _ in est.rows}
    assert parts["KV cache"] > 0.3 and parts["hidden states kept"] > 1.0
    without = estimate_scoring_memory(cfg, batch=batch, embeddings=False)
    assert without.total < est.total
    assert "LoRA weights, gradients, Adam" not in parts  # no optimizer when scoring
