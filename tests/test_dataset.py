"""Dataset building: label choice, leakage guard, stratified split, manifest and the exported bundle."""

from __future__ import annotations

import json

from fakes.train import add_post, image_bytes, seed_store
from PIL import Image

from core.dataset import build_dataset, export_bundle, normalise_text, read_split
from core.labels import PROMPT_VERSION
from core.posts import set_label
from core.records import NewLabel


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
    set_label(db, test_post, NewLabel(label="bearish", source="openai", labeler="o", confidence=0.99))
    # 2) another post reusing the test image
    same_image = add_post(db, settings.image_dir, 5001, "a totally different caption about eth", test_sha_bytes)
    # 3) a near-duplicate text (quote link, case, punctuation, one word changed) with a new image
    near = add_post(db, settings.image_dir, 5002, ">>123 " + test_text.upper().replace("post", "p0st") + "!!",
                    image_bytes("neutral", 5002))
    exact = add_post(db, settings.image_dir, 5003, test_text + "  ", image_bytes("neutral", 5003))
    for pid in (same_image, near, exact):
        for source in ("openai", "gemini"):
            set_label(db, pid, NewLabel(label="bullish", source=source, labeler=source, confidence=0.9))
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


def test_label_choice_confidence_majority_and_combined(db, settings):
    img = settings.image_dir
    low = add_post(db, img, 1, "low confidence only rekt sir", image_bytes("bearish", 1))
    set_label(db, low, NewLabel(label="bearish", source="openai", labeler="o", confidence=0.3))
    tie = add_post(db, img, 2, "the labelers disagree here", image_bytes("neutral", 2))
    set_label(db, tie, NewLabel(label="bearish", source="openai", labeler="o", confidence=0.9))
    set_label(db, tie, NewLabel(label="bullish", source="gemini", labeler="g", confidence=0.9))
    comb = add_post(db, img, 3, "combined label wins over votes", image_bytes("bullish", 3))
    set_label(db, comb, NewLabel(label="bearish", source="openai", labeler="o", confidence=0.9))
    set_label(db, comb, NewLabel(label="bearish", source="gemini", labeler="g", confidence=0.9))
    set_label(db, comb, NewLabel(label="bullish", source="openai", labeler="combined@p1", confidence=0.8))
    human = add_post(db, img, 4, "human train label beats api", image_bytes("neutral", 4))
    set_label(db, human, NewLabel(label="bullish", source="openai", labeler="o", confidence=0.9))
    set_label(db, human, NewLabel(label="neutral", source="human", labeler="h", split="train"))
    no_image = add_post(db, img, 5, "text but no image", None)
    set_label(db, no_image, NewLabel(label="bullish", source="openai", labeler="o", confidence=0.9))
    ds = build_dataset(db, img, settings.train.model_copy(update={"val_fraction": 0.1}))
    chosen = {e.post_id: (e.label, e.origin) for e in ds.train + ds.val}
    assert low not in chosen and tie not in chosen and no_image not in chosen
    assert chosen[comb] == ("bullish", "combined")
    assert chosen[human] == ("neutral", "human")


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
    rows = read_split(bundle, "train")
    assert rows and all(not r["images"][0].startswith("/") for r in rows)
    for r in rows:
        with Image.open(bundle / r["images"][0]) as img:
            assert img.width * img.height <= 40 * 40
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["system", "user", "assistant"] and r["messages"][2]["content"] == r["label"]
