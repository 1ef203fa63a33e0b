"""Dataset building: label choice, leakage guard, stratified split, manifest and the exported bundle."""

from __future__ import annotations

import io
import json

from bizsent.core.label.agreement import combine_labels
from bizsent.core.labels import PROMPT_VERSION
from bizsent.core.model.dataset import build_dataset, export_bundle, read_split
from bizsent.core.model.leakage import normalise_text
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel
from fakes.train import add_post, image_bytes, seed_store
from PIL import Image


def _all_train_ids(ds):
    return {e.post_id for e in ds.train} | {e.post_id for e in ds.val}


def test_test_set_is_human_test_split_only(db, settings):
    ids = seed_store(db, settings.image_dir)
    ds = build_dataset(db, settings.image_dir, settings.train)
    assert {e.post_id for e in ds.test} == set(ids["test"])
    assert _all_train_ids(ds) == set(ids["train"])
    assert not _all_train_ids(ds) & set(ids["unlabeled"])
    assert ds.manifest["sizes"]["test"] == 9


def test_leakage_guard_drops_test_post_image_and_near_duplicate_text(db, settings, tmp_path):
    ids = seed_store(db, settings.image_dir, n_train=6, n_test=3, n_unlabeled=0)
    test_post = ids["test"][0]
    test_text = db.execute("SELECT text FROM posts WHERE id = ?", [test_post]).fetchone()[0]
    test_sha_bytes = image_bytes("bearish", 1007)  # the first test post's image (post_no 1007)
    # 1) the test post itself also carries API labels
    set_label(db, test_post, NewLabel(label="bearish", source="api", labeler="openai:o", confidence=0.99))
    # 2) another post reusing the test image
    same_image = add_post(db, settings.image_dir, 5001, "a totally different caption about eth", test_sha_bytes)
    # 3) a near-duplicate text (quote link, case, punctuation, one word changed) with a new image
    near = add_post(db, settings.image_dir, 5002, ">>123 " + test_text.upper().replace("post", "p0st") + "!!",
                    image_bytes("neutral", 5002))
    exact = add_post(db, settings.image_dir, 5003, test_text + "  ", image_bytes("neutral", 5003))
    for pid in (same_image, near, exact):
        for provider in ("openai", "gemini"):
            set_label(db, pid, NewLabel(label="bullish", source="api", labeler=f"{provider}:m", confidence=0.9))
    ds = build_dataset(db, settings.image_dir, settings.train)
    reasons = {d.post_id: d.reason for d in ds.dropped}
    assert reasons[same_image] == "test image"
    assert reasons[exact].startswith("test text")
    assert reasons[near].startswith("near-duplicate of test post") or reasons[near].startswith("test text")
    assert not _all_train_ids(ds) & {test_post, same_image, near, exact}
    bundle = export_bundle(ds, tmp_path / "bundle", max_pixels=56 * 56)
    train_rows = read_split(bundle, "train") + read_split(bundle, "val")
    test_shas = {r["sha256"] for r in read_split(bundle, "test")}
    assert not {r["post_id"] for r in train_rows} & set(ids["test"])
    assert not {r["sha256"] for r in train_rows} & test_shas
    assert not {normalise_text(r["text"]) for r in train_rows} & {normalise_text(test_text)}
    assert json.loads((bundle / "manifest.json").read_text())["dropped"]["total"] == 3


def test_label_choice_confidence_majority_and_human(db, settings):
    img = settings.image_dir
    low = add_post(db, img, 1, "low confidence only rekt sir", image_bytes("bearish", 1))
    set_label(db, low, NewLabel(label="bearish", source="api", labeler="openai:o", confidence=0.3))
    tie = add_post(db, img, 2, "the labelers disagree here", image_bytes("neutral", 2))
    set_label(db, tie, NewLabel(label="bearish", source="api", labeler="openai:o", confidence=0.9))
    set_label(db, tie, NewLabel(label="bullish", source="api", labeler="gemini:g", confidence=0.9))
    human = add_post(db, img, 4, "human train label beats api", image_bytes("neutral", 4))
    set_label(db, human, NewLabel(label="bullish", source="api", labeler="openai:o", confidence=0.9))
    set_label(db, human, NewLabel(label="neutral", source="human", labeler="h", split="train"))
    no_image = add_post(db, img, 5, "text but no image", None)
    set_label(db, no_image, NewLabel(label="bullish", source="api", labeler="openai:o", confidence=0.9))
    ds = build_dataset(db, img, settings.train.model_copy(update={"val_fraction": 0.1}))
    chosen = {e.post_id: (e.label, e.origin) for e in ds.train + ds.val}
    assert low not in chosen and tie not in chosen and no_image not in chosen
    assert chosen[human] == ("neutral", "human")


