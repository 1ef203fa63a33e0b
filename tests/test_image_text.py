"""The words on images: read offline by the real OCR engine on the demo pictures (whose drawn text is known),
stored with the image by the read-images job, and found by the same search the Posts and Label screens use."""

from __future__ import annotations

import difflib
import time

import pytest
from bizsent.core.collect.ocr import engine_name, missing
from bizsent.core.demo import build_posts, seed_demo
from bizsent.core.demo.images import drawn_text
from bizsent.core.label.queue import QueueSpec, label_queue
from bizsent.core.store.browse import PostFilter, post_ids
from bizsent.core.store.image_text import post_image_text, save_image_text, squash, unread_images
from bizsent.jobs import rows
from bizsent.jobs.read_images import KIND, run_job
from fakes.tui import build_store

DEMO_POSTS, READ = 40, 12


def overlap(read: str, truth: str) -> tuple[int, int, int]:
    """(characters of `read` matching `truth` in order, characters read, characters drawn), spaces and case
    ignored: the model drops spaces between words, which search ignores too (core.store.image_text.squash)."""
    a, b = squash(read), squash(truth)
    matched = sum(block.size for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    return matched, len(a), len(b)


@pytest.mark.skipif(missing() is not None, reason="the optional OCR extra is not installed")
def test_job_reads_demo_images_with_high_precision(db, settings):
    seed_demo(db, settings.image_dir, n_posts=DEMO_POSTS, seed=7)
    job_id = rows.queue(db, KIND, {"limit": READ})
    report = run_job(db, job_id)
    assert report.read == READ and rows.get(db, job_id)["state"] == "done"
    specs = {f"demo://biz/{d.post.post_no}.png": d.image for d in build_posts(DEMO_POSTS, 7) if d.image}
    read = db.execute("SELECT i.url, t.text FROM image_text t JOIN images i ON i.id = t.image_id").fetchall()
    assert len(read) == READ
    matched = got = drawn = 0
    for url, text in read:
        m, g, d = overlap(text, drawn_text(specs[url]))
        matched, got, drawn = matched + m, got + g, drawn + d
    precision, recall = matched / got, matched / drawn
    print(f"OCR on {READ} demo images: character precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.9, f"precision {precision:.3f}"
    assert recall >= 0.8, f"recall {recall:.3f}"
    assert not {image_id for image_id, _ in unread_images(db, engine_name())} & {
        row[0] for row in db.execute("SELECT image_id FROM image_text")}


def test_search_finds_words_on_the_image_spaces_or_not(db, settings):
    ids = build_store(db, settings.image_dir)
    image_id = db.execute("SELECT image_id FROM posts WHERE id = ?", [ids[5]]).fetchone()[0]
    save_image_text(db, image_id, "Positionliquidated\nLINK-PERP LONG 100x", "test-engine")
    assert post_image_text(db, ids[5]) == "Positionliquidated\nLINK-PERP LONG 100x"
    assert post_image_text(db, ids[6]) is None
    assert post_ids(db, PostFilter(text="position liquidated")) == [ids[5]]
    assert post_ids(db, PostFilter(text="perp long")) == [ids[5]]
    assert post_ids(db, PostFilter(text="buy the dip")) != [ids[5]]  # the post's own words still match
    queue = label_queue(db, QueueSpec(order="filter", text="LINK-PERP"))
    assert queue.ids == [ids[5]]
    assert image_id not in {image for image, _ in unread_images(db, "test-engine")}
    assert image_id in {image for image, _ in unread_images(db, "another-engine")}  # a new engine reads again


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.skipif(missing() is not None, reason="the optional OCR extra is not installed")
def test_new_images_start_one_background_job_that_stops_on_cancel(db, settings):
    from bizsent.core.store import liveness
    from bizsent.jobs.control import cancel
    from bizsent.jobs.read_images import ensure_reading

    logs = settings.data_dir / "logs"
    assert ensure_reading(db, settings.db_path, None, logs) is None  # no image waits: nothing starts
    build_store(db, settings.image_dir)
    said = ensure_reading(db, settings.db_path, None, logs)
    assert said is not None and said.startswith("reading the text on new images in the background (job ")
    job = rows.listing(db, KIND)[-1]
    assert ensure_reading(db, settings.db_path, None, logs) is None  # one at a time
    wait_for(lambda: rows.get(db, job["id"])["done"] >= 1)  # it reads, and writes each image as it goes
    assert db.execute("SELECT count(*) FROM image_text").fetchone()[0] >= 1
    assert cancel(db, settings, job["id"]) == f"job {job['id']} cancelled"
    wait_for(lambda: not liveness.pid_alive(rows.get(db, job["id"])["pid"]))
    assert rows.get(db, job["id"])["state"] == "cancelled"
    assert unread_images(db, engine_name())  # it stopped before reading them all


@pytest.mark.skipif(missing() is None, reason="runs where the optional OCR extra is absent (Python 3.13)")
def test_without_the_ocr_extra_read_images_says_so_in_one_line(db, settings):
    import subprocess
    import sys

    build_store(db, settings.image_dir)
    result = subprocess.run([sys.executable, "-c", "from bizsent.cli import main; main()", "--config",
                             str(settings.source), "read-images"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {missing()}"
    assert db.execute("SELECT count(*) FROM image_text").fetchone()[0] == 0
