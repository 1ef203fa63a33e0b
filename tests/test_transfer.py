"""Import and export through the real store: JSONL/CSV round trips, bad rows, the old scraper database."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bizsent.core.collect.transfer import export_file, import_file
from bizsent.core.errors import BizsentError
from bizsent.core.store import open_db
from bizsent.core.store.posts import post_id, save_posts, set_label
from bizsent.core.store.records import ImageRef, NewLabel, NewPost
from fakes.scraperdb import label, make_scraper_db, op
from PIL import Image

BIZSENT = Path(sys.executable).with_name("bizsent")


def png(colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, "PNG")
    return out.getvalue()


def labels_of(db) -> list[tuple]:
    return db.execute(
        "SELECT p.board, p.post_no, l.label, l.source, l.labeler, l.split, l.confidence, l.sarcastic, l.unsure,"
        " l.rationale FROM labels l JOIN posts p ON p.id = l.post_id ORDER BY p.post_no, l.source, l.labeler"
    ).fetchall()


def posts_of(db) -> list[tuple]:
    return db.execute(
        "SELECT p.board, p.thread_no, p.post_no, p.is_op, p.time, p.subject, p.text, p.html, p.source, i.url,"
        " i.status, i.sha256 FROM posts p LEFT JOIN images i ON i.id = p.image_id ORDER BY p.post_no"
    ).fetchall()


@pytest.fixture
def filled(db, settings, tmp_path):
    """Three posts: one with a cached local image, one with a remote URL, one reply without an image."""
    local = tmp_path / "pic.png"
    local.write_bytes(png())
    save_posts(db, [
        NewPost("biz", 100, 100, "WAGMI bros", html="WAGMI bros", is_op=True, time=1_700_000_000, subject="s",
                source="live", image=ImageRef(url="https://i.4cdn.org/biz/100.png")),
        NewPost("biz", 100, 101, "it's over\n>rope", html="it's over<br>&gt;rope", time=1_700_000_060,
                image=ImageRef(url="https://i.4cdn.org/biz/101.jpg")),
        NewPost("biz", 100, 102, "which wallet ser, \"quoted\", comma", time=1_700_000_100),
    ])
    from bizsent.core.collect.images import cache_image, record

    image_id = db.execute("SELECT image_id FROM posts WHERE post_no = 100").fetchone()[0]
    record(db, image_id, cache_image(settings.image_dir, local.read_bytes()))
    set_label(db, post_id(db, "biz", 100), NewLabel("bearish", "human", split="test", labeler="human:me",
                                                    sarcastic=True, unsure=False))
    set_label(db, post_id(db, "biz", 100), NewLabel("bullish", "api", labeler="openai:gpt@p1", confidence=0.81,
                                                    rationale="text says wagmi, chart red"))
    set_label(db, post_id(db, "biz", 101), NewLabel("bearish", "api", labeler="gemini:flash@p1", confidence=0.9))
    set_label(db, post_id(db, "biz", 102), NewLabel("neutral", "human", split="test", labeler="human:me",
                                                    unsure=True))
    return db


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_labels_and_posts_round_trip(filled, settings, tmp_path, suffix):
    labels_file, posts_file = tmp_path / f"labels{suffix}", tmp_path / f"posts{suffix}"
    assert export_file(filled, labels_file, what="labels") == 4
    assert export_file(filled, posts_file, what="posts") == 3

    fresh = open_db(tmp_path / "fresh.db")
    images = tmp_path / "fresh-images"
    report = import_file(fresh, posts_file, image_dir=images)
    assert (report.posts_new, report.rows_skipped, report.problems) == (3, 0, [])
    assert report.images_cached == 1 and report.images_queued == 1
    report = import_file(fresh, labels_file, image_dir=images)
    assert report.labels == {"human": 2, "openai": 1, "gemini": 1}
    assert report.posts_new == 0 and report.problems == []

    assert labels_of(fresh) == labels_of(filled)
    assert posts_of(fresh) == posts_of(filled)
    cached = fresh.execute("SELECT path FROM images WHERE status = 'ok'").fetchone()[0]
    assert Path(cached).is_relative_to(images) and Path(cached).read_bytes() == png()


def test_export_filters_by_source_and_split(filled, tmp_path):
    out = tmp_path / "human.jsonl"
    assert export_file(filled, out, source="human", split="test") == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["source"] for r in rows} == {"human"} and {r["post_no"] for r in rows} == {100, 102}
    assert export_file(filled, tmp_path / "p.csv", what="posts", source="gemini") == 1


def test_export_refuses_unknown_extension_and_values(filled, tmp_path):
    for kwargs in ({"path": tmp_path / "x.xlsx"}, {"path": tmp_path / "x.csv", "what": "images"},
                   {"path": tmp_path / "x.csv", "source": "gpt"}):
        path = kwargs.pop("path")
        with pytest.raises(BizsentError) as err:
            export_file(filled, path, **kwargs)
        assert "\n" not in str(err.value)
        assert not path.exists()


def test_bad_rows_are_reported_by_line_and_good_rows_import(db, settings, tmp_path):
    lines = [
        {"post_no": 1, "text": "good one", "label": "bullish"},
        {"post_no": 2, "label": "bearish"},  # no text
        {"post_no": 3, "text": "x", "label": "moon"},  # unknown label
        "{not json",
        {"post_no": "12a", "text": "bad number"},
        {"id": 6, "text": "uses id, rating word as number", "label": 1, "source": "openai", "confidence": 0.7},
        {"post_no": 7, "text": "bad confidence", "label": "neutral", "confidence": 1.7},
        {"post_no": 8, "text": "remote image", "image_url": "https://warosu.org/data/biz/img/8.jpg"},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n\n")
    report = import_file(db, path, image_dir=settings.image_dir)
    assert report.posts_new == 3 and report.rows_skipped == 5
    assert [p.split(":")[0] for p in report.problems] == [f"in.jsonl line {n}" for n in (2, 3, 4, 5, 7)]
    assert "missing text" in report.problems[0] and "'moon'" in report.problems[1]
    assert "post_no '12a' is not a whole number" in report.problems[3]
    assert all("\n" not in p for p in report.problems)
    assert labels_of(db) == [("biz", 1, "bullish", "human", "human:import", "test", None, 0, 0, None),
                             ("biz", 6, "bearish", "api", "openai:import", "unassigned", 0.7, 0, 0, None)]
    assert db.execute("SELECT url, status FROM images").fetchall() == [
        ("https://warosu.org/data/biz/img/8.jpg", "pending")]
    assert report.images_queued == 1
    assert "3 new posts" in report.summary() and "5 bad rows" in report.summary()


def test_csv_bad_rows_use_file_line_numbers_and_label_only_rows_need_a_known_post(filled, settings, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "post_no,label,split,text\n"
        "100,bullish,train,\n"  # known post: a labels-only row is fine and does not blank the post
        '555,neutral,,"multi\nline"\n'
        "556,bearish,,\n"  # unknown post without text
        "557,2,sideways,hello\n"  # bad split
    )
    report = import_file(filled, path, split="val", image_dir=settings.image_dir)
    assert [p.split(":")[0] for p in report.problems] == ["labels.csv line 5", "labels.csv line 6"]
    assert report.labels == {"human": 2}
    row = filled.execute("SELECT text FROM posts WHERE post_no = 100").fetchone()
    assert row == ("WAGMI bros",)
    splits = filled.execute(
        "SELECT p.post_no, l.split FROM labels l JOIN posts p ON p.id = l.post_id WHERE l.labeler = 'human:import'"
        " ORDER BY 1").fetchall()
    assert splits == [(100, "train"), (555, "val")]


def test_local_image_path_is_cached_and_missing_file_reported(db, settings, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png((10, 200, 10)))
    path = tmp_path / "posts.csv"
    path.write_text("post_no,text,image_path\n1,green,imgs/a.png\n2,gone,imgs/nope.png\n")
    report = import_file(db, path, image_dir=settings.image_dir)
    assert report.images_cached == 1 and report.posts_new == 2
    rows = dict(db.execute("SELECT p.post_no, i.status FROM posts p JOIN images i ON i.id = p.image_id").fetchall())
    assert rows == {1: "ok", 2: "missing"}
    assert any("line 3" in p and "nope.png" in p for p in report.problems)
    thumb = db.execute("SELECT thumb_path FROM images WHERE status = 'ok'").fetchone()[0]
    assert Path(thumb).exists() and Path(thumb).is_relative_to(settings.image_dir)


def test_missing_and_unknown_files_are_one_line_errors(db, tmp_path):
    with pytest.raises(BizsentError, match="not found") as err:
        import_file(db, tmp_path / "missing.jsonl")
    assert "\n" not in str(err.value)
    odd = tmp_path / "notes.txt"
    odd.write_text("hello there\nnothing tabular\n")
    with pytest.raises(BizsentError, match="cannot tell the format") as err:
        import_file(db, odd)
    assert "\n" not in str(err.value)
    assert db.execute("SELECT count(*) FROM posts").fetchone()[0] == 0


def test_format_is_detected_from_content_without_extension(db, settings, tmp_path):
    as_jsonl, as_csv = tmp_path / "dump1", tmp_path / "dump2"
    as_jsonl.write_text(json.dumps({"post_no": 1, "text": "a"}) + "\n")
    as_csv.write_text("post_no,text\n2,b\n")
    assert import_file(db, as_jsonl, image_dir=settings.image_dir).format == "jsonl"
    assert import_file(db, as_csv, image_dir=settings.image_dir).format == "csv"
    scraper = make_scraper_db(tmp_path / "scraper.bin", [op(3)], None)
    assert import_file(db, scraper, image_dir=settings.image_dir).format == "sqlite"
    assert db.execute("SELECT count(*) FROM posts").fetchone()[0] == 3


# ---- the user's old scraper database ----

def test_scraper_db_with_both_tables(db, settings, tmp_path):
    ops = [op(1001, subject="BTC", op_text_clean=""), op(1002, source="warosu",
           image_url="https://warosu.org/data/biz/img/0001/1002.jpg"), op(1003, image_url=None)]
    labels = [
        label(1001, 3), label(1001, 1, labeler_id="friend", notes="sarcastic wagmi"),
        label(1002, 2, skipped=1, notes="image broken"),
        label(1003, None),  # a rating left empty
        label(2000, 1, text_snapshot="it's over", image_url_snapshot="https://i.4cdn.org/biz/2000.jpg",
              labeler_id=None),
        label(2001, 2),  # no thread, no snapshot
    ]
    path = make_scraper_db(tmp_path / "old.db", ops, labels)
    report = import_file(db, path, image_dir=settings.image_dir)

    assert report.format == "sqlite" and report.posts_new == 4
    assert report.labels == {"human": 3} and report.skips == 1 and report.notes == 1
    assert report.rows_skipped == 2
    assert [p.split(":")[0] for p in report.problems] == [
        "old.db training_labels row 4 (thread 1003)", "old.db training_labels row 6 (thread 2001)"]

    posts = {row[0]: row[1:] for row in db.execute(
        "SELECT post_no, thread_no, is_op, source, text, time, subject FROM posts")}
    assert posts[1001] == (1001, 1, "import", "post 1001\n>greentext", 1709294400, "BTC")  # text from HTML
    assert posts[1002][2] == "archive" and posts[2000][3] == "it's over"
    assert posts[1003][2] == "import"
    assert labels_of(db) == [
        ("biz", 1001, "bearish", "human", "human:friend", "test", None, 0, 0, None),
        ("biz", 1001, "bullish", "human", "human:me", "test", None, 0, 0, None),
        ("biz", 2000, "bearish", "human", "human:import", "test", None, 0, 0, None),
    ]
    skip = db.execute("SELECT p.post_no, s.reason FROM skips s JOIN posts p ON p.id = s.post_id").fetchall()
    assert skip == [(1002, "image broken")]
    note = db.execute("SELECT p.post_no, n.text FROM notes n JOIN posts p ON p.id = n.post_id").fetchall()
    assert note == [(1001, "sarcastic wagmi")]
    images = dict(db.execute("SELECT url, status FROM images").fetchall())
    assert images == {"https://i.4cdn.org/biz/1001.jpg": "pending",
                      "https://warosu.org/data/biz/img/0001/1002.jpg": "pending",
                      "https://i.4cdn.org/biz/2000.jpg": "pending"}
    assert report.images_queued == 3
    md5 = db.execute("SELECT md5, width FROM images WHERE url LIKE '%1001.jpg'").fetchone()
    assert md5 == ("abc==", 800)

    again = import_file(db, path, image_dir=settings.image_dir)  # re-import: nothing doubles
    assert again.posts_new == 0 and again.notes == 0
    assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM notes").fetchone()[0] == 1


def test_scraper_db_split_option(db, settings, tmp_path):
    path = make_scraper_db(tmp_path / "old.db", [op(1)], [label(1, 2)])
    import_file(db, path, split="train", image_dir=settings.image_dir)
    assert db.execute("SELECT split FROM labels").fetchall() == [("train",)]


def test_scraper_db_with_only_thread_ops(db, settings, tmp_path):
    path = make_scraper_db(tmp_path / "old.db", [op(1), op(2, op_text_clean=None, op_text="a &amp; b<wbr>c")], None)
    report = import_file(db, path, image_dir=settings.image_dir)
    assert report.posts_new == 2 and report.labels == {} and report.problems == []
    assert db.execute("SELECT text FROM posts WHERE post_no = 2").fetchone() == ("a & bc",)


def test_scraper_db_with_only_training_labels(db, settings, tmp_path):
    path = make_scraper_db(tmp_path / "old.db", None, [
        label(5, 3, text_snapshot="up only", image_url_snapshot="https://i.4cdn.org/biz/5.png"),
        label(6, 1)])
    report = import_file(db, path, image_dir=settings.image_dir)
    assert report.posts_new == 1 and report.labels == {"human": 1} and report.rows_skipped == 1
    assert "thread 6" in report.problems[0] and "text_snapshot" in report.problems[0]


def test_scraper_db_without_known_tables_is_refused(db, settings, tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(BizsentError, match="thread_ops or training_labels"):
        import_file(db, path, image_dir=settings.image_dir)


def test_ten_point_scale_is_refused_under_auto_and_mapped_when_named(db, settings, tmp_path):
    ops = [op(n) for n in range(1, 11)] + [op(11)]
    labels = [label(n, n) for n in range(1, 11)] + [label(11, 12)]
    path = make_scraper_db(tmp_path / "old.db", ops, labels)
    with pytest.raises(BizsentError) as err:
        import_file(db, path, image_dir=settings.image_dir)
    message = str(err.value)
    assert "\n" not in message and "--scale 10" in message and "7-10 bullish" in message
    assert db.execute("SELECT count(*) FROM posts").fetchone()[0] == 0  # refused before writing anything

    report = import_file(db, path, scale="10", image_dir=settings.image_dir)
    got = dict(db.execute("SELECT p.post_no, l.label FROM labels l JOIN posts p ON p.id = l.post_id").fetchall())
    assert got == {**dict.fromkeys(range(1, 5), "bearish"), 5: "neutral", 6: "neutral",
                   **dict.fromkeys(range(7, 11), "bullish")}
    assert report.rows_skipped == 1 and "sentiment_rating 12" in report.problems[0]


def test_five_point_scale(db, settings, tmp_path):
    path = make_scraper_db(tmp_path / "old.db", [op(n) for n in range(1, 6)], [label(n, n) for n in range(1, 6)])
    with pytest.raises(BizsentError, match="--scale 5"):
        import_file(db, path, image_dir=settings.image_dir)
    import_file(db, path, scale="5", image_dir=settings.image_dir)
    got = [row[0] for row in db.execute(
        "SELECT l.label FROM labels l JOIN posts p ON p.id = l.post_id ORDER BY p.post_no")]
    assert got == ["bearish", "bearish", "neutral", "bullish", "bullish"]
    with pytest.raises(BizsentError, match="--scale 4"):
        import_file(db, path, scale="4", image_dir=settings.image_dir)


def test_three_point_scale_is_read_directly(db, settings, tmp_path):
    path = make_scraper_db(tmp_path / "old.db", [op(1), op(2), op(3)], [label(1, 1), label(2, 2), label(3, 3),
                                                                       label(3, 0, labeler_id="x")])
    report = import_file(db, path, image_dir=settings.image_dir)
    got = [row[0] for row in db.execute(
        "SELECT l.label FROM labels l JOIN posts p ON p.id = l.post_id ORDER BY p.post_no")]
    assert got == ["bearish", "neutral", "bullish"]
    assert report.rows_skipped == 1 and "sentiment_rating 0" in report.problems[0]


# ---- through the command line, as the user runs it ----

def test_cli_import_of_missing_file_is_one_line_exit_one(tmp_path):
    result = subprocess.run([str(BIZSENT), "--db", str(tmp_path / "x.db"), "import", str(tmp_path / "missing.jsonl")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "missing.jsonl" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_import_reports_problems_on_stderr_and_summary_on_stdout(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"post_no": 1, "text": "ok", "label": "bullish"}) + "\n" + json.dumps({"post_no": 2})
                    + "\n")
    result = subprocess.run([str(BIZSENT), "--db", str(tmp_path / "x.db"), "import", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "in.jsonl line 2: missing text (and no html or image); row left out"
    assert "1 new posts" in result.stdout and "human 1" in result.stdout


# ---- faults: all or nothing, short write transactions, edge values ----

def test_cli_import_with_an_unwritable_image_cache_writes_nothing_and_says_so_in_one_line(tmp_path):
    db_file = tmp_path / "data" / "x.db"
    open_db(db_file).close()
    (tmp_path / "data" / "images").write_text("a file where the image folder should be")  # root-proof "unwritable"
    rows = []
    for no in (1, 2, 3):
        (tmp_path / f"{no}.png").write_bytes(png((no * 40, 10, 10)))
        rows.append({"post_no": no, "text": f"post {no}", "image_path": f"{no}.png", "label": "bullish"})
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = subprocess.run([str(BIZSENT), "--db", str(db_file), "import", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "cannot write the image cache" in result.stderr and "nothing was imported" in result.stderr
    db = open_db(db_file)
    assert db.execute("SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM labels)").fetchone() == (0, 0)


def test_a_writer_never_waits_long_while_an_import_caches_many_images(db, settings, tmp_path):
    rows = []
    for no in range(25):  # large pictures: decoding and thumbnailing them takes seconds in all
        Image.new("RGB", (1600, 1600), (no * 9, 100, 50)).save(tmp_path / f"{no}.png")
        rows.append({"post_no": no + 1, "text": f"post {no}", "image_path": f"{no}.png", "label": "neutral"})
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    probe, done, waits = open_db(settings.db_path), threading.Event(), []

    def write_now_and_then():  # what a labeling job does: short write transactions, all the time
        while not done.is_set():
            started = time.monotonic()
            probe.execute("BEGIN IMMEDIATE")
            waits.append(time.monotonic() - started)
            probe.execute("COMMIT")
            time.sleep(0.01)

    thread = threading.Thread(target=write_now_and_then)
    thread.start()
    started = time.monotonic()
    try:
        report = import_file(db, path, image_dir=settings.image_dir)
    finally:
        done.set()
        thread.join()
    took = time.monotonic() - started
    assert report.images_cached == 25 and report.labels == {"human": 25}
    # Before the fix the probe waited for the whole image pass (about `took`); now only for one short commit.
    assert max(waits) < min(0.5, took / 3), (max(waits), took)


def test_out_of_range_and_wrongly_typed_values_are_row_errors_and_good_rows_import(db, settings, tmp_path):
    path = tmp_path / "edge.jsonl"
    path.write_text(
        json.dumps({"post_no": 2**70, "text": "huge number"}) + "\n"
        + '{"post_no": 2, "text": "infinite time", "time": Infinity}\n'
        + json.dumps({"post_no": 3, "text": ["a", "list"]}) + "\n"
        + json.dumps({"post_no": 4, "text": "fine", "time": 1_700_000_000, "subject": 42}) + "\n"
    )
    report = import_file(db, path, image_dir=settings.image_dir)
    assert report.posts_new == 1 and report.rows_skipped == 3
    assert report.problems[0].startswith("edge.jsonl line 1: post_no 1180591620717411303424 is too large")
    assert report.problems[1].startswith("edge.jsonl line 2: time inf is not a time")
    assert report.problems[2].startswith("edge.jsonl line 3: text must be text, not a list")
    assert db.execute("SELECT post_no, subject FROM posts").fetchall() == [(4, "42")]  # numbers are text as written


def test_csv_with_an_unclosed_quote_is_refused_naming_the_line(db, settings, tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text('post_no,text,label\n1,fine,bullish\n2,"never closed,bearish\n3,swallowed,neutral\n')
    with pytest.raises(BizsentError, match="quote.csv line 3: not valid CSV") as err:
        import_file(db, path, image_dir=settings.image_dir)
    assert "\n" not in str(err.value)
    assert db.execute("SELECT count(*) FROM posts").fetchone()[0] == 0


def test_csv_row_with_extra_cells_is_a_row_error(db, settings, tmp_path):
    path = tmp_path / "extra.csv"
    path.write_text("post_no,text,label\n1,fine,bullish\n2,a, b,bearish\n")
    report = import_file(db, path, image_dir=settings.image_dir)
    assert report.posts_new == 1
    assert report.problems == ["extra.csv line 3: 4 cells, the header has 3; row left out"]


def test_cli_import_where_every_row_is_bad_exits_one_in_one_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"post_no": 1}) + "\n" + json.dumps({"post_no": "x", "text": "t"}) + "\n")
    result = subprocess.run([str(BIZSENT), "--db", str(tmp_path / "x.db"), "import", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "nothing imported" in result.stderr and "all 2 rows are bad" in result.stderr
