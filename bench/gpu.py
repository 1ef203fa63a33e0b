"""GPU check (issue 20): the engine's own training and scoring code on CUDA, with no network.

1. The tiny Qwen2.5-VL (core/demo/model.py) on the demo store's bundle: QLoRA training (4-bit NF4, bf16 on
   CUDA), then scoring with the trained model as training leaves it, outside any autocast (prepare_kbit keeps
   2-D weights in bf16 and norms in fp32; a plain forward once failed with "self and mat2 must have the same
   dtype"), then the adapter loaded back as `bizsent eval` loads it.
2. A model of Qwen2.5-VL-7B-Instruct's exact shape (bench/qwen25_vl_7b_config.json) with random weights, built
   on the GPU and saved, then trained for a few steps in the 7B recipe (config.TrainSettings' defaults: 4-bit,
   LoRA r=16 alpha=32 on q/v and the tower, gradient checkpointing) by core.model.training.train on exactly the
   typical and the longest batch of a bundle (core.model.batches picks them, as `train --dry-run` does), and one
   pool-scoring batch (embeddings kept). Peak GPU memory is printed next to core.model.memory's estimate for
   the same batch shapes, with seconds per training example and scoring posts per second.
The 7B-shaped model uses the tiny model's tokenizer (the real one is a download): token counts come from it, and
both the training and the estimate use those same counts. Token ids are the tokenizer's; every shape is the 7B's.

Without CUDA it says so, runs part 1 on the CPU (4-bit via bitsandbytes' CPU path; the dtype mix of part 1 is
reproduced by a bf16 copy of the tiny model) and prints part 2's estimates with the measured columns empty.

NOT YET RUN ON A GPU: the CUDA path was written from the code paths (transformers 5.24 from_pretrained with
BitsAndBytesConfig and device_map, bitsandbytes 0.50 Linear4bit, peft 0.21 get_peft_model, TRL's SFTTrainer in
core.model.training) and has only run in its CPU mode so far. Target: under 8 minutes on one H100 or H200.
Run: .venv/bin/python bench/gpu.py [--bundle DIR] [--steps N]
Prints a table, then as the last line one JSON object (keys: see `KEYS`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the table is the output, not loading bars

CONFIG_7B = Path(__file__).with_name("qwen25_vl_7b_config.json")
TINY_STEPS = 6
BIG_STEPS = 4  # the first step warms up; seconds per example are the median of the others
SCORE_REPEATS = 3
TINY_SCORE_POSTS = 32  # validation and test posts the tiny model scores (each path: a warm-up pass, then timed)
GIB = 1024**3
PARTS = ("train_typical", "train_longest", "pool_scoring")
KEYS = ("mode", "device", "cuda_skipped", "tiny_train_s_per_example", "tiny_score_posts_per_s",
        "tiny_scored_outside_autocast", "tiny_val_accuracy", "seconds",
        *(f"{part}_{what}" for part in PARTS
          for what in ("rows", "tokens", "peak_allocated_gib", "peak_reserved_gib", "estimate_gib")),
        "train_typical_s_per_example", "train_longest_s_per_example", "pool_scoring_posts_per_s")


@contextmanager
def stage(spent: dict[str, float], name: str) -> Iterator[None]:
    """Time a stage into `spent` and say so on stderr when it ends: a first GPU run shows where its minutes go."""
    started = time.perf_counter()
    yield
    spent[name] = time.perf_counter() - started
    print(f"[{name}: {spent[name]:.0f} s]", file=sys.stderr, flush=True)


def demo_bundle(work: Path, max_pixels: int, name: str) -> Path:
    """The demo store's bundle at `max_pixels` (the store is seeded once per work folder)."""
    from bizsent.core.config import TrainSettings
    from bizsent.core.demo import seed_demo
    from bizsent.core.model.dataset import build_dataset, export_bundle
    from bizsent.core.store import open_db

    db = open_db(work / "demo.db")
    try:
        seed_demo(db, work / "images")
        cfg = TrainSettings(base_model="unused", max_pixels=max_pixels, seed=0)
        return export_bundle(build_dataset(db, work / "images", cfg), work / name, max_pixels=max_pixels)
    finally:
        db.close()


