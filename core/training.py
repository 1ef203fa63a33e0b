"""QLoRA fine-tuning of Qwen2.5-VL with TRL's SFTTrainer on a dataset bundle (core.dataset.export_bundle).

The same function trains the 7B model on a GPU pod and the tiny test model on a CPU: 4-bit NF4 when CUDA is
present (or when asked), LoRA from config, loss on the assistant turn only, gradient checkpointing, each
example with its own image, evaluation on the validation split by label-token scoring, and metric events to
whatever sink the caller passes (the store locally, a JSONL file on a pod). The adapter folder holds the LoRA
weights, their config and bizsent.json (prompt version, base model, training settings, dataset manifest).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import TrainSettings
from core.dataset import read_manifest, read_split
from core.errors import BizsentError
from core.events import MetricEvent, Sink
from core.labels import LABELS, PROMPT_VERSION
from core.metrics import evaluate
from core.modeling import load_model, load_processor, require_model, require_training_stack
from core.scoring import ScoreInput, label_token_ids, open_image, score

ADAPTER_DIR = "adapter"
RUN_INFO = "bizsent.json"


@dataclass(slots=True)
class TrainResult:
    adapter_dir: Path
    steps: int
    train_loss: float | None
    seconds: float
    last_eval: MetricEvent | None


def score_inputs(bundle: Path, rows: list[dict]) -> list[ScoreInput]:
    return [ScoreInput(r["post_id"], r["text"], str(Path(bundle) / r["images"][0]), r.get("subject", ""))
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


def _event_callback(events: Sink, processor: Any, val: list[ScoreInput], val_labels: list[str], batch_size: int):
    from transformers import TrainerCallback

    class EventCallback(TrainerCallback):
        """Turns the trainer's logs into train events and each evaluation into a scored eval event."""

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
                               data={"samples_per_s": samples / max(now - started, 1e-9),
                                     "grad_norm": float(logs.get("grad_norm", 0.0) or 0.0)}))

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            if not val:
                return
            scored = score(model, processor, val, batch_size=batch_size)
            result = evaluate(val_labels, [s.label for s in scored], probs=[s.probs for s in scored], n_boot=0)
            event = MetricEvent("eval", step=state.global_step, epoch=state.epoch, accuracy=result.accuracy,
                                macro_f1=result.macro_f1, confusion=result.confusion,
                                data={"split": "val", "n": result.n, "ece": result.ece,
                                      "eval_loss": (metrics or {}).get("eval_loss"),
                                      "per_class": {k: v.f1 for k, v in result.per_class.items()}})
            self.latest_eval = event
            events(event)

    return EventCallback()


def _to_dataset(rows: list[dict]) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"messages": r["messages"], "images": r["images"]} for r in rows])


