"""The real ingestion code against a fake 4chan on 127.0.0.1, with a fake clock so the 1 req/s limit is free."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bizsent.core.collect.fourchan import FourChanClient, threads_url
from bizsent.core.collect.ingest import scrape
from bizsent.core.collect.video import first_frame
from bizsent.core.config import Settings
from bizsent.core.store.posts import save_posts
from bizsent.core.store.records import ImageRef, NewPost
from fakes.fourchan import FakeClock, FakeFourChan, File, biz_scenario, jpeg, png, post
from PIL import Image

ALL_POSTS = 16  # biz_scenario with the archive: 10 + 4 live posts, 2 archived; thread 3001 404s
LIVE_POSTS = 14


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock):
    with FakeFourChan(clock=clock.now) as server:
        biz_scenario(server)
        yield server


@pytest.fixture
def cfg(settings: Settings, fake: FakeFourChan) -> Settings:
    settings.scrape.api_base = fake.url
    settings.scrape.image_base = fake.url
    return settings


def image_of(db, post_no: int) -> dict:
    return next(db.query("SELECT i.* FROM posts p JOIN images i ON i.id = p.image_id WHERE p.post_no = ?",
                         [post_no]))


def text_of(db, post_no: int) -> str:
    return db.execute("SELECT text FROM posts WHERE post_no = ?", [post_no]).fetchone()[0]


def test_scrape_stores_posts_clean_text_and_image_outcomes(db, cfg: Settings, clock: FakeClock,
                                                          fake: FakeFourChan) -> None:
    report = scrape(db, cfg, include_archive=True, clock=clock)

    assert db.execute("SELECT count(*) FROM posts").fetchone()[0] == ALL_POSTS
    assert (report.threads_seen, report.threads_fetched, report.threads_gone) == (4, 3, 1)
    assert report.posts_new == ALL_POSTS and report.problems == []
    op = next(db.query("SELECT * FROM posts WHERE post_no = 1001"))
    assert op["is_op"] == 1 and op["thread_no"] == 1001 and op["subject"] == "Bitcoin & friends"
    assert op["text"] == ">be me\nBTC to 100kk?"
    assert op["html"].startswith('<span class="quote">&gt;be me</span>')
    assert text_of(db, 1002) == ">>1001\nwagmi"
    assert text_of(db, 2002) == "it's over"
    assert text_of(db, 2003) == ">>>/g/56 see"
    assert text_of(db, 2004) == "rugpull soon\n>>999"
    assert next(db.query("SELECT thread_no, is_op FROM posts WHERE post_no = 1003")) == {
        "thread_no": 1001, "is_op": 0}

    expected = {1001: "ok", 1002: "ok", 1004: "ok", 1005: "corrupt", 1006: "corrupt", 1007: "corrupt",
                1008: "missing", 1009: "ok", 2001: "ok", 2002: "ok", 4001: "ok"}
    for no, status in expected.items():
        assert image_of(db, no)["status"] == status, no
    assert "truncated" in image_of(db, 1005)["reason"]
    assert "0 bytes" in image_of(db, 1006)["reason"]
    assert "web page" in image_of(db, 1007)["reason"]
    assert "404" in image_of(db, 1008)["reason"]
    gif = image_of(db, 1009)
    assert gif["mime"] == "image/gif" and Path(gif["path"]).exists() and Path(gif["thumb_path"]).exists()
    with Image.open(gif["thumb_path"]) as thumb:
        assert thumb.size == (32, 32)  # the first frame of the animation
    webm = image_of(db, 1010)
    assert webm["status"] == "ok" and webm["mime"] == "image/png"  # its first frame, as a still
    with Image.open(webm["path"]) as still:
        assert still.size == (32, 24) and still.getpixel((5, 5))[0] > 150  # the red first frame
    assert report.images_ok == 8 and report.images_corrupt == 3
    assert report.images_missing == 1

    states = dict(db.execute("SELECT thread_no, state FROM threads").fetchall())
    assert states == {1001: "live", 2001: "live", 3001: "gone", 4001: "archived"}
    # candidates: image ok and text: 1001, 1002, 1009, 1010, 2001, 2002, 4001 (1004 has no text)
    assert report.candidates == 7
    assert report.posts_without_image == 4  # 1003, 2003, 2004, 4002
    assert report.posts_without_text == 1  # 1004
    assert "7 labeling candidates" in report.summary()


def test_every_request_respects_the_rate_limit(db, cfg: Settings, clock: FakeClock, fake: FakeFourChan) -> None:
    cfg.scrape.requests_per_second = 0.5
    scrape(db, cfg, include_archive=True, clock=clock)
    with FourChanClient(cfg.scrape, clock) as client:
        client.limiter.done()  # as if a request just finished: the next one must wait
        assert client.get(threads_url(cfg.scrape)).json()[0]["threads"][0]["last_modified"] > 0

    times = [r.t for r in fake.requests()]
    assert len(times) >= 15  # listings, threads and images all go through the same limiter
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 2.0 - 1e-9
    assert sum(clock.sleeps) >= 2.0 * (len(times) - 2)


def test_second_run_is_incremental_and_updated_threads_are_refetched(
        db, cfg: Settings, clock: FakeClock, fake: FakeFourChan) -> None:
    scrape(db, cfg, clock=clock)
    first = len(fake.requests())

    again = scrape(db, cfg, clock=clock)
    assert [r.status for r in fake.requests()[first:]] == [304]  # only the catalog, answered 304
    assert again.posts_new == 0 and again.catalog_unchanged

    fake.add_reply(2001, fake.add_file(post(2005, 2001, "new reply", at=1_800_000_000), jpeg((5, 5, 5))))
    third = scrape(db, cfg, clock=clock)
    thread_requests = [r.path for r in fake.requests("/thread/")]
    assert thread_requests.count("/biz/thread/2001.json") == 2
    assert thread_requests.count("/biz/thread/1001.json") == 1  # unchanged in the catalog: no request
    assert (third.threads_fetched, third.posts_new, third.posts_skipped) == (1, 1, 4)
    assert third.images_ok == 1
    assert db.execute("SELECT count(*) FROM posts").fetchone()[0] == LIVE_POSTS + 1


def test_if_modified_since_304_skips_parsing(db, cfg: Settings, clock: FakeClock, fake: FakeFourChan) -> None:
    scrape(db, cfg, clock=clock, download_images=False)
    fake.catalog_bumps[1001] = 1_900_000_000  # the catalog moves, the thread itself does not

    report = scrape(db, cfg, clock=clock, download_images=False)
    hit = fake.requests("/thread/1001.json")[-1]
    assert hit.status == 304 and hit.if_modified_since
    assert report.threads_unchanged == 3 and report.threads_fetched == 0
    assert report.posts_skipped == 0 and report.posts_new == 0  # nothing re-parsed

    fake.catalog_bumps[2001] = 1_900_000_001
    scrape(db, cfg, clock=clock, download_images=False)
    assert len(fake.requests("/thread/1001.json")) == 2  # its new catalog stamp was remembered


def test_interrupted_run_resumes_without_duplicates(db, cfg: Settings, clock: FakeClock,
                                                    fake: FakeFourChan) -> None:
    def stop_after_first_stored_thread(line: str) -> None:
        if " new, " in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scrape(db, cfg, include_archive=True, clock=clock, progress=stop_after_first_stored_thread)
    partial = db.execute("SELECT count(*) FROM posts").fetchone()[0]
    assert 0 < partial < ALL_POSTS

    report = scrape(db, cfg, include_archive=True, clock=clock)
    assert report.posts_new == ALL_POSTS - partial
    assert db.execute("SELECT count(*), count(DISTINCT post_no) FROM posts").fetchone() == (ALL_POSTS, ALL_POSTS)
    assert len(fake.requests("/thread/2001.json")) == 1  # finished before the interruption: not fetched again
    assert report.images_ok == 8

    # Killed between storing posts and marking the thread: the next run fetches it again, stores nothing twice.
    db.execute("DELETE FROM threads")
    db.execute("DELETE FROM http_cache")
    redo = scrape(db, cfg, include_archive=True, clock=clock)
    assert redo.posts_new == 0 and redo.posts_skipped == ALL_POSTS
    assert db.execute("SELECT count(*) FROM posts").fetchone()[0] == ALL_POSTS


def test_corrupt_images_are_retried_after_the_retry_window(db, cfg: Settings, clock: FakeClock,
                                                           fake: FakeFourChan) -> None:
    scrape(db, cfg, clock=clock)
    assert image_of(db, 1005)["status"] == "corrupt"

    soon = scrape(db, cfg, clock=clock, images_only=True)
    assert soon.images_corrupt == 0 and image_of(db, 1005)["attempts"] == 1  # inside the window: left alone

    good = jpeg((10, 10, 200))
    fake.files[f"/biz/{1005123}.jpg"] = File(200, good)
    cfg.scrape.retry_failed_after_min = 0
    later = scrape(db, cfg, clock=clock, images_only=True)
    assert not fake.requests("catalog.json")[1:], "images_only does not touch the catalog"
    fixed = image_of(db, 1005)
    assert fixed["status"] == "ok" and fixed["attempts"] == 2 and fixed["reason"] is None
    assert image_of(db, 1006)["attempts"] == 2 and image_of(db, 1006)["status"] == "corrupt"
    assert image_of(db, 1008)["attempts"] == 1  # missing (404) is final
    assert (later.images_ok, later.images_corrupt) == (1, 2)
    assert later.candidates == 7  # 1005 has text and now a good image


def test_server_errors_are_retried_then_reported(db, cfg: Settings, clock: FakeClock,
                                                 fake: FakeFourChan) -> None:
    fake.fail["/biz/thread/2001.json"] = 2  # recovers on the third attempt
    fake.fail["/biz/thread/1001.json"] = 10  # stays down for this run
    report = scrape(db, cfg, clock=clock, download_images=False)

    assert report.threads_fetched == 1 and report.threads_failed == 1
    assert report.problems == ["thread 1001: server answered HTTP 503 (3 attempts)"]
    assert 2.0 in clock.sleeps and 4.0 in clock.sleeps  # exponential backoff between attempts
    assert "1 problem(s)" in report.summary()

    fake.fail.clear()
    retry = scrape(db, cfg, clock=clock, download_images=False)
    assert retry.threads_fetched == 1 and retry.posts_new == 10 and not retry.catalog_unchanged


def test_timeouts_and_connection_errors_do_not_crash(db, cfg: Settings, fake: FakeFourChan) -> None:
    cfg.scrape.timeout_s = 0.2
    fake.delay[f"/biz/{1001123}.jpg"] = 1.0
    report = scrape(db, cfg, clock=FakeClock())
    slow = image_of(db, 1001)
    assert slow["status"] == "pending" and slow["reason"].startswith("timed out after 0.2s")
    assert report.images_failed == 1 and report.images_pending == 1

    cfg.scrape.api_base = "http://127.0.0.1:9"  # nothing listens there
    down = scrape(db, cfg, clock=FakeClock(), download_images=False)
    assert down.problems and down.problems[0].startswith("catalog.json: connection failed")


def test_images_only_fetches_imported_urls_and_refuses_big_files(db, cfg: Settings, clock: FakeClock,
                                                                 fake: FakeFourChan) -> None:
    fake.files["/mirror/biz/a.jpg"] = File(200, jpeg((1, 200, 1)))
    fake.files["/mirror/biz/big.png"] = File(200, png(size=(600, 600)) + bytes(300_000))
    save_posts(db, [
        NewPost("biz", 7, 7, "imported", image=ImageRef(url=f"{fake.url}/mirror/biz/a.jpg", md5="not-checked")),
        NewPost("biz", 7, 8, "big one", image=ImageRef(url=f"{fake.url}/mirror/biz/big.png")),
    ])
    cfg.scrape.image_base = "https://i.4cdn.org"  # mirror URLs are not 4chan's: their md5 is not enforced
    cfg.scrape.max_image_mb = 0.25
    report = scrape(db, cfg, clock=clock, images_only=True)

    assert [r.path for r in fake.requests()] == ["/mirror/biz/big.png", "/mirror/biz/a.jpg"]
    assert image_of(db, 7)["status"] == "ok"
    big = image_of(db, 8)
    assert big["status"] == "corrupt" and "max_image_mb" in big["reason"]
    assert report.candidates == 1


def test_cli_scrape_end_to_end(tmp_path: Path, fake: FakeFourChan) -> None:
    env = dict(os.environ, BIZSENT_SCRAPE__API_BASE=fake.url, BIZSENT_SCRAPE__IMAGE_BASE=fake.url,
               BIZSENT_DATA__DIR=str(tmp_path / "data"))
    db_file = tmp_path / "x.db"
    out = subprocess.run(
        [sys.executable, "-c", "from bizsent.cli import main; main()", "--db", str(db_file), "scrape", "--no-images",
         "--max-threads", "2"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "posts: 4 new" in out.stdout and "1 gone" in out.stdout  # 3001 (404), then 2001
    assert "thread 2001 [2/3]" in out.stderr and "stopping at max_threads" in out.stderr  # progress: stderr
    assert [r.path for r in fake.requests()] == ["/biz/catalog.json", "/biz/thread/3001.json",
                                                 "/biz/thread/2001.json"]


def test_a_webm_that_is_only_a_header_is_corrupt_not_a_crash() -> None:
    stub = bytes.fromhex("1a45dfa3") + b"\x42\x86\x81\x01" + b"webm" + bytes(64)  # EBML magic, no content
    frame, status, reason = first_frame(stub)
    assert frame is None and status == "corrupt" and "webm" in reason


# ---- one rate limit per data folder, across processes ----

def _gaps(times: list[float]) -> list[float]:
    times = sorted(times)
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_two_scrapes_at_once_share_one_rate_limit(tmp_path: Path) -> None:
    with FakeFourChan() as server:  # real clock: the requests come from two processes
        biz_scenario(server)
        for no in (1001, 2001, 3001):  # slow answers: the two processes are surely in flight together
            server.delay[f"/biz/thread/{no}.json"] = 0.4
        server.delay["/biz/catalog.json"] = 0.4
        env = dict(os.environ, BIZSENT_SCRAPE__API_BASE=server.url, BIZSENT_SCRAPE__IMAGE_BASE=server.url)
        command = [sys.executable, "-c", "from bizsent.cli import main; main()", "--db", str(tmp_path / "x.db"),
                   "scrape", "--no-images", "--max-threads", "1"]
        procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        times = [r.t for r in server.requests()]
    assert len(times) >= 3
    assert min(_gaps(times)) >= 0.95, _gaps(times)  # 1 request/second, the default and the API's rule


def test_a_restarted_scrape_waits_for_the_last_request_of_the_one_before(db, settings: Settings) -> None:
    with FakeFourChan() as server:  # real clock, real limiter: each run starts a new client, as a new process does
        for n in (1, 2):
            server.files[f"/biz/{n}.jpg"] = File(200, jpeg((n, 2, 3)))
        settings.scrape.image_base = server.url
        for n in (1, 2):
            save_posts(db, [NewPost("biz", n, n, "x", image=ImageRef(url=f"{server.url}/biz/{n}.jpg"))])
            assert scrape(db, settings, images_only=True).images_ok == 1
        times = [r.t for r in server.requests()]
    assert len(times) == 2 and _gaps(times)[0] >= 0.95  # what the data folder remembers of the first run


# ---- network failures versus corrupt files ----

def test_images_that_failed_on_the_network_are_retried_by_the_next_run(db, cfg: Settings, clock: FakeClock,
                                                                       fake: FakeFourChan) -> None:
    fake.fail[f"/biz/{1001123}.jpg"] = 10  # 503 on every attempt of this run
    first = scrape(db, cfg, clock=clock)
    failed = image_of(db, 1001)
    assert failed["status"] == "pending" and "503" in failed["reason"] and failed["attempts"] == 1
    assert first.images_failed == 1 and image_of(db, 1005)["status"] == "corrupt"
    assert "1 failed on the network (retried by the next run)" in first.summary()
    assert "3 corrupt (retried after 60 min" in first.summary()

    fake.fail.clear()
    again = scrape(db, cfg, clock=clock, images_only=True)  # at once: well inside the 60-minute window
    assert image_of(db, 1001)["status"] == "ok" and again.images_ok == 1
    assert again.images_corrupt == 0  # corrupt files still wait for the window


def test_image_pass_stops_when_the_network_is_down(db, cfg: Settings, clock: FakeClock, fake: FakeFourChan) -> None:
    scrape(db, cfg, clock=clock, download_images=False)
    cfg.scrape.image_base = "http://127.0.0.1:9"  # nothing listens there
    db.execute("UPDATE images SET url = replace(url, ?, ?)", [fake.url, cfg.scrape.image_base])
    report = scrape(db, cfg, clock=clock, images_only=True)
    assert report.images_failed == 5 and report.images_stopped == 6
    assert "6 left for the next run" in report.summary()
