"""QLoRA fine-tuning of Qwen2.5-VL with TRL's SFTTrainer on a dataset bundle (core.dataset.export_bundle).

The same function trains the 7B model on a GPU pod and the tiny test model on a CPU: 4-bit NF4 when CUDA is
present (or when asked) with the vision tower kept in bf16 (train.quantize_vision), LoRA from config on the
language model and the vision tower, loss on the assistant turn only, gradient checkpointing, each example with
its own image, evaluation on the validation split by label-token scoring (one scoring pass per evaluation; its
eval_loss is the full-vocabulary cross-entropy of the answer's first token), checkpoints every
train.save_steps with resume from the newest, and metric events to whatever sink the caller passes (the store
locally, a JSONL file on a pod). The adapter folder holds the LoRA weights, their config and bizsent.json
(prompt version, base model, label tokens, training settings, dataset manifest), which `check_run_info` compares
with what scoring uses before an adapter is scored.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bizsent.core.config import TrainSettings
from bizsent.core.errors import BizsentError, Cancelled
from bizsent.core.evaluate.metrics import evaluate
from bizsent.core.model.dataset import read_manifest, read_split
from bizsent.core.model.events import MetricEvent, Sink
from bizsent.core.model.modeling import free_memory, load_model, load_processor, require_model, require_training_stack
from bizsent.core.model.run_info import write_run_info
from bizsent.core.model.scoring import ScoreInput, label_token_ids, open_image, score

ADAPTER_DIR = "adapter"
TRAINER_DIR = "trainer"  # checkpoints live here: out_dir/trainer/checkpoint-N
RESUME_INFO = "bizsent-resume.json"  # the bundle the checkpoints were made from
# What each loss is, written into every event: the two are different quantities, and three of the four answer
# tokens are near zero after a few steps, so a train loss 3-4x below the eval loss is not overfitting.
TRAIN_LOSS_OVER = "mean cross-entropy over the answer's tokens (label pieces, <|im_end|>, newline)"
EVAL_LOSS_OVER = "cross-entropy of the answer's first token (full vocabulary)"


@dataclass(slots=True)
class TrainResult:
    adapter_dir: Path
    steps: int
    train_loss: float | None
    seconds: float
    last_eval: MetricEvent | None
    resumed_from: str | None = None  # the checkpoint this training continued from
    model: Any = field(default=None, repr=False)  # the trained model, only with train(keep_model=True)


def score_inputs(bundle: Path, rows: list[dict]) -> list[ScoreInput]:
    """A bundle's rows as scoring inputs (their images are the bundle's own, already prepared)."""
    return [ScoreInput(r["post_id"], r["text"], str(Path(bundle) / r["images"][0]), r.get("subject", ""), True)
            for r in rows]


class BundleCollator:
    """TRL's vision collator fed with each example's OWN image, opened from the bundle when the batch is built.

    (The user's earlier script passed the first example's images to the whole batch.) Assistant-only loss uses
    TRL's training variant of the model's chat template, which marks the answer with {% generation %}.
    """

    def __init__(self, processor: Any, bundle: Path):
        from trl.chat_template_utils import get_training_chat_template, has_generation_markers
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        template = None if has_generation_markers(processor.chat_template) else get_training_chat_template(processor)
        self.bundle = Path(bundle)
        self.inner = DataCollatorForVisionLanguageModeling(processor=processor, assistant_only_loss=True,
                                                           chat_template=template)

    def __call__(self, examples: list[dict]) -> dict:
        batch = [{"messages": e["messages"], "images": [open_image(self.bundle / p) for p in e["images"]]}
                 for e in examples]
        return self.inner(batch)


def val_event(scored: list, val_labels: list[str], step: int | None, epoch: float | None) -> MetricEvent:
    """The eval event of one validation pass: label-token metrics, and as eval_loss the mean full-vocabulary
    cross-entropy of the answer's first token (what the trainer's own evaluation would add, without a second
    forward pass over the validation set)."""
    result = evaluate(val_labels, [s.label for s in scored], probs=[s.probs for s in scored], n_boot=0)
    nll = [-math.log(max(s.probs[t] * (s.label_mass if s.label_mass is not None else 1.0), 1e-12))
           for s, t in zip(scored, val_labels, strict=True)]
    return MetricEvent("eval", step=step, epoch=epoch, accuracy=result.accuracy, macro_f1=result.macro_f1,
                       confusion=result.confusion,
                       data={"split": "val", "n": result.n, "ece": result.ece,
                             "eval_loss": sum(nll) / len(nll) if nll else None, "eval_loss_over": EVAL_LOSS_OVER,
                             "per_class": {k: v.f1 for k, v in result.per_class.items()}})


def _event_callback(events: Sink, processor: Any, val: list[ScoreInput], val_labels: list[str], batch_size: int,
                    eval_steps: int):
    from transformers import TrainerCallback

    class EventCallback(TrainerCallback):
        """Turns the trainer's logs into train events, and every `eval_steps` (and at the last step) scores the
        validation split once and sends the eval event. The trainer runs no evaluation loop of its own."""

        def __init__(self):
            self.last = (0, time.perf_counter())
            self.latest_eval: MetricEvent | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return
            step, started = self.last
            now = time.perf_counter()
            samples = (state.global_step - step) * args.per_device_train_batch_size * args.gradient_accumulation_steps
            self.last = (state.global_step, now)
            events(MetricEvent("train", step=state.global_step, epoch=state.epoch, loss=float(logs["loss"]),
                               lr=float(logs.get("learning_rate", 0.0)),
                               data={"samples_per_s": samples / max(now - started, 1e-9), "loss_over": TRAIN_LOSS_OVER,
                                     "grad_norm": float(logs.get("grad_norm", 0.0) or 0.0)}))

        def on_step_end(self, args, state, control, model=None, **kwargs):
            step = state.global_step
            if not val or not (step % eval_steps == 0 or step >= state.max_steps):
                return
            scored = score(model, processor, val, batch_size=batch_size)
            event = val_event(scored, val_labels, step, state.epoch)
            self.latest_eval = event
            events(event)

    return EventCallback()


def _to_dataset(rows: list[dict]) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"messages": r["messages"], "images": r["images"]} for r in rows])


def prepare_kbit(model: Any) -> Any:
    """Ready a 4-bit model for LoRA training: every base weight frozen, 1-D parameters (norms, biases) in fp32,
    gradient checkpointing on, gradients reaching the inputs.

    peft's prepare_model_for_kbit_training also casts every other non-4-bit weight to fp32: for the 7B that is
    the embeddings, the output layer and the bf16 vision tower, ~3.5 GB more on a 24 GB card for frozen weights
    that bf16 serves as well. They stay in their loaded dtype here."""
    import torch

    for param in model.parameters():
        param.requires_grad = False
        if param.dtype in (torch.float16, torch.bfloat16) and param.dim() == 1:
            param.data = param.data.float()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    return model


def lora_targets(cfg: TrainSettings) -> list[str]:
    """The language model's LoRA targets and the vision tower's (the recipe in config.TrainSettings)."""
    return list(dict.fromkeys([*cfg.target_modules, *cfg.vision_target_modules]))


def prepare_lora(model: Any, cfg: TrainSettings, *, quantized: bool, modules_to_save: list[str] | None = None) -> Any:
    """LoRA adapters on cfg.target_modules and cfg.vision_target_modules; `modules_to_save` names modules trained in
    full and saved with the adapter (LoRA targets inside them are left alone: the full copy already learns what an
    adapter would)."""
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    if quantized:
        model = prepare_kbit(model)
    # the adapters' random init comes from here, before the trainer sets its seed: seed it, or train.seed does not
    # make a run repeatable
    set_seed(cfg.seed)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=lora_targets(cfg), task_type="CAUSAL_LM", bias="none",
                      modules_to_save=list(modules_to_save) if modules_to_save else None,
                      exclude_modules=_inside(modules_to_save) if modules_to_save else None)
    return get_peft_model(model, lora)


def _inside(modules: list[str]) -> str:
    """A peft exclude regex for every module below one of `modules` (peft matches it against full dotted names)."""
    names = "|".join(re.escape(m) for m in modules)
    return rf"(.*\.)?({names})\..+"


def last_checkpoint(out_dir: Path) -> Path | None:
    """The newest out_dir/trainer/checkpoint-N that holds a trainer state (a checkpoint cut short has none)."""
    folder = Path(out_dir) / TRAINER_DIR
    found = [(int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*")
             if p.name.split("-")[1].isdigit() and (p / "trainer_state.json").exists()]
    return max(found)[1] if found else None


def _resume_check(out_dir: Path, manifest: dict, cfg: TrainSettings) -> Path | None:
    """The checkpoint to resume from, after checking it was made from this bundle and these settings."""
    folder = Path(out_dir) / TRAINER_DIR
    mine = {"hashes": manifest.get("hashes"), "train": cfg.model_dump(mode="json")}
    checkpoint = last_checkpoint(out_dir)
    info_path = folder / RESUME_INFO
    if checkpoint is not None and info_path.exists():
        theirs = json.loads(info_path.read_text(encoding="utf-8"))
        if theirs != mine:
            what = "bundle" if theirs.get("hashes") != mine["hashes"] else "[train] settings"
            raise BizsentError(f"the checkpoints in {folder} were made with another {what}; rerun with the same "
                               f"bundle and settings to resume, or delete {folder} to start over")
    folder.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(mine, indent=2), encoding="utf-8")
    return checkpoint


def prepare_checkpoints(out_dir: Path, manifest: dict, cfg: TrainSettings, resume: bool) -> Path | None:
    """The checkpoint to resume from (checked, see _resume_check); without `resume` the run folder's old
    checkpoints are deleted first, so a later resume cannot pick up one from before this fresh start."""
    if not resume:
        shutil.rmtree(Path(out_dir) / TRAINER_DIR, ignore_errors=True)
    return _resume_check(out_dir, manifest, cfg)


def train(bundle_dir: Path, out_dir: Path, cfg: TrainSettings, *, events: Sink | None = None,
          max_steps: int | None = None, load_in_4bit: bool | None = None, eval_steps: int | None = None,
          modules_to_save: list[str] | None = None, resume: bool = True, callbacks: list | None = None,
          keep_model: bool = False) -> TrainResult:
    """Fine-tune cfg.base_model on the bundle; the adapter lands in out_dir/adapter.

    load_in_4bit None means: cfg.load_in_4bit, on CUDA only (bitsandbytes' CPU 4-bit is for tests, not speed).
    A checkpoint in out_dir/trainer (from a crashed or preempted run on the same bundle) is resumed from unless
    `resume` is False (then they are deleted before training); the checkpoints are deleted once the adapter is
    saved. `keep_model` returns the trained
    model in the result (self-training scores with it instead of loading the adapter again); otherwise it is
    freed before returning.
    """
    require_training_stack()
    import torch
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    emit = events or (lambda event: None)
    train_rows, val_rows = read_split(bundle_dir, "train"), read_split(bundle_dir, "val")
    if not train_rows:
        raise BizsentError(f"{bundle_dir} has no training examples; label more posts or lower "
                           "train.min_label_confidence, then rebuild the dataset")
    manifest = read_manifest(bundle_dir)
    cuda = torch.cuda.is_available()
    if cfg.require_cuda and not cuda:  # a pod's run: its CPU would train the 7B in fp32 for hours, unseen
        raise BizsentError(f"no usable GPU: torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}) sees no "
                           "GPU and train.require_cuda is set; refusing to train on the CPU")
    quantized = (cfg.load_in_4bit and cuda) if load_in_4bit is None else load_in_4bit
    processor = load_processor(cfg.base_model, cfg.max_pixels)
    label_token_ids(processor.tokenizer)  # fail before training if the labels cannot be scored
    checkpoint = prepare_checkpoints(out_dir, manifest, cfg, resume)
    model = load_model(cfg.base_model, load_in_4bit=quantized, quantize_vision=cfg.quantize_vision)
    model.config.use_cache = False
    model = prepare_lora(model, cfg, quantized=quantized, modules_to_save=modules_to_save)

    per_step = cfg.batch_size * cfg.grad_accum
    total = max_steps or max(1, math.ceil(cfg.epochs * math.ceil(len(train_rows) / per_step)))
    args = SFTConfig(
        output_dir=str(out_dir / TRAINER_DIR), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs, max_steps=max_steps or -1,
        lr_scheduler_type="cosine", warmup_steps=max(0, total // 20), logging_steps=max(1, total // 50),
        eval_strategy="no", save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        report_to="none", seed=cfg.seed, bf16=cuda, use_cpu=not cuda,
        gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False},
        assistant_only_loss=True, max_length=None, remove_unused_columns=False, dataloader_num_workers=0,
        disable_tqdm=True,
    )
    val_inputs = score_inputs(bundle_dir, val_rows)
    callback = _event_callback(emit, processor, val_inputs, [r["label"] for r in val_rows], cfg.batch_size,
                               eval_steps or max(1, total // 4))
    trainer = SFTTrainer(
        model=model, args=args, processing_class=processor, data_collator=BundleCollator(processor, bundle_dir),
        train_dataset=_to_dataset(train_rows), callbacks=[callback, *(callbacks or [])],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes out as metric events, not printed dicts
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    adapter = out_dir / ADAPTER_DIR
    trainer.model.save_pretrained(str(adapter))
    write_run_info(adapter, cfg, manifest, processor)
    for old in (out_dir / TRAINER_DIR).glob("checkpoint-*"):  # for crashes only: the adapter is safe now
        shutil.rmtree(old, ignore_errors=True)
    trained = trainer.model if keep_model else None
    del trainer, model
    free_memory()
    return TrainResult(adapter, output.global_step, output.training_loss, time.perf_counter() - started,
                       callback.latest_eval, str(checkpoint) if checkpoint else None, trained)


def train_run(db: Any, settings: Any, *, bundle: Path, out_dir: Path, name: str, max_steps: int | None = None,
              load_in_4bit: bool | None = None, jsonl: Path | None = None, cfg: TrainSettings | None = None,
              eval_steps: int | None = None, resume: bool = True, keep_model: bool = False,
              callbacks: list | None = None, job_id: int | None = None, run_id: int | None = None
              ) -> tuple[int, TrainResult]:
    """Train with events going to the store (and `jsonl`), recording the run's row from start to finish.

    `job_id`: the job row that runs this training (runs.job_id); `run_id`: continue that run's row (a resumed
    job's) instead of making a new one."""
    from bizsent.core.model.events import create_run, finish_run, jsonl_sink, reopen_run, store_sink, tee

    cfg = cfg or settings.train
    require_model(cfg.base_model)  # a model that cannot be loaded fails now, before any run row exists
    if run_id is None:
        run_id = create_run(db, kind="train", name=name, base_model=cfg.base_model, manifest=read_manifest(bundle),
                            params={"bundle": str(bundle), "out_dir": str(out_dir), "max_steps": max_steps,
                                    "load_in_4bit": load_in_4bit, "train": cfg.model_dump(mode="json")},
                            job_id=job_id)
    else:
        reopen_run(db, run_id)
        if resume:
            # Steps after the checkpoint run again: their rows from before the crash would show twice.
            checkpoint = last_checkpoint(out_dir)
            db.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?",
                       [run_id, int(checkpoint.name.split("-")[1]) if checkpoint else 0])
    sink = tee(store_sink(db, run_id), jsonl_sink(jsonl) if jsonl else None)
    try:
        result = train(bundle, out_dir, cfg, events=sink, max_steps=max_steps, load_in_4bit=load_in_4bit,
                       eval_steps=eval_steps, resume=resume, keep_model=keep_model, callbacks=callbacks)
    except Cancelled:
        finish_run(db, run_id, "cancelled")
        raise
    except BaseException:
        finish_run(db, run_id, "failed")
        raise
    finish_run(db, run_id, "done", str(result.adapter_dir))
    return run_id, result
