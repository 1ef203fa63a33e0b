"""How far to trust each labeler: scores against the human test set, agreement between labelers, and the
combination of several labelers' votes into one training label (Dawid-Skene or majority vote).

Human test-set labels are only ever the reference here: combined labels are written for posts outside the
human test set, so a test post can never become training data.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import sqlite_utils
from bizsent.core.evaluate.metrics import confusion_matrix, from_confusion
from bizsent.core.labels import COMBINED_SOURCE, LABELS, combined_labeler, labeler_name
from bizsent.core.store import transaction
from bizsent.core.store.posts import HUMAN_TEST, set_label
from bizsent.core.store.records import NewLabel


@dataclass(frozen=True, slots=True)
class Scores:
    n: int
    accuracy: float
    macro_f1: float
    kappa: float
    recall: dict[str, float]
    confusion: list[list[int]]  # rows: human label, columns: labeler's label, in LABELS order


def scores(pairs: list[tuple[str, str]]) -> Scores:
    """(reference, predicted) pairs -> accuracy, macro-F1, per-class recall, Cohen's kappa, confusion."""
    confusion = confusion_matrix([t for t, _ in pairs], [g for _, g in pairs])
    base = from_confusion(confusion)
    n = base.n
    expected = float((confusion.sum(axis=1) * confusion.sum(axis=0)).sum()) / (n * n) if n else 0.0
    kappa = (base.accuracy - expected) / (1 - expected) if n and expected < 1 else (1.0 if n else 0.0)
    return Scores(n, base.accuracy, base.macro_f1, kappa, {k: c.recall for k, c in base.per_class.items()},
                  base.confusion)


def _votes(db: sqlite_utils.Database) -> dict[tuple[str, str], dict[int, str]]:
    out: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for post, label, source, labeler in db.execute(
            "SELECT post_id, label, source, labeler FROM labels WHERE source NOT IN ('human', ?)", [COMBINED_SOURCE]):
        out[(source, labeler)][post] = label
    return out


def _human_test(db: sqlite_utils.Database) -> dict[int, tuple[str, bool]]:
    return {post: (label, bool(sarcastic)) for post, label, sarcastic in db.execute(
        f"SELECT post_id, label, sarcastic FROM labels WHERE {HUMAN_TEST}")}


@dataclass(slots=True)
class Table:
    against_human: list[dict[str, Any]] = field(default_factory=list)
    pairwise: list[dict[str, Any]] = field(default_factory=list)


def agreement(db: sqlite_utils.Database) -> Table:
    """Every labeler (source + labeler name) against the human test set, and every pair with each other."""
    human = _human_test(db)
    votes = _votes(db)
    table = Table()
    for (source, name), labels in sorted(votes.items()):
        pairs = [(human[p][0], label) for p, label in labels.items() if p in human]
        sarcastic = [(human[p][0], label) for p, label in labels.items() if p in human and human[p][1]]
        s, sarc = scores(pairs), scores(sarcastic)
        table.against_human.append({"source": source, "labeler": name, "n": s.n, "accuracy": s.accuracy,
                                    "macro_f1": s.macro_f1, "kappa": s.kappa, "recall": s.recall,
                                    "confusion": s.confusion, "sarcastic_n": sarc.n,
                                    "sarcastic_accuracy": sarc.accuracy})
    for a, b in combinations(sorted(votes), 2):
        common = [(votes[a][p], votes[b][p]) for p in votes[a].keys() & votes[b].keys()]
        s = scores(common)
        table.pairwise.append({"a": labeler_name(*a), "b": labeler_name(*b), "n": s.n, "agreement": s.accuracy,
                               "kappa": s.kappa})
    return table


def render_agreement(db: sqlite_utils.Database) -> str:
    table = agreement(db)
    if not table.against_human:
        return "no API labels yet; run `bizsent label` first"
    out = [f"against the human test set ({len(_human_test(db))} posts):",
           f"  {'labeler':<40} {'n':>5} {'acc':>6} {'F1':>6} {'kappa':>6}  recall bear/neut/bull  sarcastic n/acc"]
    for r in table.against_human:
        rec = "/".join(f"{r['recall'][label]:.2f}" for label in LABELS)
        out.append(f"  {labeler_name(r['source'], r['labeler'])[:40]:<40} {r['n']:>5} {r['accuracy']:>6.3f}"
                   f" {r['macro_f1']:>6.3f} {r['kappa']:>6.3f}  {rec:<21}"
                   f"  {r['sarcastic_n']}/{r['sarcastic_accuracy']:.2f}")
    for r in table.against_human:
        name = labeler_name(r["source"], r["labeler"])
        out.append(f"\nconfusion {name} (rows human, columns labeler: bear neut bull)")
        for label, row in zip(LABELS, r["confusion"], strict=True):
            out.append(f"  {label:<8} " + " ".join(f"{v:>5}" for v in row))
    if table.pairwise:
        out.append("\nlabelers with each other:")
        for r in table.pairwise:
            out.append(f"  {r['a'][:36]:<36} vs {r['b'][:36]:<36} n={r['n']:<5} agree={r['agreement']:.3f}"
                       f" kappa={r['kappa']:.3f}")
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Combined:
    method: str
    posts: int
    labelers: int

    def summary(self) -> str:
        return (f"combined {self.labelers} labelers with {self.method} into {self.posts} training labels"
                f" (source {COMBINED_SOURCE}, labeler {combined_labeler(self.method)}); human test posts excluded")


def combine_labels(db: sqlite_utils.Database, method: str = "dawid-skene") -> Combined:
    """One label per non-test post from all API labelers' votes, with its confidence, stored for training."""
    if method not in ("dawid-skene", "majority"):
        from bizsent.core.errors import BizsentError

        raise BizsentError(f"unknown combination {method!r}; use dawid-skene or majority")
    test_posts = set(_human_test(db))
    votes = _votes(db)
    rows = [(post, labeler_name(src, name), label) for (src, name), labels in votes.items()
            for post, label in labels.items() if post not in test_posts]
    if not rows:
        return Combined(method, 0, len(votes))
    if method == "majority":
        by_post: dict[int, Counter[str]] = defaultdict(Counter)
        for post, _, label in rows:
            by_post[post][label] += 1
        result = {post: (c.most_common(1)[0][0], c.most_common(1)[0][1] / sum(c.values()))
                  for post, c in by_post.items()}
    else:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene

        frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
        probas = DawidSkene(n_iter=100).fit(frame).probas_
        result = {int(post): (str(row.idxmax()), float(row.max())) for post, row in probas.iterrows()}
    with transaction(db):
        for post, (label, confidence) in result.items():
            set_label(db, post, NewLabel(label=label, source=COMBINED_SOURCE, labeler=combined_labeler(method),
                                         confidence=round(confidence, 4), split="unassigned"))
    return Combined(method, len(result), len(votes))
