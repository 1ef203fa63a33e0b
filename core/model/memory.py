"""Peak GPU memory of one training step and of one pool-scoring batch, estimated from the config, the model's
shape and (with a bundle) the real token counts of its posts; no weights, no torch: what `bizsent train
--dry-run` prints before a pod is paid for.

These are estimates, not measurements. The assumptions, each a row of the table:
- weights: the language model's linear layers in NF4 with double quantisation (4 + 8/64 + 32/(64*256) = 4.127
  bits a parameter), or bf16 without 4-bit; embeddings and the output layer in bf16 (never quantised); the
  vision tower in bf16 (train.quantize_vision = false) or its linear layers in NF4 too; norms in fp32.
- LoRA: fp32 weights, fp32 gradients and two fp32 Adam moments, 16 bytes a parameter, for every target module
  the config names (language model and vision tower); scoring holds the fp32 weights only.
- activations with gradient checkpointing: each decoder layer's and each vision block's input kept for the
  backward pass (bf16), plus one layer and one block recomputed at a time (about 10x hidden + 4x intermediate
  values a token; attention through SDPA, so no sequence-squared matrix).
- logits: TRL 1.16's SFTTrainer on CUDA computes the loss only at the labelled positions (a chunked output
  layer; platform-facts.md), so the output layer's logits exist for the assistant turn's few tokens (the answer
  word's pieces, <|im_end|> and the newline), not for batch x sequence x vocabulary.
- a batch pads to its longest post: text (system prompt, post, answer) plus its image's tokens (the image's own
  size within train.max_pixels, one token per 28 x 28 pixels after the 2x2 merge); the vision tower sees each
  row's own patches, unpadded. With a bundle (core.model.batches) the typical batch (the median padded length of
  a shuffled epoch) and the longest (the batch_size longest posts together) come from its real token counts;
  without one, a `text_tokens` post with an image at the full budget.
- scoring (pool scoring, self-training's pseudo-labelling, eval): no gradients, one decoder layer's activations
  at a time, the KV cache of every layer, every layer's hidden state when embeddings are kept (pool scoring
  keeps them), the logits of the last position only.
- 1 GB for the CUDA context, cuBLAS workspace and kernels, then 10% on top for allocator fragmentation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

GB = 1024**3  # the table says GiB: a 24 GB RTX 4090 has 24 GiB
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)  # NF4 + 8-bit absmax per 64 weights + fp32 second-level scale per 256 blocks
CUDA_OVERHEAD = 1.0 * GB
FRAGMENTATION = 0.10
DEFAULT_TEXT_TOKENS = 256
GPU_GB = 24.0  # an RTX 4090, GiB
# Supervised tokens of one example: the longest label's pieces ("bear" + "ish"), <|im_end|> and the newline.
LABELLED_TOKENS = 4


@dataclass(frozen=True, slots=True)
class ModelShape:
    name: str
    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    vision_hidden: int
    vision_layers: int
    vision_intermediate: int
    patch: int = 14
    merge: int = 2
    tied_embeddings: bool = False

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)

    @property
    def merge_dim(self) -> int:
        return self.vision_hidden * self.merge**2


# Qwen2.5-VL-7B-Instruct's config.json
QWEN25_VL_7B = ModelShape("Qwen2.5-VL-7B-Instruct", vocab=152064, hidden=3584, layers=28, intermediate=18944,
                          heads=28, kv_heads=4, vision_hidden=1280, vision_layers=32, vision_intermediate=3420)


def shape_from_config(path: str | Path) -> ModelShape:
    """A model's shape from its config.json (the top-level or nested text_config layout)."""
    cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    text = {**cfg, **cfg.get("text_config", {})}
    vision = cfg.get("vision_config", {})
    return ModelShape(Path(path).name, vocab=text["vocab_size"], hidden=text["hidden_size"],
                      layers=text["num_hidden_layers"], intermediate=text["intermediate_size"],
                      heads=text["num_attention_heads"], kv_heads=text.get("num_key_value_heads",
                                                                           text["num_attention_heads"]),
                      vision_hidden=vision.get("hidden_size", 1280), vision_layers=vision.get("depth", 32),
                      vision_intermediate=vision.get("intermediate_size", 3420),
                      patch=vision.get("patch_size", 14), merge=vision.get("spatial_merge_size", 2),
                      tied_embeddings=bool(cfg.get("tie_word_embeddings", False)))


