"""Issue 9 §1-6: claims, caps across processes, requests of unknown fate, dead servers, budget messages.

CLI tests run `bizsent` as the user does (subprocesses, several at once) against the fake servers; the rest
run the real SDKs in-process against them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.costs import render_costs
from bizsent.core.label import budget, ledger, planning
from bizsent.core.label.budget import BudgetError, check_caps
from bizsent.core.store import open_db
from bizsent.jobs import batches, labeling, rows
from fakes.gemini_server import FakeGemini
from fakes.gemini_server import make_handler as gemini_handler
from fakes.label_posts import FAKE_CONFIG, gemini_store, make_posts
from fakes.openai_server import FakeOpenAI, Server

BIZSENT = Path(sys.executable).with_name("bizsent")
ENV = {**os.environ, "OPENAI_API_KEY": "sk-test", "GEMINI_API_KEY": "gm-test"}


def config(tmp_path: Path, url: str, extra: str = "", openai_extra: str = "") -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(FAKE_CONFIG + '[prices."gpt-fake2"]\ninput_per_mtok = 0.25\noutput_per_mtok = 2.0\n'
                   f"[labeling]\nmax_retries = 2\n{extra}"
                   f'[labeling.openai]\nbase_url = "{url}"\nmodel = "gpt-fake"\nconcurrency = 4\n'
                   f"requests_per_minute = 60000\n{openai_extra}", encoding="utf-8")
    return cfg


def start(cfg: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIZSENT), "--config", str(cfg), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def bizsent(cfg: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIZSENT), "--config", str(cfg), *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


@pytest.fixture
def fake(fake_openai):
    fake_openai.latency_s = 0.05
    return fake_openai


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("GEMINI_API_KEY", "gm-test")


def world(tmp_path: Path, url: str, n: int, extra: str = "", openai_extra: str = ""):
    cfg = config(tmp_path, url, extra, openai_extra)
    settings = load_settings(cfg, environ={})
    db = open_db(settings.db_path)
    ids = make_posts(db, settings.image_dir, n)
    return cfg, settings, db, ids


def paid_twice(fake: FakeOpenAI) -> dict[str, int]:
    return {k: n for k, n in Counter(fake.billed_keys()).items() if n > 1}


def labeled(db) -> int:
    return db.execute("SELECT count(DISTINCT post_id) FROM labels"
                      " WHERE source = 'api' AND labeler LIKE 'openai:%'").fetchone()[0]


# -- §1 two runs at once ---------------------------------------------------------------------------------------

def test_two_runs_at_once_pay_once_per_post(tmp_path, fake):
    fake.latency_s = 0.3  # each run sends for about 3 s, so the two overlap even on a loaded machine
    cfg, settings, db, ids = world(tmp_path, fake.url, 60)
    first = start(cfg, "label", "--limit", "40", "--yes")
    time.sleep(0.3)
    second = start(cfg, "label", "--limit", "40", "--yes")
    outs = [p.communicate(timeout=90) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert paid_twice(fake) == {}
    assert 40 <= labeled(db) <= 60 and len(fake.billed_keys()) == labeled(db)
    said = "".join(o for out in outs for o in out)
    assert "claimed by another run" in said or "labeled by another run" in said, outs
    # Every ledger row is closed and no key was answered twice.
    assert db.execute("SELECT count(*) FROM api_calls WHERE status IN ('pending', 'sent')").fetchone()[0] == 0
    oks = Counter(r[0] for r in db.execute("SELECT request_key FROM api_calls WHERE status = 'ok'"))
    assert set(oks.values()) == {1}


def test_the_same_queued_job_started_twice_pays_once(tmp_path, fake):
    cfg, settings, db, ids = world(tmp_path, fake.url, 30)
    params = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False)).params
    job = labeling.queue(db, params)
    first = start(cfg, "label", "--job", str(job), "--yes")
    second = start(cfg, "label", "--job", str(job), "--yes")
    outs = [p.communicate(timeout=90) for p in (first, second)]
    assert paid_twice(fake) == {}
    assert labeled(db) == 30 and len(fake.billed_keys()) == 30
    assert rows.get(db, job)["state"] == "done", outs
    # The one that lost the race said so and left the job alone (or found nothing left).
    assert any("already running" in err or "nothing left" in out or "claimed by another run" in out
               for out, err in outs), outs


def test_a_claim_is_refused_while_its_owner_lives_and_recovered_when_it_dies(tmp_path, fake):
    _, settings, db, ids = world(tmp_path, fake.url, 1)
    key = "k" * 64
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job = rows.create(db, "label", {"mode": "live"}, 1, {})
        db.execute("UPDATE jobs SET pid = ? WHERE id = ?", [owner.pid, job])
        call = ledger.begin(db, key=key, job_id=job, post_id=ids[0], provider="openai", model="gpt-fake",
                            prompt_version="p", status="sent")
        db.execute("UPDATE api_calls SET pid = ? WHERE id = ?", [owner.pid, call])
        mine = dict(key=key, job_id=None, post_id=ids[0], provider="openai", model="gpt-fake", prompt_version="p")
        assert ledger.claim(db, **mine).refused == "busy"
        assert key in ledger.live_claims(db)
    finally:
        owner.kill()
        owner.wait()
    got = ledger.claim(db, **mine)
    assert got.ok and [r.call_id for r in got.recovered] == [call]
    assert db.execute("SELECT status FROM api_calls WHERE id = ?", [call]).fetchone()[0] == "interrupted"
    # The store itself refuses a second open row for a key.
    with pytest.raises(Exception, match="UNIQUE"):
        ledger.begin(db, key=key, job_id=None, post_id=ids[0], provider="openai", model="gpt-fake",
                     prompt_version="p")


# -- §2 batch + live -------------------------------------------------------------------------------------------

def test_a_live_run_skips_posts_waiting_in_a_batch(tmp_path, fake):
    _, settings, db, ids = world(tmp_path, fake.url, 20)
    batch_plan = planning.plan(db, settings, planning.resolve(settings, "openai", None, 10, True))
    batches.submit(db, settings, batch_plan)
    live_plan = planning.plan(db, settings, planning.resolve(settings, "openai", None, 10, False))
    assert not {i.post_id for i in live_plan.items} & {i.post_id for i in batch_plan.items}
    assert live_plan.skipped[planning.CLAIMED] == 10
    labeling.run_live(db, settings, live_plan, backoff_s=0.01)
    # Even a plan made before the batch was submitted does not resend its posts.
    stale_plan = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False))
    batch_again = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, True))
    assert batches.submit(db, settings, batch_again).remote_ids == []  # everything is labeled or in a batch
    labeling.run_live(db, settings, stale_plan, backoff_s=0.01)
    batches.collect_until_done(db, settings, echo=lambda line: None, sleep=lambda s: None)
    assert paid_twice(fake) == {} and len(fake.billed_keys()) == 20 and labeled(db) == 20


# -- §3 the total cap across processes -------------------------------------------------------------------------

def test_the_total_cap_holds_across_two_processes(tmp_path, fake):
    fake.latency_s = 0.2  # each run sends for about 4 s, so the two overlap even on a loaded machine
    cfg, settings, db, ids = world(tmp_path, fake.url, 80)
    one = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False)).chosen.usd
    cap = round(one * 1.3, 6)  # each run's estimate fits under the cap; both together do not
    cfg.write_text(cfg.read_text().replace("[labeling]\n", f"[labeling]\nbudget_total_usd = {cap}\n"))
    first = start(cfg, "label", "--yes")
    time.sleep(0.3)
    second = start(cfg, "label", "--model", "gpt-fake2", "--yes")
    outs = [p.communicate(timeout=90) for p in (first, second)]
    assert first.returncode == 0, outs
    # The second run either stops at the cap midway or, if the first already holds too much, refuses to start.
    assert second.returncode == 0 or "exceeds the total cap" in outs[1][1], outs
    assert ledger.total_usd(db) <= cap
    assert ledger.total_usd(db) > cap * 0.6  # the cap was used, not avoided
    said = "".join(o for out in outs for o in out)
    assert "budget cap reached" in said or "exceeds the total cap" in said
    # Nothing is left reserved once both runs are over.
    assert ledger.committed_usd(db) == pytest.approx(ledger.total_usd(db))


# -- §4 requests of unknown fate -------------------------------------------------------------------------------

def test_a_request_whose_connection_dies_is_maybe_paid_and_counted(tmp_path, fake):
    fake.script = lambda n, body: "drop" if n == 0 else "ok"
    _, settings, db, ids = world(tmp_path, fake.url, 4)
    report = labeling.run_live(db, settings, planning.plan(db, settings, planning.resolve(
        settings, "openai", None, None, False)), backoff_s=0.01)
    assert report.state == "done" and report.snapshot.done == 4
    twice = paid_twice(fake)
    assert len(twice) == 1  # the server got it twice...
    maybe = [r[0] for r in db.execute("SELECT request_key FROM api_calls WHERE status = 'interrupted'")]
    assert maybe == list(twice)  # ...and the ledger says that one may have been paid twice
    assert "maybe paid: 1 request(s)" in report.summary()
    costs = render_costs(db, settings)
    assert "maybe paid: 1 request(s)" in costs
    assert json.loads(db.execute("SELECT counts FROM jobs").fetchone()[0])["maybe_paid"] == 1


def test_the_request_timeout_is_a_setting_and_a_timeout_is_maybe_paid(tmp_path, fake):
    fake.script = lambda n, body: "hang" if n == 0 else "ok"
    fake.hang_s = 5.0
    _, settings, db, ids = world(tmp_path, fake.url, 3, extra="request_timeout_s = 0.5\n")
    started = time.monotonic()
    report = labeling.run_live(db, settings, planning.plan(db, settings, planning.resolve(
        settings, "openai", None, None, False)), backoff_s=0.01)
    assert time.monotonic() - started < 4.5
    assert report.snapshot.done == 3
    error = db.execute("SELECT error FROM api_calls WHERE status = 'interrupted'").fetchone()[0]
    assert "no answer within 0.5 s" in error and "may be billed" in error


def test_a_refused_connection_is_not_paid(tmp_path):
    port = free_port()
    _, settings, db, ids = world(tmp_path, f"http://127.0.0.1:{port}/v1", 2,
                                 extra="max_consecutive_failures = 100\n")
    report = labeling.run_live(db, settings, planning.plan(db, settings, planning.resolve(
        settings, "openai", None, None, False)), backoff_s=0.01)
    assert report.snapshot.failed == 2
    statuses = {r[0] for r in db.execute("SELECT DISTINCT status FROM api_calls")}
    assert statuses == {"error"} and ledger.maybe_paid(db)[0] == 0
    assert db.execute("SELECT error FROM api_calls").fetchone()[0] == "not sent: connection refused"


# -- §5 a dead, refusing, hanging or broke server stops the run -------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_stops_the_run_in_one_line_and_it_resumes(tmp_path, fake):
    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg, settings, db, ids = world(tmp_path, url, 60)
    started = time.monotonic()
    result = bizsent(cfg, "label", "--yes")
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    stop = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("stopped:")]
    assert stop == [f"stopped: cannot reach {url.removesuffix('/v1')} (connection refused) 5 times in a row;"
                    " check labeling.openai.base_url / your network; resume with `bizsent label --job 1`"]
    assert "Traceback" not in result.stderr
    job = rows.get(db, 1)
    assert job["state"] == "failed" and "cannot reach" in job["error"]
    assert db.execute("SELECT count(*) FROM api_calls").fetchone()[0] <= 5 + 4  # a handful, not 1,015
    # Fix the URL and resume the same job.
    cfg.write_text(cfg.read_text().replace(url, fake.url))
    again = bizsent(cfg, "label", "--job", "1", "--yes")
    assert again.returncode == 0, again.stderr
    assert labeled(db) == 60 and rows.get(db, 1)["state"] == "done"


def test_a_hanging_server_stops_after_the_timeouts(tmp_path, fake):
    fake.script = lambda n, body: "hang"
    fake.hang_s = 10.0
    _, settings, db, ids = world(tmp_path, fake.url, 20, extra="request_timeout_s = 0.5\n")
    started = time.monotonic()
    report = labeling.run_live(db, settings, planning.plan(db, settings, planning.resolve(
        settings, "openai", None, None, False)), backoff_s=0.01)
    assert time.monotonic() - started < 5
    assert report.state == "failed"
    assert "(no answer within 0.5 s) 5 times in a row" in report.error
    n, _ = ledger.maybe_paid(db)
    assert n == len(fake.calls)  # every request that reached the hanging server is maybe paid


def test_insufficient_quota_stops_at_once_and_says_check_billing(tmp_path, fake):
    fake.script = lambda n, body: "quota"
    cfg, settings, db, ids = world(tmp_path, fake.url, 30)
    result = bizsent(cfg, "label", "--yes")
    assert result.returncode == 1
    assert "stopped: OpenAI says insufficient_quota: check billing at https://" in result.stdout
    assert "HTTP 429" not in result.stdout
    assert len(fake.calls) <= 4  # the requests already in flight, no retries
    assert rows.get(db, 1)["state"] == "failed"


def test_gemini_spent_quota_stops_but_a_rate_limit_is_retried(tmp_path):
    gemini = FakeGemini(script=lambda n, body: "quota")
    with Server(gemini, gemini_handler, suffix="") as server:
        settings, db = gemini_store(tmp_path, server.url)
        make_posts(db, settings.image_dir, 10)
        report = labeling.run_live(db, settings, planning.plan(db, settings, planning.resolve(
            settings, "gemini", None, None, False)), backoff_s=0.01)
        assert report.state == "failed" and "Gemini says its quota is exhausted" in report.error
        assert len(gemini.calls) <= 8
        gemini.script = lambda n, body: "429" if n % 2 else "ok"
        report = labeling.run_live(db, settings, planning.plan(db, settings, planning.resolve(
            settings, "gemini", None, None, False)), backoff_s=0.01)
        assert report.state == "done" and report.snapshot.done == 10


# -- §6 budget messages ----------------------------------------------------------------------------------------

def test_budget_messages_show_the_digits_and_a_hint_that_fits(tmp_path, fake):
    cfg, settings, db, ids = world(tmp_path, fake.url, 10, extra="budget_job_usd = 0.0001\n")
    one = planning.plan(db, settings, planning.resolve(settings, "openai", None, 1, False))
    with pytest.raises(BudgetError) as err:
        check_caps(db, settings, one.chosen.usd, len(one.items), 1)
    message = str(err.value)
    assert f"estimated {budget.money(one.chosen.usd)} for 1 post(s)" in message
    assert "$0.00 " not in message and "$0.0001 " in message
    assert "--limit" not in message and "raise labeling.budget_job_usd" in message
    ten = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False))
    settings.labeling.budget_job_usd = ten.chosen.usd * 0.45
    with pytest.raises(BudgetError, match=r"use --limit 4 \(about that many fit\)"):
        check_caps(db, settings, ten.chosen.usd, len(ten.items), None)
    result = bizsent(cfg, "label", "--limit", "1", "--yes")
    assert result.returncode == 1 and "$0.00 exceeds" not in result.stderr
    assert "raise labeling.budget_job_usd" in result.stderr and "use --limit" not in result.stderr
    assert budget.money(0.00042) == "$0.00042" and budget.money(0.0349) == "$0.0349"
    assert budget.money(12.3) == "$12.30"