def timed_score(model, processor, items, batch_size: int, *, embeddings: bool = False, repeats: int = 1):
    """(scored, posts per second: the best of `repeats` passes after one warm-up pass)."""
    from bizsent.core.model.scoring import score

    scored = score(model, processor, items, batch_size=batch_size, embeddings=embeddings)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        scored = score(model, processor, items, batch_size=batch_size, embeddings=embeddings)
        _sync()
        rates.append(len(items) / (time.perf_counter() - started))
    return scored, max(rates)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def dtype_mix_cpu(model_dir: Path, pixels: int, items) -> bool:
    """The dtype mix CUDA training leaves (bf16 weights, fp32 norms) on the CPU: a bf16 copy readied for 4-bit
    training, scored with no autocast around it. True when it scores."""
    import torch
    from bizsent.core.config import TrainSettings
    from bizsent.core.model.modeling import load_processor
    from bizsent.core.model.scoring import score
    from bizsent.core.model.training import prepare_lora
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.bfloat16)
    model = prepare_lora(model, TrainSettings(base_model=str(model_dir), max_pixels=pixels), quantized=True)
    mixed = {p.dtype for p in model.parameters()} >= {torch.bfloat16, torch.float32}
    return mixed and len(score(model, load_processor(model_dir, pixels), items, batch_size=4)) == len(items)


def tiny_check(work: Path, cuda: bool, steps: int, model_dir: Path | None = None) -> dict:
    """Part 1: train the tiny model, score with the trained model outside autocast, score the loaded adapter."""
    import torch
    from bizsent.core.config import TrainSettings
    from bizsent.core.demo.model import PIXELS, build_tiny_qwen
    from bizsent.core.model.dataset import read_split
    from bizsent.core.model.modeling import free_memory, load_model, load_processor
    from bizsent.core.model.training import score_inputs, train

    model_dir = model_dir or build_tiny_qwen(work / "tiny")
    bundle = demo_bundle(work, PIXELS, "tiny-bundle")
    cfg = TrainSettings(base_model=str(model_dir), max_pixels=PIXELS, batch_size=8, grad_accum=1,
                        learning_rate=2e-3, seed=0)
    events = []
    result = train(bundle, work / "tiny-run", cfg, events=events.append, max_steps=steps, load_in_4bit=True,
                   eval_steps=steps, keep_model=True, resume=False)
    items = score_inputs(bundle, (read_split(bundle, "val") + read_split(bundle, "test"))[:TINY_SCORE_POSTS])
    processor = load_processor(model_dir, PIXELS)
    if cuda:  # the model as training leaves it (4-bit, bf16, fp32 norms), with no autocast around the call
        mixed = {p.dtype for p in result.model.parameters()} >= {torch.bfloat16, torch.float32}
        outside = mixed and len(timed_score(result.model, processor, items, 8)[0]) == len(items)
    else:
        outside = dtype_mix_cpu(model_dir, PIXELS, items[:8])
    del result.model
    free_memory()
    model = load_model(model_dir, load_in_4bit=True, adapter=result.adapter_dir)
    _, rate = timed_score(model, processor, items, 8)
    val = next((e for e in reversed(events) if e.kind == "eval"), None)
    return {"tiny_train_s_per_example": result.seconds / (result.steps * cfg.batch_size),
            "tiny_score_posts_per_s": rate, "tiny_scored_outside_autocast": outside,
            "tiny_val_accuracy": val.accuracy if val else None}


TEXT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "max_position_embeddings", "max_window_layers", "rms_norm_eps", "hidden_act",
             "sliding_window", "use_sliding_window")


def shape_config(tokenizer):
    """Qwen2.5-VL-7B-Instruct's config (every shape value from CONFIG_7B) with `tokenizer`'s special token ids."""
    from bizsent.core.demo.model import SPECIAL_TOKENS
    from transformers import Qwen2_5_VLConfig

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    raw = json.loads(CONFIG_7B.read_text(encoding="utf-8"))
    text = {key: raw[key] for key in TEXT_KEYS}
    text.update(rope_parameters={"rope_type": "default", "rope_theta": raw["rope_theta"],
                                 "mrope_section": raw["rope_scaling"]["mrope_section"]},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    # in_chans / spatial_patch_size: older spellings transformers 5 no longer reads (3 channels, patch_size)
    vision = {k: v for k, v in raw["vision_config"].items() if k not in ("in_chans", "spatial_patch_size")}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=raw["tie_word_embeddings"],
                            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])


def shape_folder(work: Path, weights: bool) -> Path:
    """A folder that loads like the 7B checkpoint: its config, the tiny tokenizer and processor, and with
    `weights` random bf16 weights (initialised on the GPU: seconds, where the CPU takes minutes)."""
    import torch
    from bizsent.core.demo.model import build_processor, build_tokenizer
    from bizsent.core.model.modeling import free_memory
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = work / "qwen7b-shape"
    tokenizer = build_tokenizer()
    config = shape_config(tokenizer)
    build_processor(tokenizer).save_pretrained(folder)
    if not weights:
        config.save_pretrained(folder)
        return folder
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.save_pretrained(folder, max_shard_size="5GB")
    del model
    free_memory()
    return folder