def _vote(db, pid, **labels):
    for labeler, (label, confidence) in labels.items():
        provider = {"a": "openai", "b": "gemini", "c": "compatible"}[labeler]
        set_label(db, pid, NewLabel(label=label, source="api", labeler=f"{provider}:{labeler}@p3",
                                    confidence=confidence))


def test_combined_labels_from_agreement_rank_above_the_majority_and_obey_the_minimum(db, settings):
    """Issue 10.1, through the real `bizsent agreement --combine` path: combined labels are stored as pseudo
    labels (labeler combined:<method>); the builder used to look for them among API labels only, so a tie the
    combination had resolved was dropped, and a combined label over two below-minimum API labels got in."""
    img = settings.image_dir
    names = ("bearish", "neutral", "bullish")
    for k in range(12):  # labelers a and c agree; b is often wrong: the combination learns whom to trust
        truth = names[k % 3]
        pid = add_post(db, img, 100 + k, f"calibration post {k} about {truth} things", image_bytes(truth, 100 + k))
        _vote(db, pid, a=(truth, 0.9), c=(truth, 0.9), b=(truth if k % 3 == 0 else names[(k + 1) % 3], 0.9))
    split = add_post(db, img, 1, "the two labelers split evenly on this one", image_bytes("bullish", 1))
    _vote(db, split, a=("bullish", 0.9), b=("bearish", 0.9))
    unsure = add_post(db, img, 2, "both labelers were unsure about this", image_bytes("bearish", 2))
    _vote(db, unsure, a=("bearish", 0.4), b=("bearish", 0.5))
    two_to_one = add_post(db, img, 3, "two of three labelers say bullish", image_bytes("bullish", 3))
    _vote(db, two_to_one, a=("bullish", 0.9), b=("bearish", 0.9), c=("bullish", 0.9))
    selftrain = add_post(db, img, 4, "only the model has an opinion here", image_bytes("neutral", 4))
    set_label(db, selftrain, NewLabel(label="neutral", source="pseudo", labeler="selftrain:run1", confidence=0.5))

    combine_labels(db, "dawid-skene")
    stored = db.execute("SELECT source, labeler, confidence FROM labels WHERE post_id = ? AND labeler LIKE"
                        " 'combined%'", [split]).fetchone()
    assert stored[:2] == ("pseudo", "combined:dawid-skene") and stored[2] >= 0.6
    ds = build_dataset(db, img, settings.train.model_copy(update={"min_label_confidence": 0.6}))
    chosen = {e.post_id: e for e in ds.train + ds.val}
    assert (chosen[split].label, chosen[split].origin) == ("bullish", "combined")  # the tie, resolved
    assert chosen[split].confidence == stored[2]
    assert unsure not in chosen  # no API label at the minimum: a combination of them is no better
    assert selftrain not in chosen  # a self-training pseudo label below the minimum
    assert ds.manifest["origins"]["train"].get("combined", 0) + ds.manifest["origins"]["val"].get("combined", 0) \
        == len(chosen) and "api-majority" not in ds.manifest["origins"]["train"]

    # majority combination: 2 of 3 = 0.67. At a minimum of 0.7 the combined label drops the post, although the
    # plain API majority (two 0.9 votes) would have taken it: the combined label outranks the majority.
    db.execute("DELETE FROM labels WHERE labeler LIKE 'combined:%'")
    combine_labels(db, "majority")
    strict = build_dataset(db, img, settings.train.model_copy(update={"min_label_confidence": 0.7}))
    assert two_to_one not in {e.post_id for e in strict.train + strict.val}
    loose = build_dataset(db, img, settings.train.model_copy(update={"min_label_confidence": 0.6}))
    assert {e.post_id: (e.label, e.origin) for e in loose.train + loose.val}[two_to_one] == ("bullish", "combined")


