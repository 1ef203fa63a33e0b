"""Label-token scoring: one forward pass per batch, softmax over the three label tokens at the answer position.

No generation and no parsing, so no invalid outputs. Prompts come from core.chat_format (the training format),
batches are left-padded so the last position of every row is its answer position. `generate_and_parse` is
kept only to compare against (bench/scoring.py).

Two ways to read the answer:
- a fine-tuned run (`sequences=False`): the first token of each lowercase label word. Training taught the model
  exactly those tokens, so the first one decides the class (one forward pass).
- an untuned model, the zero-shot row (`sequences=True`): an instruct model answers "Bearish" as often as
  "bearish", and Qwen2.5 splits the variants differently ("bear"+"ish", "Bear"+"ish", "B"+"ull"+"ish", ...), so
  a first-token softmax over the lowercase words misses most of its answer. Every case and leading-space variant
  of each label is scored as a whole token sequence (teacher-forced on the prompt's KV cache: one pass over the
  prompt and image, then a few tokens per distinct proper prefix of the variants), a class gets the summed
  probability of its variants, and the three sums are renormalised.

Images go through the bundle's preprocessing (core.images.model_image) unless they come from a bundle already, so
a post scored from the store, the pool or `predict --file` is seen exactly as in training.
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
from bizsent.core.collect.images import model_image
from bizsent.core.errors import BizsentError
from bizsent.core.labels import LABELS, Label
from bizsent.core.model.chat_format import render_prompt
from bizsent.core.model.modeling import model_device
from bizsent.core.store import now, transaction
from PIL import Image

# What follows the prompt in a training example: the answer starts right after "<|im_start|>assistant\n".
ANSWER_PREFIX = "<|im_start|>assistant\n"


@dataclass(frozen=True, slots=True)
class ScoreInput:
    post_id: int | None
    text: str
    image_path: str
    subject: str = ""
    # True: the image is a bundle's own (already downscaled JPEG); False: an original that gets the same treatment
    prepared: bool = False


@dataclass(slots=True)
class Scored:
    post_id: int | None
    label: Label
    probs: dict[str, float]
    latency_ms: float
    # the answer-position hidden state of the last layer (with `embeddings`), float32
    embedding: Any = field(default=None, repr=False)
    # full-vocabulary probability of all label answers together (how much of its answer the model put on labels)
    label_mass: float | None = None

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


def label_variants(tokenizer: Any) -> dict[str, list[tuple[int, ...]]]:
    """Every spelling of each label an untuned model may answer with, as token ids after the assistant prefix:
    lower, Capitalised and UPPER case, each with and without a leading space (duplicates dropped)."""
    prefix = tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
    out: dict[str, list[tuple[int, ...]]] = {}
    for word in LABELS:
        seqs: list[tuple[int, ...]] = []
        for spelled in (word, word.capitalize(), word.upper()):
            for lead in ("", " "):
                ids = tokenizer(ANSWER_PREFIX + lead + spelled, add_special_tokens=False)["input_ids"]
                if ids[: len(prefix)] != prefix or len(ids) == len(prefix):
                    continue  # merged with the prefix: not a continuation this scoring can read
                seq = tuple(ids[len(prefix):])
                if seq not in seqs:
                    seqs.append(seq)
        out[word] = seqs
    return out


def open_image(path: str | Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def pixel_budget(processor: Any) -> int | None:
    """The processor's image budget (core.modeling.load_processor sets it from train.max_pixels and checks it)."""
    from bizsent.core.model.modeling import image_budget

    return image_budget(processor.image_processor)


def item_image(item: ScoreInput, max_pixels: int | None) -> Image.Image:
    if item.prepared:
        return open_image(item.image_path)
    if max_pixels is None:  # an original at full size would be a different input from the one trained on
        raise BizsentError("the processor has no pixel budget; load it with core.model.modeling.load_processor")
    return model_image(item.image_path, max_pixels)