def prepare_lora(model: Any, cfg: TrainSettings, *, quantized: bool, modules_to_save: list[str] | None = None) -> Any:
    """LoRA adapters on cfg.target_modules; `modules_to_save` names modules trained in full and saved with the adapter
    (LoRA targets inside them are left alone: the full copy already learns what an adapter would)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), task_type="CAUSAL_LM", bias="none",
                      modules_to_save=list(modules_to_save) if modules_to_save else None,
                      exclude_modules=_inside(modules_to_save) if modules_to_save else None)
    return get_peft_model(model, lora)


def _inside(modules: list[str]) -> str:
    """A peft exclude regex for every module below one of `modules` (peft matches it against full dotted names)."""
    names = "|".join(re.escape(m) for m in modules)
    return rf"(.*\.)?({names})\..+"


def train(bundle_dir: Path, out_dir: Path, cfg: TrainSettings, *, events: Sink | None = None,
          max_steps: int | None = None, load_in_4bit: bool | None = None, eval_steps: int | None = None,
          modules_to_save: list[str] | None = None) -> TrainResult:
    """Fine-tune cfg.base_model on the bundle; the adapter lands in out_dir/adapter.

    load_in_4bit None means: cfg.load_in_4bit, on CUDA only (bitsandbytes' CPU 4-bit is for tests, not speed).
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
    quantized = (cfg.load_in_4bit and cuda) if load_in_4bit is None else load_in_4bit
    processor = load_processor(cfg.base_model, cfg.max_pixels)
    label_token_ids(processor.tokenizer)  # fail before training if the labels cannot be scored
    model = load_model(cfg.base_model, load_in_4bit=quantized)
    model.config.use_cache = False
    model = prepare_lora(model, cfg, quantized=quantized, modules_to_save=modules_to_save)

    per_step = cfg.batch_size * cfg.grad_accum
    total = max_steps or max(1, math.ceil(cfg.epochs * math.ceil(len(train_rows) / per_step)))
    args = SFTConfig(
        output_dir=str(out_dir / "trainer"), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs, max_steps=max_steps or -1,
        lr_scheduler_type="cosine", warmup_steps=max(0, total // 20), logging_steps=max(1, total // 50),
        eval_strategy="steps" if val_rows else "no", eval_steps=eval_steps or max(1, total // 4),
        save_strategy="no", report_to="none", seed=cfg.seed, bf16=cuda, use_cpu=not cuda,
        gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False},
        assistant_only_loss=True, max_length=None, remove_unused_columns=False, dataloader_num_workers=0,
        disable_tqdm=True,
    )
    val_inputs = score_inputs(bundle_dir, val_rows)
    callback = _event_callback(emit, processor, val_inputs, [r["label"] for r in val_rows], cfg.batch_size)
    trainer = SFTTrainer(
        model=model, args=args, processing_class=processor, data_collator=BundleCollator(processor, bundle_dir),
        train_dataset=_to_dataset(train_rows), eval_dataset=_to_dataset(val_rows) if val_rows else None,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes out as metric events, not printed dicts
    started = time.perf_counter()
    output = trainer.train()
    adapter = out_dir / ADAPTER_DIR
    trainer.model.save_pretrained(str(adapter))
    write_run_info(adapter, cfg, manifest, processor)
    return TrainResult(adapter, output.global_step, output.training_loss, time.perf_counter() - started,
                       callback.latest_eval)


def write_run_info(adapter: Path, cfg: TrainSettings, manifest: dict, processor: Any) -> None:
    info = {
        "prompt_version": PROMPT_VERSION,
        "base_model": cfg.base_model,
        "labels": list(LABELS),
        "label_token_ids": label_token_ids(processor.tokenizer),
        "train": cfg.model_dump(mode="json"),
        "manifest": manifest,
    }
    (adapter / RUN_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")


def read_run_info(adapter: Path) -> dict:
    path = Path(adapter) / RUN_INFO
    if not path.exists():
        raise BizsentError(f"{path} does not exist; {adapter} is not an adapter trained by bizsent")
    return json.loads(path.read_text(encoding="utf-8"))


def train_run(db: Any, settings: Any, *, bundle: Path, out_dir: Path, name: str, max_steps: int | None = None,
              load_in_4bit: bool | None = None, jsonl: Path | None = None, cfg: TrainSettings | None = None,
              eval_steps: int | None = None) -> tuple[int, TrainResult]:
    """Train with events going to the store (and `jsonl`), recording the run's row from start to finish."""
    from core.events import create_run, finish_run, jsonl_sink, store_sink, tee

    cfg = cfg or settings.train
    require_model(cfg.base_model)  # a model that cannot be loaded fails now, before any run row exists
    run_id = create_run(db, kind="train", name=name, base_model=cfg.base_model, manifest=read_manifest(bundle),
                        params={"bundle": str(bundle), "out_dir": str(out_dir), "max_steps": max_steps,
                                "load_in_4bit": load_in_4bit, "train": cfg.model_dump(mode="json")})
    sink = tee(store_sink(db, run_id), jsonl_sink(jsonl) if jsonl else None)
    try:
        result = train(bundle, out_dir, cfg, events=sink, max_steps=max_steps, load_in_4bit=load_in_4bit,
                       eval_steps=eval_steps)
    except BaseException:
        finish_run(db, run_id, "failed")
        raise
    finish_run(db, run_id, "done", str(result.adapter_dir))
    return run_id, result