def test_stratified_seeded_split_and_balance(db, settings):
    seed_store(db, settings.image_dir, n_train=30, n_test=3, n_unlabeled=0)
    cfg = settings.train.model_copy(update={"val_fraction": 0.2})
    a = build_dataset(db, settings.image_dir, cfg)
    b = build_dataset(db, settings.image_dir, cfg)
    assert [e.post_id for e in a.val] == [e.post_id for e in b.val]
    assert a.manifest["hashes"] == b.manifest["hashes"]
    assert a.manifest["counts"]["val"] == {"bearish": 2, "neutral": 2, "bullish": 2}
    other = build_dataset(db, settings.image_dir, cfg, seed=99)
    assert {e.post_id for e in other.val} != {e.post_id for e in a.val}
    # remove some bullish labels: balancing oversamples the smaller class up to the largest
    for pid in [e.post_id for e in a.train if e.label == "bullish"][:4]:
        db.execute("DELETE FROM labels WHERE post_id = ?", [pid])
    balanced = build_dataset(db, settings.image_dir, cfg, balance=True)
    counts = balanced.manifest["counts"]["train"]
    assert counts["bullish"] == counts["bearish"] == counts["neutral"]


def test_bundle_is_self_contained_with_downscaled_images(db, settings, tmp_path):
    seed_store(db, settings.image_dir, n_train=6, n_test=3, n_unlabeled=0)
    ds = build_dataset(db, settings.image_dir, settings.train)
    bundle = export_bundle(ds, tmp_path / "bundle", max_pixels=40 * 40)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["prompt_version"] == PROMPT_VERSION and manifest["max_pixels"] == 40 * 40
    # seed_store's test labels record no sampling: the manifest and the test rows say so
    assert manifest["test_sampling"] == {"reserved": 0, "random": 0, "other": 0, "not recorded": 3}
    assert all(r["sampling"] is None for r in read_split(bundle, "test"))
    rows = read_split(bundle, "train")
    assert rows and all(not r["images"][0].startswith("/") for r in rows)
    for r in rows:
        with Image.open(bundle / r["images"][0]) as img:
            assert img.width * img.height <= 40 * 40
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["system", "user", "assistant"] and r["messages"][2]["content"] == r["label"]


