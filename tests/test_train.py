"""QLoRA fine-tuning through TRL on the tiny Qwen2.5-VL: collator, loss mask, 4-bit CPU path, events, adapter."""

from __future__ import annotations

import json
import math

import pytest
import torch
from bizsent.core.labels import PROMPT_VERSION
from bizsent.core.model.dataset import read_split
from bizsent.core.model.events import read_jsonl, run_events
from bizsent.core.model.modeling import load_model, load_processor
from bizsent.core.model.run_info import read_run_info
from bizsent.core.model.scoring import ScoreInput, score
from bizsent.core.model.training import (
    EVAL_LOSS_OVER,
    TRAIN_LOSS_OVER,
    TRAINER_DIR,
    BundleCollator,
    prepare_checkpoints,
    prepare_lora,
)
from bizsent.core.store import open_db


def test_collator_gives_each_example_its_own_image_and_masks_the_prompt(run, model_dir):
    bundle = run["bundle"]
    rows = read_split(bundle, "train")
    first, second = rows[0], next(r for r in rows if r["label"] != rows[0]["label"])
    processor = load_processor(model_dir, 56 * 56)
    batch = BundleCollator(processor, bundle)([first, second])
    # pixel rows of example k must equal the processor's output for example k's own image alone
    from bizsent.core.model.scoring import open_image

    own = [processor.image_processor(images=[open_image(bundle / r["images"][0])], return_tensors="pt")
           for r in (first, second)]
    sizes = [int(o["image_grid_thw"].prod()) for o in own]
    assert torch.equal(batch["pixel_values"][: sizes[0]], own[0]["pixel_values"])
    assert torch.equal(batch["pixel_values"][sizes[0] :], own[1]["pixel_values"])
    assert not torch.equal(own[0]["pixel_values"], own[1]["pixel_values"])
    tok = processor.tokenizer
    for k, row in enumerate((first, second)):
        ids, labels = batch["input_ids"][k], batch["labels"][k]
        trained = [int(i) for i, lab in zip(ids, labels, strict=True) if lab != -100]
        assert tok.decode(trained) == row["label"] + "<|im_end|>\n"
        answer_at = next(j for j, lab in enumerate(labels) if lab != -100)
        assert (labels[:answer_at] == -100).all()
        assert tok.decode(ids[:answer_at]).endswith("<|im_start|>assistant\n")
        assert int((ids == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum()) == sizes[k] // 4


def test_qlora_4bit_training_writes_events_store_and_jsonl(run):
    result = run["result"]
    assert result.steps == 4 and math.isfinite(result.train_loss)
    db = open_db(run["settings"].db_path)
    state, adapter = db.execute("SELECT state, adapter_path FROM runs WHERE id = ?", [run["run_id"]]).fetchone()
    assert state == "done" and adapter == str(result.adapter_dir)
    train_events = run_events(db, run["run_id"], "train")
    # the shared run may already hold a test-split evaluation (test_scoring); training writes the val ones
    eval_events = [e for e in run_events(db, run["run_id"], "eval") if e.data.get("split") == "val"]
    assert [e.step for e in train_events] == [1, 2, 3, 4]
    assert all(math.isfinite(e.loss) and e.lr > 0 and e.data["samples_per_s"] > 0 for e in train_events)
    assert [e.step for e in eval_events] == [2, 4] and all(len(e.confusion) == 3 for e in eval_events)
    assert sum(map(sum, eval_events[-1].confusion)) == eval_events[-1].data["n"]
    # the two losses are different quantities, and every event says which it carries
    assert {e.data["loss_over"] for e in train_events} == {TRAIN_LOSS_OVER}
    assert {e.data["eval_loss_over"] for e in eval_events} == {EVAL_LOSS_OVER} != {TRAIN_LOSS_OVER}
    assert len(read_jsonl(run["jsonl"])) == len(train_events) + len(eval_events)  # the pod-side copy
    info = read_run_info(result.adapter_dir)
    assert info["prompt_version"] == PROMPT_VERSION and info["manifest"]["sizes"]["test"] == 9
    assert info["train"]["lora_r"] == 16 and json.loads((result.adapter_dir / "adapter_config.json").read_text())[
        "target_modules"]
    # LoRA B starts at zero: after training it must have moved
    from safetensors.torch import load_file

    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())


def test_4bit_loading_on_cpu_uses_bitsandbytes(model_dir):
    import bitsandbytes as bnb

    model = load_model(model_dir, load_in_4bit=True)
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and quantized[0].weight.quant_type == "nf4"


