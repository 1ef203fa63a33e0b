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
REPEATS = 3
TRAIN_STEPS = int(__import__("os").environ.get("STEPS", 40))
LEARNING_RATE = float(__import__("os").environ.get("LR", 1e-2))
TARGETS = __import__("os").environ.get("TARGETS", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj").split(",")


def fine_tuned_tiny(base: Path):
    """The tiny model after TRAIN_STEPS LoRA steps on the demo store, merged, with its processor."""
    from tiny_qwen import PIXELS, build_tiny_qwen

    from core.config import TrainSettings
    from core.dataset import build_dataset, export_bundle
    from core.demo import seed_demo
    from core.modeling import load_model, load_processor
    from core.store import open_db
    from core.training import train

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

    from core.dataset import read_split
    from core.scoring import generate_and_parse, label_token_counts, score
    from core.training import score_inputs

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model, processor, bundle = fine_tuned_tiny(Path(tmp))
        rows = [r for split in ("test", "val", "train") for r in read_split(bundle, split)][:N_POSTS]
        items = score_inputs(bundle, rows)
        counts = label_token_counts(processor.tokenizer)
        budget = max(counts.values())
        score(model, processor, items[:BATCH], batch_size=BATCH)  # warm-up
        generate_and_parse(model, processor, items[:BATCH], batch_size=BATCH, max_new_tokens=budget)
        t_score, t_gen = [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            scored = score(model, processor, items, batch_size=BATCH)
            t_score.append(time.perf_counter() - started)
            started = time.perf_counter()
            parsed = generate_and_parse(model, processor, items, batch_size=BATCH, max_new_tokens=budget)
            t_gen.append(time.perf_counter() - started)
    n = len(items)
    rate_score, rate_gen = n / min(t_score), n / min(t_gen)
    agreement = sum(s.label == g for s, g in zip(scored, parsed, strict=True)) / n
    valid = sum(g is not None for g in parsed) / n
    truth = sum(s.label == r["label"] for s, r in zip(scored, rows, strict=True)) / n
    pieces = ", ".join(f"{word} {k}" for word, k in counts.items())
    print(f"{n} posts, batch {BATCH}, best of {REPEATS}, CPU; label tokens: {pieces}; generation capped at {budget}")
    print(f"{'path':<28}{'posts/s':>10}")
    print(f"{'label-token scoring':<28}{rate_score:>10.1f}")
    print(f"{'generate-and-parse':<28}{rate_gen:>10.1f}")
    print(f"speedup {rate_score / rate_gen:.2f}x; the two paths agree on {100 * agreement:.1f}% of posts; "
          f"generation gave a valid label for {100 * valid:.1f}%; scoring matches the dataset label for "
          f"{100 * truth:.1f}% (tiny model, {TRAIN_STEPS} steps)")
    print(json.dumps({"speedup": round(rate_score / rate_gen, 3), "agreement": round(agreement, 4)}))


if __name__ == "__main__":
    main()