def _picture(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A picture with structure: random coloured blocks, a diagonal band and a circle."""
    import numpy as np
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    draw.line([(0, 0), size], fill=(255, 255, 255), width=9)
    x, y = int(rng.integers(20, size[0] - 40)), int(rng.integers(20, size[1] - 40))
    draw.ellipse([x, y, x + 35, y + 35], fill=(0, 0, 0))
    return img


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_near_copies_of_test_images_are_dropped(db, settings):
    """Issue 10.6: a test image re-saved as JPEG or resized by 2 px has another sha256; with new text it passed
    the guard. The perceptual hash catches both; a different picture is kept."""
    img = settings.image_dir
    original = _picture(1)
    test_post = add_post(db, img, 1, "this chart says it is over for eth", _encoded(original, "PNG"))
    set_label(db, test_post, NewLabel(label="bearish", source="human", split="test", labeler="human"))
    resaved = add_post(db, img, 2, "completely new words about a coin", _encoded(original, "JPEG", quality=70))
    resized = add_post(db, img, 3, "another caption nobody wrote before",
                       _encoded(original.resize((158, 118), Image.Resampling.BICUBIC), "PNG"))
    other = add_post(db, img, 4, "a different picture and a different text", _encoded(_picture(2), "JPEG"))
    for pid in (resaved, resized, other):
        for provider in ("openai", "gemini"):
            set_label(db, pid, NewLabel(label="bearish", source="api", labeler=f"{provider}:m", confidence=0.9))
    ds = build_dataset(db, img, settings.train)
    reasons = {d.post_id: d.reason for d in ds.dropped}
    assert reasons[resaved] == reasons[resized] == f"near-duplicate image (test post {test_post})"
    assert other not in reasons and other in _all_train_ids(ds)
    assert ds.manifest["dropped"]["by_reason"] == {"near-duplicate image": 2}
    # the hashes are kept in the store: the next build does not decode the images again
    assert db.execute("SELECT count(*) FROM images WHERE phash IS NULL OR phash = ''").fetchone()[0] == 0


def test_images_cached_before_the_phash_column_are_hashed_on_build(db, settings):
    img = settings.image_dir
    test_post = add_post(db, img, 1, "this chart says it is over for eth", _encoded(_picture(1), "PNG"))
    set_label(db, test_post, NewLabel(label="bearish", source="human", split="test", labeler="human"))
    copy = add_post(db, img, 2, "completely new words about a coin", _encoded(_picture(1), "JPEG", quality=70))
    set_label(db, copy, NewLabel(label="bearish", source="human", split="train", labeler="human"))
    db.execute("UPDATE images SET phash = NULL")  # as after migration 6 on an old store
    ds = build_dataset(db, img, settings.train)
    assert [d.reason for d in ds.dropped] == [f"near-duplicate image (test post {test_post})"]
    assert db.execute("SELECT count(*) FROM images WHERE phash IS NULL").fetchone()[0] == 0


def test_flat_images_have_no_perceptual_hash():
    """A (nearly) one-colour picture has no structure to compare: its hash would make every flat image a copy."""
    from bizsent.core.collect.images import perceptual_hash

    assert perceptual_hash(Image.open(io.BytesIO(image_bytes("neutral", 7)))) is None
    assert perceptual_hash(_picture(3)) is not None


def test_few_shot_examples_pass_the_same_leakage_guard(db, settings):
    """Issue 10.6: few-shot examples for the API prompt are human train labels; one whose image is a near-copy
    of a test image (or whose text is a test text) would show the labeler a test answer it is then scored on."""
    from bizsent.core.label.planning import few_shot_examples

    img = settings.image_dir
    test_post = add_post(db, img, 1, "this chart says it is over for eth", _encoded(_picture(1), "PNG"))
    set_label(db, test_post, NewLabel(label="bearish", source="human", split="test", labeler="human"))
    copy = add_post(db, img, 2, "brand new words for an old picture", _encoded(_picture(1), "JPEG", quality=70))
    same_text = add_post(db, img, 3, "this chart says it is over for eth!", _encoded(_picture(4), "PNG"))
    fine = [add_post(db, img, 10 + k, f"an honest train post number {k} about {label}", _encoded(_picture(10 + k),
                                                                                                "PNG"))
            for k, label in enumerate(("bearish", "neutral", "bullish"))]
    for pid, label in zip((copy, same_text, *fine), ("bearish", "bearish", "bearish", "neutral", "bullish"),
                          strict=True):
        set_label(db, pid, NewLabel(label=label, source="human", split="train", labeler="human"))
    examples, problems = few_shot_examples(db, 3, 64 * 64)
    assert {e.post_id for e in examples} == set(fine)
    assert any("share an image or text with the human test set" in p and str(copy) in p for p in problems)
    # a recorded job's examples are checked too
    examples, problems = few_shot_examples(db, 0, 64 * 64, ids=(copy, fine[1]))
    assert [e.post_id for e in examples] == [fine[1]] and problems


def _labelled(db, pid, label, human=False):
    if human:
        set_label(db, pid, NewLabel(label=label, source="human", split="train", labeler="human:t"))
    else:
        for provider in ("openai", "gemini"):
            set_label(db, pid, NewLabel(label=label, source="api", labeler=f"{provider}:m@p1", confidence=0.9))


def _resaved(data: bytes) -> bytes:
    """The same picture re-saved smaller as a JPEG: another sha256, the same perceptual hash."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return _encoded(img.resize((img.width * 3 // 4, img.height * 3 // 4)), "JPEG", quality=80)


def test_reposts_never_straddle_train_validation_and_dev(db, settings):
    """Pairs of posts sharing an image (exactly or re-saved) or a text: each pair lands on one side."""
    labels = ("bearish", "neutral", "bullish")
    pairs = []
    for k in range(30):
        label = labels[k % 3]
        picture = _encoded(_picture(k), "PNG") if k % 3 == 1 else image_bytes(label, 300 + k)
        first = add_post(db, settings.image_dir, 7000 + 2 * k, f"{label} original post number {k} about sol",
                         picture)
        if k % 3 == 0:  # the same image, another text
            second = add_post(db, settings.image_dir, 7001 + 2 * k, f"unrelated words {k} anon", picture)
        elif k % 3 == 1:  # the picture re-saved smaller as a JPEG, another text
            second = add_post(db, settings.image_dir, 7001 + 2 * k, f"other caption {k} fren", _resaved(picture))
        else:  # the same text reposted with a new image
            second = add_post(db, settings.image_dir, 7001 + 2 * k, f"{label} original post number {k} about sol",
                              image_bytes(label, 600 + k))
        for pid in (first, second):
            _labelled(db, pid, label, human=k % 2 == 0)
        pairs.append((first, second))
    cfg = settings.train.model_copy(update={"val_fraction": 0.3, "dev_fraction": 0.3})
    ds = build_dataset(db, settings.image_dir, cfg)
    side = {e.post_id: name for name in ("train", "val", "dev") for e in getattr(ds, name)}
    dropped = {d.post_id for d in ds.dropped}
    assert ds.val and ds.dev and ds.train
    for first, second in pairs:
        sides = {side.get(first), side.get(second)} - {None}
        assert len(sides) == 1, (first, second, side.get(first), side.get(second))
        assert not ({first, second} & dropped), "a pair with human labels on both posts is never dropped"
    assert "grouping" in ds.manifest and ds.manifest["sizes"]["dev"] == len(ds.dev)


def test_dev_is_drawn_once_from_human_labels_whatever_the_seed(db, settings):
    ids = seed_store(db, settings.image_dir, n_train=60, n_test=3, n_unlabeled=0)
    for pid in ids["train"][:40]:
        label = db.execute("SELECT label FROM labels WHERE post_id = ? LIMIT 1", [pid]).fetchone()[0]
        _labelled(db, pid, label, human=True)
    first = build_dataset(db, settings.image_dir, settings.train, seed=1)
    assert first.dev and all(e.origin == "human" for e in first.dev)
    assert not {e.post_id for e in first.dev} & _all_train_ids(first)
    more = add_post(db, settings.image_dir, 9999, "a new post labelled later", image_bytes("neutral", 9999))
    _labelled(db, more, "neutral", human=True)
    again = build_dataset(db, settings.image_dir, settings.train, seed=2)
    assert {e.post_id for e in first.dev} <= {e.post_id for e in again.dev}
    bundle = export_bundle(again, settings.data_dir / "bundle", max_pixels=settings.train.max_pixels)
    assert [r["post_id"] for r in read_split(bundle, "dev")] == [e.post_id for e in again.dev]


def test_unsure_labels_stay_out_of_test_and_dev_and_train_as_such(db, settings):
    ids = seed_store(db, settings.image_dir, n_train=40, n_test=6, n_unlabeled=0)
    doubted_test = ids["test"][0]
    label = db.execute("SELECT label FROM labels WHERE post_id = ?", [doubted_test]).fetchone()[0]
    set_label(db, doubted_test, NewLabel(label=label, source="human", split="test", labeler="human:t", unsure=True))
    for k, pid in enumerate(ids["train"]):
        label = db.execute("SELECT label FROM labels WHERE post_id = ? LIMIT 1", [pid]).fetchone()[0]
        set_label(db, pid, NewLabel(label=label, source="human", split="train", labeler="human:t", unsure=k % 2 == 0))
    ds = build_dataset(db, settings.image_dir, settings.train.model_copy(update={"dev_fraction": 0.4}))
    assert doubted_test not in {e.post_id for e in ds.test} | _all_train_ids(ds) and len(ds.test) == 5
    assert ds.manifest["unsure_test_left_out"] == 1
    unsure = {pid for k, pid in enumerate(ids["train"]) if k % 2 == 0}
    assert ds.dev and not unsure & {e.post_id for e in ds.dev}
    assert {e.origin for e in ds.train + ds.val if e.post_id in unsure} == {"human-unsure"}