def encode_prompts(processor: Any, items: Sequence[ScoreInput], device: Any) -> Any:
    texts = [render_prompt(processor, item.text, item.subject) for item in items]
    budget = pixel_budget(processor)
    images = [item_image(item, budget) for item in items]
    batch = processor(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
    return batch.to(device)


def _sequence_probs(model: Any, batch: Any, variants: dict[str, list[tuple[int, ...]]],
                    first: Any, cache: Any) -> tuple[Any, Any]:
    """(class probabilities renormalised over the labels, total label mass) from whole variant sequences.

    `first` holds the full-vocabulary log-probabilities at the answer position (the empty prefix), `cache` the
    prompt's KV cache from that pass: each proper prefix of a variant is run on top of it (its own few tokens, not
    the whole prompt and image again) and cropped off after."""
    import torch

    prefixes = sorted({seq[:k] for seqs in variants.values() for seq in seqs for k in range(1, len(seq))})
    logp = {(): first}
    ids, mask = batch["input_ids"], batch["attention_mask"]
    deltas = _rope_deltas(model)
    for pre in prefixes:
        tokens = torch.tensor(pre, dtype=ids.dtype, device=ids.device).expand(ids.shape[0], len(pre))
        full = torch.cat([mask, torch.ones_like(tokens)], dim=1)
        # Qwen2.5-VL's 3D rope: the new tokens' text positions (left padding counted out) plus the image's offset
        # from the prompt pass, as transformers' own generation continues a cached prompt
        positions = (full.long().cumsum(-1) - 1).masked_fill(full == 0, 0)[:, -len(pre):][None]
        result = model(input_ids=tokens, attention_mask=full, cache=cache, use_cache=True, logits_to_keep=1,
                       position_ids=positions + deltas if deltas is not None else positions)
        logp[pre] = torch.log_softmax(result.logits[:, -1].float(), dim=-1)
        cache.crop(-len(pre))
    per_class = []
    for word in LABELS:
        seq_logps = [sum(logp[seq[:k]][:, tok] for k, tok in enumerate(seq)) for seq in variants[word]]
        per_class.append(torch.logsumexp(torch.stack(seq_logps, dim=-1), dim=-1))
    joint = torch.stack(per_class, dim=-1)
    return torch.softmax(joint, dim=-1).cpu(), torch.logsumexp(joint, dim=-1).exp().cpu()


def _rope_deltas(model: Any) -> Any:
    """The rope offset Qwen2.5-VL stored in its prompt pass (through a peft wrapper), None for other models."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(getattr(inner, "model", None), "rope_deltas", None)


def _batches(items: Sequence[ScoreInput], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def half_precision(model: Any) -> Any:
    """The autocast a forward pass of `model` needs outside the trainer: bf16 (or fp16) when the model holds such
    weights, else a no-op. A model readied for 4-bit training (core.model.training.prepare_kbit) keeps its 2-D
    weights in bf16 and its norms in fp32; the trainer's own autocast hides the mix, but a plain forward (validation
    during training, self-training's pseudo-labelling) hands an fp32 norm output to a bf16 linear layer and fails
    with "self and mat2 must have the same dtype"."""
    import torch

    half = next((p.dtype for p in model.parameters() if p.dtype in (torch.bfloat16, torch.float16)), None)
    return torch.autocast(model_device(model).type, dtype=half or torch.bfloat16, enabled=half is not None)


def score(model: Any, processor: Any, items: Sequence[ScoreInput], *, batch_size: int = 8,
          embeddings: bool = False, sequences: bool = False) -> list[Scored]:
    """Class probabilities for each item; with `embeddings`, also the last layer's hidden state at the answer
    position (what the next token is read from); with `sequences`, whole label sequences in every spelling
    (the untuned model, see the module docstring) instead of the lowercase first tokens."""
    import torch

    ids = label_token_ids(processor.tokenizer)
    variants = label_variants(processor.tokenizer) if sequences else None
    device = model_device(model)
    was_training = model.training
    model.eval()
    out: list[Scored] = []
    try:
        with torch.no_grad(), half_precision(model):
            for chunk in _batches(items, batch_size):
                started = time.perf_counter()
                batch = encode_prompts(processor, chunk, device)
                result = model(**batch, output_hidden_states=embeddings, logits_to_keep=1,
                               use_cache=variants is not None)
                first = torch.log_softmax(result.logits[:, -1].float(), dim=-1)
                if variants is not None:
                    probs, mass = _sequence_probs(model, batch, variants, first, result.cache)
                else:
                    probs = torch.softmax(first[:, ids], dim=-1).cpu()
                    mass = first[:, ids].exp().sum(-1).cpu()
                # left padding: the last position of every row is its answer position
                answer = result.hidden_states[-1][:, -1].float().cpu().numpy() if embeddings else None
                del result
                per_item = (time.perf_counter() - started) * 1000 / len(chunk)
                for row, item in enumerate(chunk):
                    p = {label: float(probs[row, k]) for k, label in enumerate(LABELS)}
                    best = LABELS[int(probs[row].argmax())]
                    vec = answer[row].copy() if answer is not None else None
                    out.append(Scored(item.post_id, best, p, per_item, vec, float(mass[row])))
    finally:
        model.train(was_training)
    return out


def parse_answer(text: str) -> Label | None:
    """The first label word in a generated answer, or None (what label-token scoring never returns)."""
    match = re.search(r"\b(" + "|".join(LABELS) + r")\b", text.lower())
    return match.group(1) if match else None  # type: ignore[return-value]


def generate_and_parse(model: Any, processor: Any, items: Sequence[ScoreInput], *, batch_size: int = 8,
                       max_new_tokens: int | None = None) -> list[Label | None]:
    """The comparison path: greedy generation of at most the longest label's tokens, then parsing."""
    import torch

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