def mini_bundle(bundle: Path, rows: list[dict], dest: Path) -> Path:
    """A bundle whose training split is exactly `rows` (so every step trains on that batch), no validation."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (dest / "val.jsonl").write_text("", encoding="utf-8")
    shutil.copy(bundle / "manifest.json", dest / "manifest.json")
    if not (dest / "images").exists():
        (dest / "images").symlink_to((bundle / "images").resolve(), target_is_directory=True)
    return dest


def chosen_batches(folder: Path, bundle: Path, cfg) -> tuple[dict, str]:
    """{part: (rows, BatchShape)} for the typical and longest training batch and the scoring batch (the longest
    batch's posts), picked as `train --dry-run` picks them; and how text tokens were counted."""
    from dataclasses import replace

    from bizsent.core.model.batches import bundle_lengths, text_counter, typical_and_longest, typical_and_longest_posts
    from bizsent.core.model.dataset import read_split
    from bizsent.core.model.memory import shape_from_config

    count, how = text_counter(str(folder))
    shape = shape_from_config(folder)
    rows = read_split(bundle, "train")
    lengths = bundle_lengths(bundle, cfg.max_pixels, count, shape)
    typical, longest = typical_and_longest_posts(lengths, cfg.batch_size, cfg.seed)
    t_shape, l_shape = typical_and_longest(lengths, cfg.batch_size, cfg.seed)
    return {"train_typical": ([rows[k] for k in typical], t_shape),
            "train_longest": ([rows[k] for k in longest], l_shape),
            "pool_scoring": ([rows[k] for k in longest], replace(l_shape, what="scoring batch"))}, how


def estimates(cfg, folder: Path, batches: dict) -> dict[str, float]:
    """core.model.memory's estimate (GiB) of each part, for the batch shapes the bench runs."""
    from bizsent.core.model.memory import estimate_scoring_memory, estimate_training_memory, shape_from_config

    shape = shape_from_config(folder)
    out = {part: estimate_training_memory(cfg, shape, batch=batches[part][1]).total / GIB
           for part in ("train_typical", "train_longest")}
    out["pool_scoring"] = estimate_scoring_memory(cfg, shape, batch=batches["pool_scoring"][1]).total / GIB
    return out


def step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of every optimiser step, the GPU's queue drained at both ends."""

        def __init__(self):
            self.times: list[float] = []
            self.started = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            _sync()
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _sync()
            self.times.append(time.perf_counter() - self.started)

    return StepTimer()


def peaks(part: str) -> dict[str, float]:
    """Peak memory since the last reset: what tensors held, and what the caching allocator took from the GPU
    (allocated plus fragmentation; the estimate's CUDA context, about 1 GiB, is in neither)."""
    import torch

    return {f"{part}_peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
            f"{part}_peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB}


def measure_cuda(work: Path, folder: Path, bundle: Path, cfg, batches: dict, steps: int,
                 spent: dict[str, float]) -> dict:
    """Train on the typical and the longest batch, then score the pool batch: peak memory and speed of each."""
    import torch
    from bizsent.core.model.modeling import free_memory, load_model, load_processor
    from bizsent.core.model.training import score_inputs, train

    out: dict = {}
    adapter = None
    for part in ("train_typical", "train_longest"):
        mini = mini_bundle(bundle, batches[part][0], work / f"{part}-bundle")
        timer = step_timer()
        torch.cuda.reset_peak_memory_stats()
        with stage(spent, f"{part}: load + {steps} steps"):
            result = train(mini, work / f"{part}-run", cfg, max_steps=steps, callbacks=[timer], resume=False)
        out.update(peaks(part))
        out[f"{part}_s_per_example"] = statistics.median(timer.times[1:] or timer.times) / cfg.batch_size
        adapter = adapter or result.adapter_dir
        free_memory()
    rows = batches["pool_scoring"][0]
    torch.cuda.reset_peak_memory_stats()
    with stage(spent, "pool_scoring: load + score"):
        model = load_model(folder, load_in_4bit=True, adapter=adapter, quantize_vision=cfg.quantize_vision)
        items = score_inputs(work / "train_longest-bundle", rows)
        _, rate = timed_score(model, load_processor(folder, cfg.max_pixels), items, cfg.batch_size,
                              embeddings=True, repeats=SCORE_REPEATS)
    out.update(peaks("pool_scoring"))
    out["pool_scoring_posts_per_s"] = rate
    del model
    free_memory()
    return out


def big_check(work: Path, cuda: bool, steps: int, spent: dict[str, float],
              bundle: Path | None = None) -> tuple[dict, list[str]]:
    """Part 2: the 7B-shaped model's batches, the estimate for each, and on CUDA the measurements."""
    from bizsent.core.config import TrainSettings

    with stage(spent, "7B-shaped checkpoint" + (" built and saved" if cuda else " config (no weights)")):
        folder = shape_folder(work, weights=cuda)
    cfg = TrainSettings(base_model=str(folder), grad_accum=1, seed=0, require_cuda=cuda)  # the 7B recipe
    bundle = Path(bundle) if bundle else demo_bundle(work, cfg.max_pixels, "bundle")
    batches, how = chosen_batches(folder, bundle, cfg)
    out: dict = {}
    for part, (_, shape) in batches.items():
        out.update({f"{part}_rows": shape.rows, f"{part}_tokens": shape.seq, f"{part}_peak_allocated_gib": None,
                    f"{part}_peak_reserved_gib": None})
    out.update({f"{part}_estimate_gib": gib for part, gib in estimates(cfg, folder, batches).items()})
    out.update(train_typical_s_per_example=None, train_longest_s_per_example=None, pool_scoring_posts_per_s=None)
    if cuda:
        out.update(measure_cuda(work, folder, bundle, cfg, batches, steps, spent))
    return out, [f"bundle {bundle}: {how}", f"7B recipe: LoRA r={cfg.lora_r} alpha={cfg.lora_alpha} on "
                 f"{cfg.target_modules + cfg.vision_target_modules}, 4-bit={cfg.load_in_4bit}, batch {cfg.batch_size}"]


def run(work: Path, *, bundle: Path | None = None, tiny_steps: int = TINY_STEPS, big_steps: int = BIG_STEPS,
        tiny_model: Path | None = None, cuda: bool | None = None) -> tuple[dict, list[str]]:
    """Both parts in `work`: (the figures under KEYS, notes). `cuda` None: when torch sees a GPU."""
    import torch

    cuda = torch.cuda.is_available() if cuda is None else cuda
    started = time.perf_counter()
    out: dict = {"mode": "cuda" if cuda else "cpu", "device": torch.cuda.get_device_name(0) if cuda else "cpu",
                 "cuda_skipped": not cuda}
    spent: dict[str, float] = {}
    with stage(spent, "tiny model: train + score"):
        out.update(tiny_check(work, cuda, tiny_steps, tiny_model))
    big, notes = big_check(work, cuda, big_steps, spent, bundle)
    out.update(big)
    out["seconds"] = time.perf_counter() - started
    notes.append("seconds: " + ", ".join(f"{name} {s:.0f}" for name, s in spent.items()))
    return {key: out[key] for key in KEYS}, notes


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def report(out: dict, notes: list[str]) -> None:
    """The table, the notes, and last the JSON line."""
    if out["cuda_skipped"]:
        print("NO CUDA: the CUDA parts were SKIPPED (bf16 QLoRA on the GPU, the 7B-shaped model's training and "
              "scoring). The tiny model ran on the CPU; the 7B rows below are estimates only.")
    print(f"device: {out['device']}; {out['seconds']:.0f} s")
    print(f"tiny model: {_cell(out['tiny_train_s_per_example'], '.3f')} s per training example, "
          f"{_cell(out['tiny_score_posts_per_s'], '.1f')} posts/s scored, scored outside autocast with the training "
          f"dtype mix: {'ok' if out['tiny_scored_outside_autocast'] else 'FAILED'}, validation accuracy "
          f"{_cell(out['tiny_val_accuracy'], '.3f')}")
    print(f"{'7B shape':<16}{'rows':>5}{'tokens':>8}{'allocated':>11}{'reserved':>10}{'estimate':>10}"
          f"{'s/example':>11}{'posts/s':>9}   (peak GiB: allocated, reserved; estimate GiB)")
    for part in PARTS:
        print(f"{part:<16}{out[f'{part}_rows']:>5}{out[f'{part}_tokens']:>8}"
              f"{_cell(out[f'{part}_peak_allocated_gib'], '.2f'):>11}"
              f"{_cell(out[f'{part}_peak_reserved_gib'], '.2f'):>10}"
              f"{out[f'{part}_estimate_gib']:>10.2f}{_cell(out.get(f'{part}_s_per_example'), '.3f'):>11}"
              f"{_cell(out.get(f'{part}_posts_per_s'), '.1f'):>9}")
    print("the estimate includes about 1 GiB of CUDA context and 10% fragmentation; allocated includes neither, "
          "reserved the fragmentation")
    for note in notes:
        print(f"note: {note}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="a bundle to pick the 7B batches from (default: the demo's)")
    parser.add_argument("--steps", type=int, default=BIG_STEPS, help="training steps per 7B batch")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one, deleted after)")
    args = parser.parse_args()
    if args.work:
        report(*run(args.work, bundle=args.bundle, big_steps=args.steps))
        return
    with tempfile.TemporaryDirectory() as tmp:
        report(*run(Path(tmp), bundle=args.bundle, big_steps=args.steps))


if __name__ == "__main__":
    main()
