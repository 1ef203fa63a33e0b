"""Train / validation / test sets from the store, the leakage guard, and the self-contained bundle a pod trains
from.

- test: human labels on the test split, nothing else.
- training pool, first that applies: a human label outside the test split; the combined label of
  `bizsent agreement --combine` (core.labels.is_combined), if one API label for its class is at the minimum;
  the majority of the API labels (a tie gives nothing); a self-training pseudo label. Combined, API and pseudo
  labels below train.min_label_confidence are not used (labels without a confidence are kept: older imports
  lack one); a combined label below it drops the post.
- leakage guard: a pool post is dropped when its post id, its image (exactly by sha256, or as a near-copy by
  perceptual hash: re-saved, recompressed, slightly resized), or its normalised text (exactly, or as a near
  duplicate by word-trigram Jaccard) is in the test set; every drop is reported. Few-shot examples for the API
  prompt pass the same guard (leakage_check).
- validation: a stratified, seeded fraction of the pool; optional oversampling of the smaller classes in train.
Only candidate posts are used (image ok and text present, core.posts.CANDIDATE_SQL).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import sqlite_utils
from bizsent.core.collect.images import MODEL_JPEG_QUALITY, MODEL_MIN_SIDE, CopyCheck, downscaled, phash_file, phash_hex
from bizsent.core.config import TrainSettings
from bizsent.core.errors import BizsentError
from bizsent.core.labels import (
    API_SOURCE,
    FINETUNE_INSTRUCTION,
    LABELS,
    PROMPT_VERSION,
    RANDOM_SAMPLING,
    Label,
    is_combined,
)
from bizsent.core.model.chat_format import training_messages
from bizsent.core.store import transaction
from bizsent.core.store.posts import CANDIDATE_SQL

NEAR_DUPLICATE_JACCARD = 0.8
NEAR_DUPLICATE_BITS = 6  # perceptual hashes (64 bits) this close are the same picture
SPLIT_FILES = ("train", "val", "test")


@dataclass(slots=True)
class Example:
    post_id: int
    text: str
    label: Label
    image_path: str
    sha256: str
    origin: str  # human | combined | api-majority | pseudo
    subject: str = ""
    sarcastic: bool = False
    confidence: float | None = None
    sampling: str | None = None  # test examples: how the post was chosen (labels.sampling)


@dataclass(slots=True)
class Dropped:
    post_id: int
    reason: str  # "test post" | "test image" | "near-duplicate image (test post N)" | "test text (post N)"
    #              | "near-duplicate of test post N"


@dataclass(slots=True)
class Dataset:
    train: list[Example]
    val: list[Example]
    test: list[Example]
    dropped: list[Dropped] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


@dataclass(slots=True)
class _Post:
    post_id: int
    subject: str
    text: str
    image_path: str
    sha256: str
    image_id: int = 0
    phash: int | None = None  # filled by _with_phashes


def normalise_text(text: str) -> str:
    """Lower case, no quote links (>>123), no URLs, words only: what two copies of a post still share."""
    text = re.sub(r">>\d+", " ", text.lower())
    text = re.sub(r"https?://\S+", " ", text)
    return " ".join(re.findall(r"[a-z0-9]+", text))


def _shingles(norm: str) -> set[str]:
    words = norm.split()
    return {" ".join(words[k : k + 3]) for k in range(len(words) - 2)}


_MISSING = -1  # _Post.phash: not in the store yet (images cached before migration 6)


def _candidates(db: sqlite_utils.Database, image_dir: Path | None) -> dict[int, _Post]:
    rows = db.execute(
        f"SELECT p.id, p.subject, p.text, i.path, coalesce(i.sha256, ''), i.id, i.phash FROM posts p"
        f" JOIN images i ON i.id = p.image_id WHERE {CANDIDATE_SQL}"
    ).fetchall()
    out = {}
    for pid, subject, text, path, sha, image_id, phash in rows:
        full = Path(path) if Path(path).is_absolute() or image_dir is None else image_dir / path
        out[pid] = _Post(pid, subject or "", text, str(full), sha, image_id,
                         _MISSING if phash is None else int(phash, 16) if phash else None)
    return out


def _with_phashes(db: sqlite_utils.Database, posts: list[_Post]) -> None:
    """Compute the perceptual hashes the store lacks (images cached before it kept them) and keep them there."""
    todo = [p for p in posts if p.phash == _MISSING]
    found: dict[int, str] = {}
    for post in todo:
        try:
            post.phash = phash_file(post.image_path)
        except (OSError, ValueError):
            post.phash = None  # unreadable: nothing to compare (the bundle export reports the file)
            continue
        found[post.image_id] = phash_hex(post.phash)
    if found:
        try:
            with transaction(db):
                db.conn.executemany("UPDATE images SET phash = ? WHERE id = ?", [(h, i) for i, h in found.items()])
        except sqlite3.OperationalError:  # a read-only store: the hashes are only computed again next time
            pass


def _labels(db: sqlite_utils.Database) -> dict[int, list[dict]]:
    by_post: dict[int, list[dict]] = defaultdict(list)
    for row in db.execute(
        "SELECT post_id, label, source, labeler, confidence, sarcastic, split, created_at, sampling FROM labels"
        " ORDER BY id"
    ).fetchall():
        by_post[row[0]].append(dict(zip(
            ("post_id", "label", "source", "labeler", "confidence", "sarcastic", "split", "created_at", "sampling"),
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
        return lab["label"], "human", bool(lab["sarcastic"]), None
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


class LeakageGuard:
    """Answers "does this post share anything with the test set?" by id, image (sha256, then perceptual hash)
    and (near-)duplicate text. Posts need their phash filled in (_with_phashes) for the near-copy check."""

    def __init__(self, test: list[_Post]):
        self.ids = {p.post_id for p in test}
        self.shas = {p.sha256 for p in test if p.sha256}
        hashed = [p for p in test if p.phash is not None and p.phash != _MISSING]
        self.phashes = np.array([p.phash for p in hashed], dtype=np.uint64)
        self.phash_posts = [p.post_id for p in hashed]
        self.paths = {p.post_id: p.image_path for p in hashed}
        self.copies = CopyCheck()
        self.texts = {normalise_text(p.text): p.post_id for p in test}
        self.shingles: dict[int, set[str]] = {}
        self.index: dict[str, set[int]] = defaultdict(set)
        for p in test:
            grams = _shingles(normalise_text(p.text))
            self.shingles[p.post_id] = grams
            for g in grams:
                self.index[g].add(p.post_id)

    def near_image(self, post: _Post) -> int | None:
        """The test post whose image `post`'s image is a near-copy of, or None: a perceptual hash within
        NEAR_DUPLICATE_BITS, confirmed pixel by pixel (core.images.CopyCheck), nearest hash first."""
        if post.phash is None or post.phash == _MISSING or not len(self.phashes):
            return None
        distance = np.bitwise_count(self.phashes ^ np.uint64(post.phash))
        for k in np.argsort(distance, kind="stable"):
            if distance[k] > NEAR_DUPLICATE_BITS:
                break
            test = self.phash_posts[k]
            try:
                if self.copies.same_picture(self.paths[test], post.image_path):
                    return test
            except (OSError, ValueError):
                return test  # an unreadable file cannot clear a hash match
        return None

    def reason(self, post: _Post) -> str | None:
        if post.post_id in self.ids:
            return "test post"
        if post.sha256 and post.sha256 in self.shas:
            return "test image"
        near = self.near_image(post)
        if near is not None:
            return f"near-duplicate image (test post {near})"
        norm = normalise_text(post.text)
        if norm in self.texts:
            return f"test text (post {self.texts[norm]})"
        grams = _shingles(norm)
        shared: Counter[int] = Counter()
        for g in grams:
            shared.update(self.index.get(g, ()))
        for tid, common in shared.items():
            union = len(grams) + len(self.shingles[tid]) - common
            if union and common / union >= NEAR_DUPLICATE_JACCARD:
                return f"near-duplicate of test post {tid}"
        return None


def leakage_check(db: sqlite_utils.Database, image_dir: Path | None = None) -> Callable[[int], str | None]:
    """The leakage guard for posts chosen outside build_dataset (few-shot examples for the API prompt): a function
    from a post id to why that post shares something with the human test set (None: it does not)."""
    posts = _candidates(db, image_dir)
    labels = _labels(db)
    test = [post for pid, post in posts.items() if _test_label(labels.get(pid, []))]
    _with_phashes(db, test)
    guard = LeakageGuard(test)

    def reason(post_id: int) -> str | None:
        post = posts.get(post_id)
        if post is None:
            return None if post_id not in guard.ids else "test post"
        if len(guard.phashes):
            _with_phashes(db, [post])
        return guard.reason(post)

    return reason


def _example(post: _Post, label: Label, origin: str, sarcastic: bool, confidence: float | None) -> Example:
    return Example(post.post_id, post.text, label, post.image_path, post.sha256, origin, post.subject, sarcastic,
                   confidence)


def _stratified_split(pool: list[Example], fraction: float, rng: random.Random) -> tuple[list[Example], list[Example]]:
    train, val = [], []
    for label in LABELS:
        group = sorted((e for e in pool if e.label == label), key=lambda e: e.post_id)
        rng.shuffle(group)
        take = round(len(group) * fraction) if len(group) > 1 else 0
        take = max(take, 1) if len(group) > 1 else 0
        val.extend(group[:take])
        train.extend(group[take:])
    return train, val


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
    posts = _candidates(db, image_dir)
    labels = _labels(db)
    test_posts, test = [], []
    for pid, post in posts.items():
        lab = _test_label(labels.get(pid, []))
        if lab:
            test_posts.append(post)
            example = _example(post, lab["label"], "human", bool(lab["sarcastic"]), None)
            example.sampling = lab["sampling"]
            test.append(example)
    _with_phashes(db, test_posts)
    guard = LeakageGuard(test_posts)
    chosen_posts = []
    for pid, post in posts.items():
        if pid in guard.ids:
            continue
        chosen = _training_label(labels.get(pid, []), cfg.min_label_confidence)
        if chosen is not None:
            chosen_posts.append((post, chosen))
    if len(guard.phashes):  # nothing to compare with otherwise: no need to hash the pool
        _with_phashes(db, [post for post, _ in chosen_posts])
    pool, dropped = [], []
    for post, chosen in chosen_posts:
        why = guard.reason(post)
        if why:
            dropped.append(Dropped(post.post_id, why))
            continue
        pool.append(_example(post, *chosen))
    rng = random.Random(seed)
    train, val = _stratified_split(pool, cfg.val_fraction, rng)
    if balance:
        train = _oversample(train, rng)
    rng.shuffle(train)
    test.sort(key=lambda e: e.post_id)
    dataset = Dataset(train, val, test, dropped)
    dataset.manifest = manifest(dataset, cfg, seed=seed, balance=balance)
    return dataset


def _digest(examples: list[Example]) -> str:
    h = hashlib.sha256()
    for e in sorted(examples, key=lambda e: e.post_id):
        h.update(f"{e.post_id}:{e.label}:{e.sha256}\n".encode())
    return h.hexdigest()


def sampling_counts(samplings: Iterable[str | None]) -> dict[str, int]:
    """How the test posts were chosen: random (the Label screen's random order), other (another order, a
    spot-check, a hand-picked post), not recorded (labels from before migration 6 or from an import)."""
    counts = Counter("not recorded" if s is None else "random" if s == RANDOM_SAMPLING else "other"
                     for s in samplings)
    return {"random": counts["random"], "other": counts["other"], "not recorded": counts["not recorded"]}


def manifest(dataset: Dataset, cfg: TrainSettings, *, seed: int, balance: bool) -> dict:
    splits = {"train": dataset.train, "val": dataset.val, "test": dataset.test}
    return {
        "prompt_version": PROMPT_VERSION,
        "instruction": FINETUNE_INSTRUCTION,
        "seed": seed,
        "balance": balance,
        "min_label_confidence": cfg.min_label_confidence,
        "val_fraction": cfg.val_fraction,
        "counts": {name: dict(Counter(e.label for e in ex)) for name, ex in splits.items()},
        "origins": {name: dict(Counter(e.origin for e in ex)) for name, ex in splits.items()},
        "sizes": {name: len(ex) for name, ex in splits.items()},
        "hashes": {name: _digest(ex) for name, ex in splits.items()},
        "test_sampling": sampling_counts(e.sampling for e in dataset.test),
        "dropped": {"total": len(dataset.dropped),
                    "by_reason": dict(Counter(d.reason.split(" (")[0].split(" of ")[0] for d in dataset.dropped)),
                    "posts": [asdict(d) for d in dataset.dropped]},
    }


def _downscale(src: str, dest: Path, max_pixels: int) -> None:
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
                    _downscale(e.image_path, dest, max_pixels)
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
