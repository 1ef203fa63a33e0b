"""Two runs on the same posts of one human split: which posts both scored, their labels against the current human
labels, and the paired statistics (core.evaluate.paired). `bizsent compare` and the console's Eval screen ask this.

The posts of a split:
- test: the current human test labels (unsure ones left out, as the report and the bundle's test split do).
- dev: the posts in the dev split of each run's bundle, with their current human label. Dev is drawn by a
  fixed hash of the repost group (core.model.dataset), so the bundles of two runs hold the same dev posts
  except the ones labelled in between; only posts in both count.
Only posts that both runs have a stored prediction for are compared (`bizsent eval RUN`, `--test` for test);
the posts that only one run scored are counted and left out, so the difference is never between two post sets.
Reading predictions scores nothing, so a comparison on test does not count as a new look at the test set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import sqlite_utils
from bizsent.core.errors import BizsentError
from bizsent.core.evaluate.paired import N_BOOT, PairedStats, paired_stats
from bizsent.core.store.posts import human_test

COMPARE_SPLITS = ("dev", "test")


@dataclass(frozen=True, slots=True)
class RunRef:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class PostPair:
    post_id: int
    truth: str
    label_a: str
    label_b: str


@dataclass(frozen=True, slots=True)
class Comparison:
    split: str
    run_a: RunRef
    run_b: RunRef
    posts: list[PostPair]  # post id order
    only_a: int  # posts of the split that only run A has a prediction for
    only_b: int
    stats: PairedStats

    @property
    def disagreements(self) -> list[PostPair]:
        return [self.posts[k] for k in self.stats.disagree]

    def to_dict(self) -> dict:
        s = self.stats
        return {
            "split": self.split, "n": s.n, "run_a": asdict(self.run_a), "run_b": asdict(self.run_b),
            "only_a": self.only_a, "only_b": self.only_b,
            "accuracy": asdict(s.accuracy), "macro_f1": asdict(s.macro_f1), "mcnemar": asdict(s.mcnemar),
            "confusion_a": s.confusion_a, "confusion_b": s.confusion_b,
            "bootstrap": {"draws": s.n_boot, "seed": s.seed, "paired": True},
            "disagreements": [asdict(p) for p in self.disagreements],
        }


def _run(db: sqlite_utils.Database, run: int | str) -> tuple[RunRef, dict]:
    from bizsent.core.model.loading import run_row

    row = run_row(db, run)
    return RunRef(row["id"], row["name"]), row["params"]


def _dev_posts(run: RunRef, params: dict) -> set[int]:
    from bizsent.core.model.dataset import read_split

    bundle = params.get("bundle")
    if not bundle or not (Path(bundle) / "dev.jsonl").exists():
        raise BizsentError(f"run {run.id}'s dataset bundle {bundle or '(none)'} has no dev split on this machine; "
                           "compare on the test split with --split test")
    return {row["post_id"] for row in read_split(Path(bundle), "dev")}


def unknown_split(split: str) -> BizsentError:
    why = (" (training's val split keeps no predictions; dev is the human split `bizsent eval RUN` scores for "
           "model choice)" if split == "val" else "")
    return BizsentError(f"unknown split {split!r}; compare on one of {', '.join(COMPARE_SPLITS)}{why}")


def split_truth(db: sqlite_utils.Database, split: str, runs: list[tuple[RunRef, dict]]) -> dict[int, str]:
    """Post id -> current human label, for the posts of `split` (see the module docstring)."""
    if split == "test":
        where, args = f"{human_test()} AND NOT unsure", []
    elif split == "dev":
        posts = set.intersection(*(_dev_posts(run, params) for run, params in runs))
        where = (f"source = 'human' AND split != 'test' AND NOT unsure"
                 f" AND post_id IN ({', '.join('?' * len(posts))})")
        args = sorted(posts)
    else:
        raise unknown_split(split)
    return dict(db.execute(f"SELECT post_id, label FROM labels WHERE {where}", args).fetchall())


def _predictions(db: sqlite_utils.Database, run_id: int) -> dict[int, str]:
    return dict(db.execute("SELECT post_id, label FROM predictions WHERE run_id = ?", [run_id]).fetchall())


def compare_runs(db: sqlite_utils.Database, run_a: int | str, run_b: int | str, split: str = "dev", *,
                 n_boot: int = N_BOOT, seed: int = 0) -> Comparison:
    """Run A against run B on the posts of `split` both have a prediction for."""
    if split not in COMPARE_SPLITS:
        raise unknown_split(split)
    a, b = _run(db, run_a), _run(db, run_b)
    if a[0].id == b[0].id:
        raise BizsentError(f"both runs are run {a[0].id}; pick two different runs")
    truth = split_truth(db, split, [a, b])
    pa, pb = _predictions(db, a[0].id), _predictions(db, b[0].id)
    both = sorted(pid for pid in truth if pid in pa and pid in pb)
    if not both:
        flag = " --test" if split == "test" else ""
        raise BizsentError(f"runs {a[0].id} and {b[0].id} have no {split} post scored by both; score each with "
                           f"`bizsent eval RUN{flag}` first")
    posts = [PostPair(pid, truth[pid], pa[pid], pb[pid]) for pid in both]
    stats = paired_stats([p.truth for p in posts], [p.label_a for p in posts], [p.label_b for p in posts],
                         n_boot=n_boot, seed=seed)
    only_a = sum(pid in pa and pid not in pb for pid in truth)
    only_b = sum(pid in pb and pid not in pa for pid in truth)
    return Comparison(split, a[0], b[0], posts, only_a, only_b, stats)
