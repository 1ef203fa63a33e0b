"""Train / validation / test sets from the store (the leakage guard applied), and the self-contained bundle a pod
trains from.

- test: human labels on the test split, nothing else. A test label marked unsure is left out (scoring against a
  label its labeller doubted is noise; the manifest counts them), and its post still guards against leakage.
- unsure human train labels train (origin `human-unsure`) but never enter dev or self-training's validation.
- training pool, first that applies: a human label outside the test split; the combined label of
  `bizsent agreement --combine` (core.labels.is_combined), if one API label for its class is at the minimum;
  the majority of the API labels (a tie gives nothing); a self-training pseudo label. Combined, API and pseudo
  labels below train.min_label_confidence are not used (labels without a confidence are kept: older imports
  lack one); a combined label below it drops the post.
- leakage guard (core.model.leakage): a pool post is dropped when its id, its image or its text (exactly or
  nearly) is in the test set; every drop is reported.
- reposts: pool posts that share an image or a text (the leakage guard's rule, core.model.leakage
  .duplicate_groups) form one group, and a group is never split between train, validation and dev.
- dev: the human-labelled groups of the pool that a fixed hash of the group draws (train.dev_fraction): drawn
  once, so a post stays in dev from build to build whatever else is labelled, whatever the seed. Everyday model
  choice is made on dev; the test split is scored on request (core.evaluate.report). A dev group's posts with
  only API or pseudo labels go nowhere: they would be copies of dev posts in train.
- validation: a stratified, seeded fraction of the rest of the pool, by group; optional oversampling of the
  smaller classes in train.
Only candidate posts are used (image ok and text present, core.posts.CANDIDATE_SQL).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlite_utils
from bizsent.core.collect.images import MODEL_JPEG_QUALITY, MODEL_MIN_SIDE, downscaled
from bizsent.core.config import TrainSettings
from bizsent.core.errors import BizsentError
from bizsent.core.labels import (
    API_SOURCE,
    FINETUNE_INSTRUCTION,
    LABELS,
    PROMPT_VERSION,
    RANDOM_SAMPLING,
    RESERVED_SAMPLING,
    Label,
    is_combined,
)
from bizsent.core.model.chat_format import training_messages
from bizsent.core.model.leakage import Candidate, LeakageGuard, candidates, duplicate_groups, fill_phashes

SPLIT_FILES = ("train", "val", "dev", "test")
UNSURE = "human-unsure"  # the origin of an unsure human train label: it trains, it is not held out as truth
DEV_SALT = "bizsent-dev-1"  # the fixed draw of the dev split: changing it redraws dev


@dataclass(slots=True)
class Example:
    post_id: int
    text: str
    label: Label
    image_path: str
    sha256: str
    origin: str  # human | human-unsure | combined | api-majority | pseudo
    subject: str = ""
    sarcastic: bool = False
    confidence: float | None = None
    sampling: str | None = None  # test examples: how the post was chosen (labels.sampling)
    group: int = 0  # the smallest post id of its reposts (core.model.leakage.duplicate_groups)


@dataclass(slots=True)
class Dropped:
    post_id: int
    reason: str  # "test post" | "test image" | "near-duplicate image (test post N)" | "test text (post N)"
    #              | "near-duplicate of test post N" | "repost of dev post N"


@dataclass(slots=True)
class Dataset:
    train: list[Example]
    val: list[Example]
    test: list[Example]
    dropped: list[Dropped] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    dev: list[Example] = field(default_factory=list)


def _labels(db: sqlite_utils.Database) -> dict[int, list[dict]]:
    by_post: dict[int, list[dict]] = defaultdict(list)
    for row in db.execute(
        "SELECT post_id, label, source, labeler, confidence, sarcastic, split, created_at, sampling, unsure"
        " FROM labels ORDER BY id"
    ).fetchall():
        by_post[row[0]].append(dict(zip(
            ("post_id", "label", "source", "labeler", "confidence", "sarcastic", "split", "created_at", "sampling",
             "unsure"),
            row,
            strict=True,
        )))
    return by_post


def _test_label(labels: list[dict]) -> dict | None:
    tests = [lab for lab in labels if lab["source"] == "human" and lab["split"] == "test"]
    return max(tests, key=lambda lab: lab["created_at"]) if tests else None


def _passes(lab: dict, min_conf: float) -> bool:
    return lab["confidence"] is None or lab["confidence"] >= min_conf


def _training_label(labels: list[dict], min_conf: float) -> tuple[Label, str, bool, float | None] | None:
    """(label, origin, sarcastic, confidence) for a pool post, by the priority in the module docstring.

    A combined label, when the post has one, is the verdict on its API votes: below the minimum it drops the
    post rather than falling back to a majority of the same votes it already weighed. It also needs one API
    label for its class at the minimum: a combination weighs labelers, not how sure each was of this post, so
    it cannot make answers the labelers themselves doubted good enough to train on.
    """
    humans = [lab for lab in labels if lab["source"] == "human" and lab["split"] != "test"]
    if humans:
        lab = max(humans, key=lambda h: h["created_at"])
        return lab["label"], UNSURE if lab["unsure"] else "human", bool(lab["sarcastic"]), None
    combined = [lab for lab in labels if is_combined(lab["source"], lab["labeler"])]
    if combined:
        lab = max(combined, key=lambda c: c["created_at"])
        # the combination has no sarcasm flag of its own: the API labelers that gave its label say
        agreeing = [v for v in labels if v["source"] == API_SOURCE and v["label"] == lab["label"]]
        if not _passes(lab, min_conf) or not any(_passes(v, min_conf) for v in agreeing):
            return None
        return lab["label"], "combined", any(bool(v["sarcastic"]) for v in agreeing), lab["confidence"]
    votes = [lab for lab in labels if lab["source"] == API_SOURCE and _passes(lab, min_conf)]
    if votes:
        counts = Counter(lab["label"] for lab in votes).most_common()
        if len(counts) > 1 and counts[0][1] == counts[1][1]:
            return None  # the labelers disagree evenly: no training signal
        winner = counts[0][0]
        agreeing = [lab for lab in votes if lab["label"] == winner]
        confs = [lab["confidence"] for lab in agreeing if lab["confidence"] is not None]
        return (winner, "api-majority", any(lab["sarcastic"] for lab in agreeing),
                sum(confs) / len(confs) if confs else None)
    pseudo = [lab for lab in labels if lab["source"] == "pseudo" and not is_combined(lab["source"], lab["labeler"])]
    if pseudo:
        lab = max(pseudo, key=lambda p: p["created_at"])
        return (lab["label"], "pseudo", False, lab["confidence"]) if _passes(lab, min_conf) else None
    return None


def _example(post: Candidate, label: Label, origin: str, sarcastic: bool, confidence: float | None) -> Example:
    return Example(post.post_id, post.text, label, post.image_path, post.sha256, origin, post.subject, sarcastic,
                   confidence)


def _group_label(members: list[Example]) -> str:
    return Counter(e.label for e in members).most_common(1)[0][0]


def grouped(pool: list[Example]) -> list[list[Example]]:
    """The pool's repost groups (Example.group), each sorted by post id, in order of their first post."""
    groups: dict[int, list[Example]] = defaultdict(list)
    for e in sorted(pool, key=lambda e: e.post_id):
        groups[e.group].append(e)
    return list(groups.values())


