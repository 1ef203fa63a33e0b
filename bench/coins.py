"""Coin extraction (core.coins) against the hand-labelled posts in bench/coin_posts.tsv.

Counts (post, coin) pairs: a true positive is a coin the label lists and the extractor found. Prints the
precision and recall of each rule family, the misses and false finds, then as the last line one JSON object
with `precision`, `recall`, `f1`, `posts` and `pairs`.
Run: .venv/bin/python bench/coins.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]
DATA = ROOT / "bench" / "coin_posts.tsv"


def labelled(path: Path = DATA) -> list[tuple[set[str], str]]:
    """(coins, text) per post of the labelled file."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        coins, text = line.split("\t", 1)
        out.append((set() if coins == "-" else set(coins.split(",")), text.replace("\\n", "\n")))
    return out


def score(posts: list[tuple[set[str], str]]) -> dict:
    from bizsent.core.coins import catalog
    from bizsent.core.coins.extract import mentions
    from bizsent.core.config import CoinsSettings

    cat = catalog(CoinsSettings())
    tp = fp = fn = 0
    by_rule: dict[str, list[int]] = {}
    errors = []
    for gold, text in posts:
        found = {m.coin: m.how for m in mentions(text, cat)}
        for coin, how in found.items():
            hit = coin in gold
            by_rule.setdefault(how, [0, 0])[0 if hit else 1] += 1
            tp, fp = tp + hit, fp + (not hit)
            if not hit:
                errors.append(f"false {coin} ({how}): {text!r}")
        for coin in gold - found.keys():
            fn += 1
            errors.append(f"missed {coin}: {text!r}")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "posts": len(posts), "pairs": tp + fn,
            "by_rule": by_rule, "errors": errors}


def main() -> None:
    result = score(labelled())
    print(f"{'rule':<10} {'right':>6} {'wrong':>6}")
    for how, (right, wrong) in sorted(result["by_rule"].items()):
        print(f"{how:<10} {right:>6} {wrong:>6}")
    print()
    for line in result["errors"]:
        print(line)
    print()
    print(f"{result['posts']} posts, {result['pairs']} labelled mentions: precision {result['precision']:.3f}, "
          f"recall {result['recall']:.3f}, F1 {result['f1']:.3f}")
    print(json.dumps({k: round(result[k], 4) if isinstance(result[k], float) else result[k]
                      for k in ("precision", "recall", "f1", "posts", "pairs")}))


if __name__ == "__main__":
    main()