def shape_for(base_model: str) -> tuple[ModelShape, str]:
    """(shape, where it came from): a local folder's config.json, else Qwen2.5-VL-7B's known shape."""
    local = Path(base_model).expanduser()
    if (local / "config.json").exists():
        return shape_from_config(local), f"{local}/config.json"
    note = "known shape" if "qwen2.5-vl-7b" in base_model.lower() else f"assumed: {base_model} is not on disk"
    return QWEN25_VL_7B, f"Qwen2.5-VL-7B {note}"


def _lm_linear(s: ModelShape) -> dict[str, tuple[int, int]]:
    """(in, out) of each language-model linear layer, by peft target name."""
    h, i, kv = s.hidden, s.intermediate, s.kv_dim
    return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def _vision_linear(s: ModelShape) -> dict[str, tuple[int, int, int]]:
    """(in, out, count) of each vision linear layer, by peft target name (suffixes that match the tower)."""
    vh, vi, n = s.vision_hidden, s.vision_intermediate, s.vision_layers
    return {"attn.qkv": (vh, 3 * vh, n), "attn.proj": (vh, vh, n), "gate_proj": (vh, vi, n), "up_proj": (vh, vi, n),
            "down_proj": (vi, vh, n), "merger.mlp.0": (s.merge_dim, s.merge_dim, 1),
            "merger.mlp.2": (s.merge_dim, s.hidden, 1)}


def vision_params(s: ModelShape) -> int:
    linear = sum(a * b * c for a, b, c in _vision_linear(s).values())
    patch_embed = 3 * 2 * s.patch**2 * s.vision_hidden  # temporal patch of 2 frames
    return linear + patch_embed + s.vision_layers * 2 * s.vision_hidden


def _target(name: str, known: dict) -> str | None:
    """The known layer a peft target name (a suffix) picks, e.g. "qkv" -> "attn.qkv"."""
    for key in known:
        if key == name or key.endswith("." + name):
            return key
    return None


@dataclass(slots=True)
class MemoryEstimate:
    model: str
    rows: list[tuple[str, float, str]] = field(default_factory=list)  # (part, bytes, how)
    notes: list[str] = field(default_factory=list)
    gpu_gb: float = GPU_GB

    @property
    def total(self) -> float:
        return sum(b for _, b, _ in self.rows)

    @property
    def verdict(self) -> str:
        total, gpu = self.total / GB, self.gpu_gb
        if total <= 0.9 * gpu:
            return f"fits in {gpu:.0f} GiB ({gpu - total:.1f} GiB to spare)"
        if total <= gpu:
            return (f"tight in {gpu:.0f} GiB ({gpu - total:.1f} GiB to spare): lower train.batch_size (raise "
                    "grad_accum)")
        return (f"does not fit in {gpu:.0f} GiB ({total - gpu:.1f} GiB over): lower train.batch_size (raise "
                "grad_accum) or train.max_pixels")


@dataclass(frozen=True, slots=True)
class BatchShape:
    """One batch as the GPU sees it: `rows` posts padded to `seq` tokens (`text` of them text, the rest its
    longest row's image), and the vision tower's patches of every row's own image."""

    what: str
    rows: int
    seq: int
    patches: int
    text: int


