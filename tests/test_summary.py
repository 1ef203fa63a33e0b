"""`bizsent status`: the numbers on a small known database, and the JSON the CLI prints."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from bizsent.core.collect.images import Cached, cache_image, record
from bizsent.core.store import now
from bizsent.core.store.posts import add_note, add_skip, post_id, save_posts, set_label
from bizsent.core.store.records import ImageRef, NewLabel, NewPost
from bizsent.core.store.summary import render_summary, summarize
from bizsent.jobs.views import status_counts
from PIL import Image

BIZSENT = Path(sys.executable).with_name("bizsent")


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 200, 30)).save(out, "PNG")
    return out.getvalue()


def fill(db, image_dir: Path) -> None:
    save_posts(db, [
        NewPost("biz", 1, 1, "moon", is_op=True, image=ImageRef("u1")),
        NewPost("biz", 1, 2, "rekt", image=ImageRef("u2")),
        NewPost("biz", 1, 3, "", image=ImageRef("u3")),  # no text: not a candidate
        NewPost("biz", 4, 4, "text only", is_op=True, source="import"),
        NewPost("biz", 4, 5, "pending image", image=ImageRef("u5"), source="import"),
    ])
    ok = cache_image(image_dir, png())
    for url in ("u1", "u2", "u3"):
        record(db, db.execute("SELECT id FROM images WHERE url = ?", [url]).fetchone()[0], ok)
    record(db, db.execute("SELECT id FROM images WHERE url = 'u5'").fetchone()[0], Cached("corrupt", "bad"))
    one, two = post_id(db, "biz", 1), post_id(db, "biz", 2)
    set_label(db, one, NewLabel("bullish", "human", split="test", labeler="human:me"))
    set_label(db, two, NewLabel("bearish", "human", split="train", labeler="human:me"))
    set_label(db, one, NewLabel("bullish", "api", labeler="openai:m"))
    set_label(db, two, NewLabel("neutral", "api", labeler="openai:m"))
    add_note(db, one, "note")
    add_skip(db, two, "spam")
    stamp = now()
    db.execute("INSERT INTO api_calls (request_key, provider, model, usd, created_at) VALUES ('k', 'openai', 'm',"
               " 0.25, ?), ('k2', 'openai', 'm', 0.5, ?)", [stamp, stamp])
    db.execute("INSERT INTO pods (pod_id, name, total_usd, created_at) VALUES ('p', 'bizsent-1', 1.25, ?)", [stamp])
    # a live job (fresh heartbeat, this process) and a killed one (its heartbeat stopped long ago)
    db.execute("INSERT INTO jobs (kind, state, created_at, heartbeat_at, pid) VALUES ('scrape', 'done', ?, NULL, NULL),"
               " ('label', 'running', ?, ?, ?), ('train', 'running', ?, '2020-01-01T00:00:00+00:00', NULL),"
               " ('label', 'done', ?, NULL, NULL)", [stamp, stamp, stamp, os.getpid(), stamp, stamp])


def test_summary_numbers(db, settings):
    fill(db, settings.image_dir)
    summary = summarize(db, settings.image_dir, status_counts(db))
    assert summary["posts"] == 5 and summary["candidates"] == 2 and summary["unlabeled_candidates"] == 0
    assert summary["posts_by_source"] == {"import": 2, "live": 3}
    assert summary["images"] == {"corrupt": 1, "ok": 3}
    assert summary["labels"] == {
        "human": {"total": 2, "by_split": {"test": 1, "train": 1}, "by_label": {"bullish": 1, "bearish": 1}},
        "openai": {"total": 2, "by_split": {"unassigned": 2}, "by_label": {"bullish": 1, "neutral": 1}},
    }
    files = [p for p in settings.image_dir.rglob("*") if p.is_file()]
    assert len(files) == 2 and summary["disk_bytes"] == sum(p.stat().st_size for p in files)
    assert summary["spend_usd"] == 2.0 and summary["spend"] == {"api_usd": 0.75, "pods_usd": 1.25}
    assert summary["jobs"] == {"dead": 1, "done": 2, "running": 1}
    assert (summary["skips"], summary["notes"]) == (1, 1)
    json.dumps(summary)  # the CLI prints it as JSON

    text = render_summary(summary)
    assert "$2.00" in text and "human" in text and "test 1, train 1" in text and "corrupt 1" in text


def test_summary_of_empty_database(db, tmp_path):
    summary = summarize(db, tmp_path / "no-images-yet", status_counts(db))
    assert (summary["posts"], summary["images"], summary["labels"], summary["disk_bytes"]) == (0, {}, {}, 0)
    assert summary["spend_usd"] == 0 and "none yet" in render_summary(summary)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIZSENT), *args], capture_output=True, text=True, timeout=120)


def test_cli_status_json_after_demo(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[data]\ndir = "data"\n[images]\nread_text = false\n')  # no background image-text job
    db = tmp_path / "data" / "demo.db"
    seeded = run("--config", str(cfg), "--db", str(db), "demo", "--no-tui", "--posts", "40")
    assert seeded.returncode == 0, seeded.stderr
    assert "40 posts" in seeded.stdout

    result = run("--config", str(cfg), "--db", str(db), "status", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # exactly one JSON object
    assert summary["posts"] == 40 and summary["images"]["ok"] > 30 and summary["images"]["corrupt"] == 1
    assert set(summary["labels"]) <= {"human", "openai", "gemini"} and "openai" in summary["labels"]
    assert summary["disk_bytes"] > 0 and (tmp_path / "data" / "images").is_dir()

    plain = run("--config", str(cfg), "--db", str(db), "status")
    assert plain.returncode == 0 and "posts      40" in plain.stdout


def test_cli_status_without_database_is_one_line_error(tmp_path):
    result = run("--db", str(tmp_path / "none.db"), "status")
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
