"""Label-token scoring: one forward pass per batch, softmax over the three label tokens at the answer position.

No generation and no parsing, so no invalid outputs. Prompts come from core.chat_format (the training format),
batches are left-padded so the last position of every row is its answer position. `generate_and_parse` is
kept only to compare against (bench/scoring.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
from PIL import Image

from core.chat_format import render_prompt
from core.errors import BizsentError
from core.labels import LABELS, Label
from core.store import now, transaction

# What follows the prompt in a training example: the answer starts right after "<|im_start|>assistant\n".
ANSWER_PREFIX = "<|im_start|>assistant\n"


@dataclass(frozen=True, slots=True)
class ScoreInput:
    post_id: int | None
    text: str
    image_path: str
    subject: str = ""


@dataclass(slots=True)
class Scored:
    post_id: int | None
    label: Label
    probs: dict[str, float]
    latency_ms: float
    embedding: list[float] | None = field(default=None, repr=False)

    @property
    def confidence(self) -> float:
        return self.probs[self.label]


def label_token_ids(tokenizer: Any) -> list[int]:
    """The first token of each label word as the model would write it after the assistant prefix.

    Qwen2.5's byte-level BPE writes an answer as "bear"+"ish", "neutral", "bull"+"ish" (its vocabulary has those
    pieces; space-less "bearish"/"bullish" are not tokens as far as a public dump of its frequent tokens shows).
    After fine-tuning, the first token decides the class as long as the three first tokens differ, which is
    checked here for whatever tokenizer is loaded rather than assumed; the later pieces are then determined.
    """
    prefix = tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
    firsts = []
    for word in LABELS:
        ids = tokenizer(ANSWER_PREFIX + word, add_special_tokens=False)["input_ids"]
        if ids[: len(prefix)] != prefix or len(ids) == len(prefix):
            raise BizsentError(f"the tokenizer merges the label {word!r} with the assistant prefix; "
                               "label-token scoring cannot be used with this model")
        firsts.append(ids[len(prefix)])
    if len(set(firsts)) != len(firsts):
        raise BizsentError(f"labels {LABELS} share a first token in this tokenizer; rename a label to score them")
    return firsts


def label_token_counts(tokenizer: Any) -> dict[str, int]:
    """How many tokens each label word takes (the honest generation budget for generate-and-parse)."""
    prefix = len(tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"])
    return {w: len(tokenizer(ANSWER_PREFIX + w, add_special_tokens=False)["input_ids"]) - prefix for w in LABELS}


def open_image(path: str | Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def encode_prompts(processor: Any, items: Sequence[ScoreInput], device: Any) -> Any:
    texts = [render_prompt(processor, item.text, item.subject) for item in items]
    images = [open_image(item.image_path) for item in items]
    batch = processor(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
    return batch.to(device)


def _batches(items: Sequence[ScoreInput], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def score(model: Any, processor: Any, items: Sequence[ScoreInput], *, batch_size: int = 8,
          embeddings: bool = False) -> list[Scored]:
    """Class probabilities for each item; with `embeddings`, also the mean-pooled last hidden state."""
    import torch

    from core.modeling import model_device

    ids = label_token_ids(processor.tokenizer)
    device = model_device(model)
    was_training = model.training
    model.eval()
    out: list[Scored] = []
    try:
        with torch.no_grad():
            for chunk in _batches(items, batch_size):
                started = time.perf_counter()
                batch = encode_prompts(processor, chunk, device)
                result = model(**batch, output_hidden_states=embeddings, logits_to_keep=1)
                probs = torch.softmax(result.logits[:, -1, ids].float(), dim=-1).cpu()
                pooled = _pool(result.hidden_states[-1], batch["attention_mask"]) if embeddings else None
                per_item = (time.perf_counter() - started) * 1000 / len(chunk)
                for row, item in enumerate(chunk):
                    p = {label: float(probs[row, k]) for k, label in enumerate(LABELS)}
                    best = LABELS[int(probs[row].argmax())]
                    vec = pooled[row].tolist() if pooled is not None else None
                    out.append(Scored(item.post_id, best, p, per_item, vec))
    finally:
        model.train(was_training)
    return out


def _pool(hidden: Any, mask: Any) -> Any:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return ((hidden * weights).sum(1) / weights.sum(1).clamp(min=1)).float().cpu()


def parse_answer(text: str) -> Label | None:
    """The first label word in a generated answer, or None (what label-token scoring never returns)."""
    match = re.search(r"\b(" + "|".join(LABELS) + r")\b", text.lower())
    return match.group(1) if match else None  # type: ignore[return-value]


def generate_and_parse(model: Any, processor: Any, items: Sequence[ScoreInput], *, batch_size: int = 8,
                       max_new_tokens: int | None = None) -> list[Label | None]:
    """The comparison path: greedy generation of at most the longest label's tokens, then parsing."""
    import torch

    from core.modeling import model_device

    budget = max_new_tokens or max(label_token_counts(processor.tokenizer).values())
    device = model_device(model)
    tokenizer = processor.tokenizer
    labels: list[Label | None] = []
    model.eval()
    with torch.no_grad():
        for chunk in _batches(items, batch_size):
            batch = encode_prompts(processor, chunk, device)
            generated = model.generate(**batch, max_new_tokens=budget, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
            answers = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            labels.extend(parse_answer(answer) for answer in answers)
    return labels


def write_predictions(db: sqlite_utils.Database, run_id: int, scored: Sequence[Scored]) -> int:
    """Store predictions of `run_id` (replacing earlier ones for the same posts)."""
    stamp = now()
    rows = [s for s in scored if s.post_id is not None]
    with transaction(db):
        for s in rows:
            db.execute(
                "INSERT INTO predictions (run_id, post_id, label, probs, latency_ms, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, post_id) DO UPDATE SET label = excluded.label,"
                " probs = excluded.probs, latency_ms = excluded.latency_ms, created_at = excluded.created_at",
                [run_id, s.post_id, s.label, json.dumps(s.probs), s.latency_ms, stamp],
            )
    return len(rows)
