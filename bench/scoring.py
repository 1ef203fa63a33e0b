"""Label-token scoring versus generate-and-parse on the tiny Qwen2.5-VL (CPU), same inputs, same batching.

The tiny model is first fine-tuned for a few dozen LoRA steps on the demo store (the project's own dataset and
training code), so generation really writes label words and agreement between the two paths is measured, not
forced. Its tokenizer splits the labels as Qwen2.5's does ("bear"+"ish", "neutral", "bull"+"ish"), so
generate-and-parse needs up to two new tokens; generation is capped at exactly that (the longest label, the least
budget that never cuts an answer off) and stops early when every row has ended its turn: an honest baseline.
Prints a table, then as the last line one JSON object with `speedup` and `agreement`.
Run: .venv/bin/python bench/scoring.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

N_POSTS = 96
BATCH = 16
REPEATS = 5
TRAIN_STEPS = 40
# A randomly initialised model needs more than q/v adapters and the 7B's learning rate to learn to answer in 40
# steps: LoRA on every linear layer of the language model, at a high rate.
LEARNING_RATE = 1e-2
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def fine_tuned_tiny(base: Path):
    """The tiny model after TRAIN_STEPS LoRA steps on the demo store, merged, with its processor."""
    from bizsent.core.config import TrainSettings
    from bizsent.core.demo import seed_demo
    from bizsent.core.demo.model import PIXELS, build_tiny_qwen
    from bizsent.core.model.dataset import build_dataset, export_bundle
    from bizsent.core.model.modeling import load_model, load_processor
    from bizsent.core.model.training import train
    from bizsent.core.store import open_db

    model_dir = build_tiny_qwen(base / "model")
    db = open_db(base / "demo.db")
    seed_demo(db, base / "images")
    cfg = TrainSettings(base_model=str(model_dir), max_pixels=PIXELS, batch_size=8, grad_accum=1,
                        learning_rate=LEARNING_RATE, target_modules=TARGETS, val_fraction=0.1, seed=0)
    bundle = export_bundle(build_dataset(db, base / "images", cfg), base / "bundle", max_pixels=PIXELS)
    db.close()
    started = time.perf_counter()
    result = train(bundle, base / "run", cfg, max_steps=TRAIN_STEPS, load_in_4bit=False, eval_steps=TRAIN_STEPS)
    print(f"fine-tuned the tiny model: {result.steps} LoRA steps in {time.perf_counter() - started:.0f}s, "
          f"train loss {result.train_loss:.3f}")
    model = load_model(model_dir, load_in_4bit=False, adapter=result.adapter_dir).merge_and_unload()
    return model, load_processor(model_dir, PIXELS), bundle


def main() -> None:
    import torch
    from bizsent.core.model.dataset import read_split
    from bizsent.core.model.scoring import generate_and_parse, label_token_counts, score
    from bizsent.core.model.training import score_inputs

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model, processor, bundle = fine_tuned_tiny(Path(tmp))
        rows = [r for split in ("test", "val", "train") for r in read_split(bundle, split)][:N_POSTS]
        items = score_inputs(bundle, rows)
        counts = label_token_counts(processor.tokenizer)
        budget = max(counts.values())
        paths = {
            "label-token scoring": lambda: [s.label for s in score(model, processor, items, batch_size=BATCH)],
            f"generate-and-parse, {budget} tokens": lambda: generate_and_parse(
                model, processor, items, batch_size=BATCH, max_new_tokens=budget),
            f"  same, {budget + 1} (to end of turn)": lambda: generate_and_parse(
                model, processor, items, batch_size=BATCH, max_new_tokens=budget + 1),
        }
        for run in paths.values():
            run()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in paths}
        labels: dict[str, list] = {}
        for _ in range(REPEATS):  # interleaved, so a slow moment of the machine hits every path alike
            for name, run in paths.items():
                started = time.perf_counter()
                labels[name] = run()
                times[name].append(time.perf_counter() - started)
    n = len(items)
    rates = {name: n / min(t) for name, t in times.items()}
    scored, parsed = labels["label-token scoring"], labels[f"generate-and-parse, {budget} tokens"]
    speedup = rates["label-token scoring"] / rates[f"generate-and-parse, {budget} tokens"]
    agreement = sum(s == g for s, g in zip(scored, parsed, strict=True)) / n
    valid = sum(g is not None for g in parsed) / n
    truth = sum(s == r["label"] for s, r in zip(scored, rows, strict=True)) / n
    pieces = ", ".join(f"{word} {k}" for word, k in counts.items())
    print(f"{n} posts, batch {BATCH}, best of {REPEATS}, CPU; tokens per label: {pieces}")
    print(f"{'path':<38}{'posts/s':>10}{'vs scoring':>12}")
    for name, rate in rates.items():
        print(f"{name:<38}{rate:>10.1f}{rates['label-token scoring'] / rate:>11.2f}x")
    print(f"speedup {speedup:.2f}x; the two paths agree on {100 * agreement:.1f}% of posts; generation gave a "
          f"valid label for {100 * valid:.1f}%; scoring matches the dataset label for {100 * truth:.1f}% "
          f"(tiny model after {TRAIN_STEPS} steps)")
    print(json.dumps({"speedup": round(speedup, 3), "agreement": round(agreement, 4)}))

if __name__ == "__main__":
    main()