def _stratified_split(pool: list[Example], fraction: float, rng: random.Random) -> tuple[list[Example], list[Example]]:
    """About `fraction` of each class to validation, whole repost groups at a time (a group counts for the class
    most of its posts have)."""
    train, val = [], []
    for label in LABELS:
        groups = [g for g in grouped(pool) if _group_label(g) == label]
        rng.shuffle(groups)
        size = sum(len(g) for g in groups)
        target = max(round(size * fraction), 1) if len(groups) > 1 else 0
        taken = 0
        for group in groups:
            (val if taken < target else train).extend(group)
            taken += len(group) if taken < target else 0
    return train, val


def dev_drawn(group: int, fraction: float) -> bool:
    """Is the repost group whose smallest post id is `group` in the dev split? A fixed hash: drawn once."""
    digest = hashlib.sha256(f"{DEV_SALT}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_dev(pool: list[Example], fraction: float) -> tuple[list[Example], list[Example], list[Dropped]]:
    """(dev, the rest, dropped): the human examples of the groups dev draws; their groups' other posts drop."""
    dev, rest, dropped = [], [], []
    for group in grouped(pool):
        if not (dev_drawn(group[0].group, fraction) and any(e.origin == "human" for e in group)):
            rest.extend(group)
            continue
        for e in group:
            if e.origin == "human":
                dev.append(e)
            else:
                dropped.append(Dropped(e.post_id, f"repost of dev post {group[0].group}"))
    return dev, rest, dropped


def _oversample(train: list[Example], rng: random.Random) -> list[Example]:
    groups = {label: [e for e in train if e.label == label] for label in LABELS}
    top = max((len(g) for g in groups.values()), default=0)
    out = list(train)
    for group in groups.values():
        if group:
            out.extend(rng.choice(group) for _ in range(top - len(group)))
    return out


def build_dataset(db: sqlite_utils.Database, image_dir: Path, cfg: TrainSettings, *, balance: bool = False,
                  seed: int | None = None) -> Dataset:
    seed = cfg.seed if seed is None else seed
    posts = candidates(db, image_dir)
    labels = _labels(db)
    test_posts, test, unsure_test = [], [], 0
    for pid, post in posts.items():
        lab = _test_label(labels.get(pid, []))
        if lab:
            test_posts.append(post)
            if lab["unsure"]:
                unsure_test += 1
                continue
            example = _example(post, lab["label"], "human", bool(lab["sarcastic"]), None)
            example.sampling = lab["sampling"]
            test.append(example)
    fill_phashes(db, test_posts)
    guard = LeakageGuard(test_posts)
    chosen_posts = []
    for pid, post in posts.items():
        if pid in guard.ids:
            continue
        chosen = _training_label(labels.get(pid, []), cfg.min_label_confidence)
        if chosen is not None:
            chosen_posts.append((post, chosen))
    fill_phashes(db, [post for post, _ in chosen_posts])  # the test guard and the repost groups compare images
    pool, dropped, kept = [], [], []
    for post, chosen in chosen_posts:
        why = guard.reason(post)
        if why:
            dropped.append(Dropped(post.post_id, why))
            continue
        pool.append(_example(post, *chosen))
        kept.append(post)
    groups = duplicate_groups(kept)
    for e in pool:
        e.group = groups[e.post_id]
    dev, rest, reposts = split_dev(pool, cfg.dev_fraction)
    rng = random.Random(seed)
    train, val = _stratified_split(rest, cfg.val_fraction, rng)
    if balance:
        train = _oversample(train, rng)
    rng.shuffle(train)
    test.sort(key=lambda e: e.post_id)
    dataset = Dataset(train, val, test, dropped + reposts, dev=sorted(dev, key=lambda e: e.post_id))
    dataset.manifest = {**manifest(dataset, cfg, seed=seed, balance=balance), "unsure_test_left_out": unsure_test}
    return dataset


def _digest(examples: list[Example]) -> str:
    h = hashlib.sha256()
    for e in sorted(examples, key=lambda e: e.post_id):
        h.update(f"{e.post_id}:{e.label}:{e.sha256}\n".encode())
    return h.hexdigest()


def sampling_counts(samplings: Iterable[str | None]) -> dict[str, int]:
    """How the test posts were chosen: reserved (the test reservation, drawn up front from every candidate),
    random (the Label screen's random order over the pool that was left), other (another order, a spot-check, a
    hand-picked post), not recorded (labels from before migration 6 or from an import without it)."""
    counts = Counter("not recorded" if s is None else "reserved" if s == RESERVED_SAMPLING
                     else "random" if s == RANDOM_SAMPLING else "other" for s in samplings)
    return {"reserved": counts["reserved"], "random": counts["random"], "other": counts["other"],
            "not recorded": counts["not recorded"]}


def manifest(dataset: Dataset, cfg: TrainSettings, *, seed: int, balance: bool) -> dict:
    splits = {"train": dataset.train, "val": dataset.val, "dev": dataset.dev, "test": dataset.test}
    return {
        "prompt_version": PROMPT_VERSION,
        "instruction": FINETUNE_INSTRUCTION,
        "seed": seed,
        "balance": balance,
        "min_label_confidence": cfg.min_label_confidence,
        "val_fraction": cfg.val_fraction,
        "dev_fraction": cfg.dev_fraction,
        "grouping": "reposts (same or near-copy image, same or near-duplicate text) kept on one side",
        "counts": {name: dict(Counter(e.label for e in ex)) for name, ex in splits.items()},
        "origins": {name: dict(Counter(e.origin for e in ex)) for name, ex in splits.items()},
        "sizes": {name: len(ex) for name, ex in splits.items()},
        "hashes": {name: _digest(ex) for name, ex in splits.items()},
        "test_sampling": sampling_counts(e.sampling for e in dataset.test),
        "dropped": {"total": len(dataset.dropped),
                    "by_reason": dict(Counter(d.reason.split(" (")[0].split(" of ")[0] for d in dataset.dropped)),
                    "posts": [asdict(d) for d in dataset.dropped]},
    }


def save_model_image(src: str, dest: Path, max_pixels: int) -> None:
    # The same pixels as core.images.model_image gives scoring (pool, store, predict), from the same constants.
    frame = downscaled(src, max_pixels, min_side=MODEL_MIN_SIDE)
    tmp = dest.with_suffix(".part")
    frame.save(tmp, format="JPEG", quality=MODEL_JPEG_QUALITY)
    tmp.replace(dest)


def export_bundle(dataset: Dataset, out_dir: Path, *, max_pixels: int) -> Path:
    """train/val/test.jsonl in chat format with relative image paths, downscaled images, manifest.json."""
    out_dir = Path(out_dir)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name in SPLIT_FILES:
        rows = []
        for e in getattr(dataset, name):
            key = e.sha256 or hashlib.sha256(Path(e.image_path).read_bytes()).hexdigest()
            dest = images / f"{key}.jpg"
            if not dest.exists():
                try:
                    save_model_image(e.image_path, dest, max_pixels)
                except OSError as exc:
                    raise BizsentError(f"image of post {e.post_id} ({e.image_path}) cannot be read: {exc}; "
                                       "run `bizsent scrape --images-only` to refetch it") from None
            rows.append({
                "post_id": e.post_id, "label": e.label, "origin": e.origin, "sarcastic": e.sarcastic,
                "sha256": e.sha256, "text": e.text, "subject": e.subject,
                **({"sampling": e.sampling} if name == "test" else {}),
                "images": [f"images/{key}.jpg"], "messages": training_messages(e.text, e.label, e.subject),
            })
        tmp = out_dir / f"{name}.jsonl.part"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(out_dir / f"{name}.jsonl")
    (out_dir / "manifest.json").write_text(json.dumps({**dataset.manifest, "max_pixels": max_pixels}, indent=2),
                                           encoding="utf-8")
    return out_dir


def read_split(bundle: Path, name: str) -> list[dict]:
    path = Path(bundle) / f"{name}.jsonl"
    if not path.exists():
        raise BizsentError(f"{path} does not exist; build a bundle with `bizsent dataset build`")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_manifest(bundle: Path) -> dict:
    path = Path(bundle) / "manifest.json"
    if not path.exists():
        raise BizsentError(f"{path} does not exist; build a bundle with `bizsent dataset build`")
    return json.loads(path.read_text(encoding="utf-8"))