def full_budget_batch(cfg, shape: ModelShape, text_tokens: int = DEFAULT_TEXT_TOKENS, rows: int | None = None,
                      what: str = "batch") -> BatchShape:
    """A batch of `text_tokens` posts whose images fill train.max_pixels (no bundle to count from)."""
    rows = rows or cfg.batch_size
    image = cfg.max_pixels // (shape.patch * shape.merge) ** 2
    return BatchShape(what, rows, text_tokens + image, rows * cfg.max_pixels // shape.patch**2, text_tokens)


def _add_weights(est: MemoryEstimate, cfg, s: ModelShape) -> None:
    add = est.rows.append
    lm = sum(a * o for a, o in _lm_linear(s).values()) * s.layers
    four_bit = cfg.load_in_4bit
    add(("language model weights", lm * (NF4_BITS / 8 if four_bit else 2),
         f"{lm / 1e9:.2f}B params, " + ("NF4 + double quant" if four_bit else "bf16")))
    embed = s.vocab * s.hidden * (1 if s.tied_embeddings else 2)
    add(("embeddings + output layer", embed * 2, f"{embed / 1e9:.2f}B params, bf16 (not quantised)"))
    vp = vision_params(s)
    vq = four_bit and cfg.quantize_vision
    v_linear = sum(a * o * c for a, o, c in _vision_linear(s).values())
    add(("vision tower weights", (v_linear * NF4_BITS / 8 + (vp - v_linear) * 2) if vq else vp * 2,
         f"{vp / 1e6:.0f}M params, " + ("NF4 (quantize_vision)" if vq else "bf16, frozen")))
    add(("norms", (2 * s.layers + 1) * s.hidden * 4, "fp32"))


def _lora_params(est: MemoryEstimate, cfg, s: ModelShape) -> int:
    lora = 0
    lm_known, v_known = _lm_linear(s), _vision_linear(s)
    for name in dict.fromkeys([*cfg.target_modules, *cfg.vision_target_modules]):
        lm_key, v_key = _target(name, lm_known), _target(name, v_known)
        if lm_key:
            a, o = lm_known[lm_key]
            lora += cfg.lora_r * (a + o) * s.layers
        if v_key:
            a, o, c = v_known[v_key]
            lora += cfg.lora_r * (a + o) * c
        if not lm_key and not v_key:
            est.notes.append(f"target module {name!r} is not a layer this estimate knows; not counted")
    return lora


def _finish(est: MemoryEstimate) -> MemoryEstimate:
    est.rows.append(("CUDA context, workspace", CUDA_OVERHEAD, "fixed"))
    est.rows.append(("allocator fragmentation", FRAGMENTATION * est.total, f"{FRAGMENTATION:.0%} on top"))
    return est


def _shape_line(batch: BatchShape) -> str:
    return f"batch {batch.rows} x {batch.seq} tokens ({batch.text} text + {batch.seq - batch.text} image)"


def estimate_training_memory(cfg, shape: ModelShape = QWEN25_VL_7B, *, text_tokens: int = DEFAULT_TEXT_TOKENS,
                             gpu_gb: float = GPU_GB, batch: BatchShape | None = None,
                             chunked_loss: bool = True) -> MemoryEstimate:
    """The peak GPU memory of one training step of `cfg` (a TrainSettings) on a model of `shape`, for `batch`
    (default: `text_tokens` posts with images at the full budget). `chunked_loss`: TRL's loss at the labelled
    positions only, as on CUDA (False: a full logits buffer, as the CPU path computes it)."""
    s = shape
    batch = batch or full_budget_batch(cfg, s, text_tokens)
    est = MemoryEstimate(s.name, gpu_gb=gpu_gb)
    add = est.rows.append
    _add_weights(est, cfg, s)
    lora = _lora_params(est, cfg, s)
    add(("LoRA weights, gradients, Adam", lora * 16, f"{lora / 1e6:.1f}M params x 16 bytes (fp32)"))
    tokens = batch.rows * batch.seq
    add(("decoder layer checkpoints", s.layers * tokens * s.hidden * 2,
         f"{s.layers} layers x {_shape_line(batch)}, bf16"))
    add(("one decoder layer recomputed", tokens * (10 * s.hidden + 4 * s.intermediate) * 2
         + tokens * s.hidden * 4 * 2, "backward of one layer at a time (SDPA attention)"))
    add(("vision block checkpoints", s.vision_layers * batch.patches * s.vision_hidden * 2,
         f"{s.vision_layers} blocks x {batch.patches} patches (every row's own image), bf16"))
    add(("one vision block recomputed", batch.patches * (10 * s.vision_hidden + 4 * s.vision_intermediate) * 2,
         "the tower is in the backward pass: LoRA on it"))
    if chunked_loss:
        add(("logits and loss", batch.rows * LABELLED_TOKENS * s.vocab * 12,
             f"labelled positions only ({LABELLED_TOKENS} a post; TRL's chunked loss on CUDA)"))
    else:
        add(("logits and loss", tokens * s.vocab * 12, f"{_shape_line(batch)} x {s.vocab} vocabulary, 12 bytes"))
    _finish(est)
    full_tower = vision_params(s) * 16
    est.notes.append(f"training the vision tower in full (peft modules_to_save) instead of LoRA would add "
                     f"{full_tower / GB:.1f} GiB (fp32 copy, gradient, Adam): {(est.total + full_tower) / GB:.1f} GiB")
    return est


def estimate_scoring_memory(cfg, shape: ModelShape = QWEN25_VL_7B, *, batch: BatchShape | None = None,
                            embeddings: bool = True, gpu_gb: float = GPU_GB) -> MemoryEstimate:
    """The peak GPU memory of one scoring batch (pool scoring keeps `embeddings`: every layer's hidden state)."""
    s = shape
    batch = batch or full_budget_batch(cfg, s, what="scoring batch")
    est = MemoryEstimate(s.name, gpu_gb=gpu_gb)
    add = est.rows.append
    _add_weights(est, cfg, s)
    lora = _lora_params(est, cfg, s)
    add(("LoRA weights", lora * 4, f"{lora / 1e6:.1f}M params, fp32, no gradients"))
    tokens = batch.rows * batch.seq
    add(("one decoder layer's activations", tokens * (10 * s.hidden + 4 * s.intermediate) * 2,
         f"{_shape_line(batch)}, no gradients: one layer at a time"))
    add(("KV cache", s.layers * tokens * 2 * s.kv_dim * 2, f"{s.layers} layers, bf16"))
    if embeddings:
        add(("hidden states kept", (s.layers + 1) * tokens * s.hidden * 2, "every layer's (the answer embedding)"))
    add(("one vision block's activations", batch.patches * (10 * s.vision_hidden + 4 * s.vision_intermediate) * 2,
         f"{batch.patches} patches"))
    add(("logits", batch.rows * s.vocab * 4, "last position only, fp32"))
    return _finish(est)


def render(est: MemoryEstimate, source: str = "", what: str = "one training step") -> str:
    """The estimate as a plain-text table (the CLI prints it; no Rich needed on a pod)."""
    width = max(len(r[0]) for r in est.rows)
    lines = [f"Estimated peak GPU memory of {what}: {est.model}" + (f" ({source})" if source else ""), ""]
    lines += [f"  {part:<{width}}  {size / GB:6.2f} GiB  {how}" for part, size, how in est.rows]
    lines += [f"  {'total':<{width}}  {est.total / GB:6.2f} GiB  {est.verdict}", ""]
    lines += [f"note: {n}" for n in est.notes]
    lines.append("These are estimates from the config and the model's shape "
                 "(assumptions: core/model/memory.py, docs/pods.md).")
    return "\n".join(lines)


def render_columns(columns: list[tuple[str, MemoryEstimate]], source: str = "", notes: tuple[str, ...] = ()) -> str:
    """Several estimates side by side (typical and longest training batch, a scoring batch), one row per part."""
    last = ("CUDA context, workspace", "allocator fragmentation")
    parts = [p for p in dict.fromkeys(part for _, est in columns for part, _, _ in est.rows) if p not in last]
    parts += list(last)
    width = max(len(p) for p in [*parts, "total"])
    heads = [title for title, _ in columns]
    cell = max(10, *(len(h) for h in heads))
    model = columns[0][1].model
    lines = [f"Estimated peak GPU memory (GiB): {model}" + (f" ({source})" if source else ""), "",
             f"  {'':<{width}}  " + "  ".join(f"{h:>{cell}}" for h in heads)]
    for part in parts:
        sizes = [next((b for p, b, _ in est.rows if p == part), None) for _, est in columns]
        lines.append(f"  {part:<{width}}  " + "  ".join(f"{'-' if b is None else f'{b / GB:.2f}':>{cell}}"
                                                       for b in sizes))
    lines.append(f"  {'total':<{width}}  " + "  ".join(f"{est.total / GB:>{cell}.2f}" for _, est in columns))
    lines.append("")
    lines += [f"{title}: {est.verdict}" for title, est in columns]
    lines += [f"note: {n}" for n in dict.fromkeys([*notes, *(n for _, est in columns for n in est.notes)])]
    lines.append("These are estimates from the config, the model's shape and the posts' token counts "
                 "(assumptions: core/model/memory.py, docs/pods.md).")
    return "\n".join(lines)