def test_4bit_cpu_guard_holds_as_if_the_cpu_had_avx512_bf16(model_dir, monkeypatch):
    """Evaluation then a training step in 4-bit on the CPU, with bitsandbytes told the CPU has AVX512-BF16.

    Without the guard such a CPU repacks the weights during the no-grad eval pass, and the next training step
    fails inside bitsandbytes; with it every CPU keeps the plain path, whatever the CPU really has.
    """
    import bitsandbytes as bnb
    import bitsandbytes.nn.modules as bnb_modules
    from bizsent.core.config import TrainSettings

    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)
    model = prepare_lora(load_model(model_dir, load_in_4bit=True), TrainSettings(), quantized=True)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and not any(m.support_avx512bf16_for_cpu for m in layers)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    model.train()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert math.isfinite(float(loss))
    assert any(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_adapter_save_and_reload_gives_the_same_probabilities(model_dir, tmp_path, run):
    processor = load_processor(model_dir, 56 * 56)
    row = read_split(run["bundle"], "test")[0]
    item = [ScoreInput(row["post_id"], row["text"], str(run["bundle"] / row["images"][0]))]
    settings = run["settings"]
    model = prepare_lora(load_model(model_dir, load_in_4bit=False), settings.train, quantized=False)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    before = score(model, processor, item)[0].probs
    model.save_pretrained(str(tmp_path / "adapter"))
    reloaded = load_model(model_dir, load_in_4bit=False, adapter=tmp_path / "adapter")
    after = score(reloaded, processor, item)[0].probs
    base = score(load_model(model_dir, load_in_4bit=False), processor, item)[0].probs
    assert after == pytest.approx(before, abs=1e-5)
    assert max(abs(base[k] - before[k]) for k in base) > 1e-4


def test_modules_trained_in_full_get_no_adapter_and_survive_a_reload(model_dir, tmp_path, run):
    processor = load_processor(model_dir, 56 * 56)
    row = read_split(run["bundle"], "test")[0]
    item = [ScoreInput(row["post_id"], row["text"], str(run["bundle"] / row["images"][0]))]
    model = prepare_lora(load_model(model_dir, load_in_4bit=False), run["settings"].train, quantized=False,
                         modules_to_save=["visual"])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(".visual." in n and "lora_" not in n for n in trainable)  # the vision tower learns in full
    assert not any(".visual." in n and "lora_" in n for n in trainable)  # and carries no adapter of its own
    assert any("lora_" in n and ".visual." not in n for n in trainable)
    base = score(model, processor, item)[0].probs
    changed = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".visual." in name and "modules_to_save" in name and name.endswith("patch_embed.proj.weight"):
                param.normal_(0, 1.0)
                changed += 1
    assert changed == 1
    before = score(model, processor, item)[0].probs
    assert max(abs(base[k] - before[k]) for k in base) > 1e-4  # the image path reaches the answer
    model.save_pretrained(str(tmp_path / "adapter"))
    after = score(load_model(model_dir, load_in_4bit=False, adapter=tmp_path / "adapter"), processor, item)[0].probs
    assert after == pytest.approx(before, abs=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the bf16 QLoRA path of a GPU pod)")
def test_qlora_on_cuda(tmp_path, model_dir, run):
    from bizsent.core.config import TrainSettings
    from bizsent.core.model.training import train

    cfg = TrainSettings(base_model=str(model_dir), max_pixels=56 * 56, batch_size=2, grad_accum=1)
    result = train(run["bundle"], tmp_path, cfg, max_steps=2)
    assert result.steps == 2 and math.isfinite(result.train_loss)


def test_cli_train_with_a_missing_base_model_is_one_line(tmp_path, run):
    from bizsent.cli import app
    from bizsent.core.errors import BizsentError
    from typer.testing import CliRunner

    settings = run["settings"]
    result = CliRunner().invoke(app, ["--config", str(settings.source), "train", "--local", "--bundle",
                                      str(run["bundle"]), "--base-model", str(tmp_path / "missing-model")])
    assert isinstance(result.exception, BizsentError)
    assert "does not exist" in str(result.exception) and "\n" not in str(result.exception)


def test_the_recipe_keeps_the_vision_tower_out_of_4bit_and_trains_it_through_lora(model_dir, run):
    """The 7B recipe (TrainSettings defaults): language model NF4, vision tower bf16 (here fp32, the CPU dtype) and
    frozen, LoRA on the language model's q/v and on the tower's attention and merger; gradients reach the tower."""
    import bitsandbytes as bnb
    from bizsent.core.config import TrainSettings

    cfg = TrainSettings()
    assert cfg.quantize_vision is False and cfg.vision_target_modules
    model = prepare_lora(load_model(model_dir, load_in_4bit=True, quantize_vision=cfg.quantize_vision), cfg,
                         quantized=True)
    four_bit = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and not any(".visual." in n for n in four_bit)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    for part in ("attn.qkv", "attn.proj", "merger.mlp.0", "language_model.layers.0.self_attn.q_proj"):
        assert any(part in n for n in trainable), part
    processor = load_processor(model_dir, 56 * 56)
    rows = read_split(run["bundle"], "train")[:2]
    batch = BundleCollator(processor, run["bundle"])(rows)
    model.train()
    model(**batch).loss.backward()
    grads = [p.grad.abs().sum() for n, p in model.named_parameters() if ".visual." in n and "lora_B" in n]
    assert grads and all(g > 0 for g in grads)


def test_a_crashed_run_resumes_from_its_last_checkpoint(run, tmp_path):
    from bizsent.core.model.training import train
    from transformers import TrainerCallback

    class Preempted(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise RuntimeError("pod preempted")

    cfg = run["settings"].train.model_copy(update={"save_steps": 2})
    with pytest.raises(RuntimeError, match="preempted"):
        train(run["bundle"], tmp_path, cfg, max_steps=4, load_in_4bit=True, callbacks=[Preempted()])
    saved = tmp_path / "trainer" / "checkpoint-2"
    assert (saved / "optimizer.pt").exists() and (saved / "adapter_model.safetensors").exists()
    assert not (tmp_path / "adapter").exists()
    events = []
    result = train(run["bundle"], tmp_path, cfg, max_steps=4, load_in_4bit=True, events=events.append)
    assert result.resumed_from == str(saved) and result.steps == 4
    assert min(e.step for e in events if e.kind == "train") == 3  # steps 1-2 were not trained again
    assert (result.adapter_dir / "adapter_model.safetensors").exists()
    assert not list((tmp_path / "trainer").glob("checkpoint-*"))  # the adapter is safe: checkpoints go
    other = cfg.model_copy(update={"learning_rate": 1e-3})
    (tmp_path / "trainer" / "checkpoint-9").mkdir()
    (tmp_path / "trainer" / "checkpoint-9" / "trainer_state.json").write_text("{}")
    from bizsent.core.errors import BizsentError

    with pytest.raises(BizsentError, match="another \\[train\\] settings"):
        train(run["bundle"], tmp_path, other, max_steps=4, load_in_4bit=True)


def test_validation_is_forwarded_once_per_evaluation(run, tmp_path):
    from bizsent.core.model.training import train
    from transformers import TrainerCallback

    class Forwards(TrainerCallback):
        rows = 0

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            def count(module, args_, kwargs_):
                if not torch.is_grad_enabled():
                    Forwards.rows += kwargs_["input_ids"].shape[0]
            model.register_forward_pre_hook(count, with_kwargs=True)

    events = []
    train(run["bundle"], tmp_path, run["settings"].train, max_steps=2, eval_steps=1, load_in_4bit=False,
          events=events.append, callbacks=[Forwards()])
    evals = [e for e in events if e.kind == "eval"]
    n_val = len(read_split(run["bundle"], "val"))
    assert len(evals) == 2 and Forwards.rows == 2 * n_val
    assert all(math.isfinite(e.data["eval_loss"]) and e.data["eval_loss"] > 0 for e in evals)


def test_lora_init_follows_train_seed_whatever_the_global_rng(model_dir, run):
    cfg = run["settings"].train
    weights = []
    for state in (1, 2):
        torch.manual_seed(state)  # whatever ran before (model loading, another run) moved the global RNG
        model = prepare_lora(load_model(model_dir, load_in_4bit=False), cfg, quantized=False)
        weights.append({n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n})
    assert weights[0] and all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])


def test_no_resume_deletes_the_run_folders_old_checkpoints(run, tmp_path):
    cfg = run["settings"].train
    old = tmp_path / TRAINER_DIR / "checkpoint-3"
    old.mkdir(parents=True)
    (old / "trainer_state.json").write_text("{}", encoding="utf-8")
    assert prepare_checkpoints(tmp_path, {"hashes": {"train": "other"}}, cfg, resume=False) is None
    assert not list((tmp_path / TRAINER_DIR).glob("checkpoint-*"))
    # the next resume sees this start's bundle, not the deleted checkpoints' one
    assert prepare_checkpoints(tmp_path, {"hashes": {"train": "other"}}, cfg, resume=True) is None
