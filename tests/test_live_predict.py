"""Predictions as posts arrive: new candidates through the fake serverless endpoint (running the real worker
handler on the tiny model), within the day's budget, with every request in the cost ledger."""

from __future__ import annotations

from contextlib import closing

import pytest
from bizsent.core.config import Settings
from bizsent.core.demo import seed_demo
from bizsent.core.serve.endpoint import EndpointClient
from bizsent.core.serve.handler import ADAPTER_ENV
from bizsent.jobs.live_predict import PROVIDER, WORKER_START, live_round, local_refusal, predict_new, today_usd
from fakes.openai_server import Server
from fakes.serverless_server import FakeServerless, make_handler

CANDIDATES = ("SELECT count(*) FROM posts p JOIN images i ON i.id = p.image_id WHERE i.status = 'ok'"
              " AND trim(p.text) != ''")


@pytest.fixture
def endpoint(run, monkeypatch):
    monkeypatch.setenv(ADAPTER_ENV, str(run["result"].adapter_dir))
    fake = FakeServerless()
    with Server(fake, make_handler, suffix="") as server:
        yield fake, server.url


@pytest.fixture
def store(db, settings: Settings):
    seed_demo(db, settings.image_dir, n_posts=12, seed=3)
    return db


def client_for(url: str, settings: Settings, fake: FakeServerless) -> closing[EndpointClient]:
    return closing(EndpointClient(url, fake.endpoint, "rp-test-key", settings.serverless))


def test_new_posts_are_scored_once_each_with_their_cost_in_the_ledger(store, settings: Settings, endpoint) -> None:
    fake, url = endpoint
    candidates = store.execute(CANDIDATES).fetchone()[0]
    assert candidates >= 3
    with client_for(url, settings, fake) as client:
        first = predict_new(store, settings, client)
        again = predict_new(store, settings, client)
    assert (first.scored, first.failed, first.waiting) == (candidates, 0, 0)
    assert again.scored == 0 and len(fake.inputs) == candidates  # nothing sent twice
    rows = store.execute("SELECT status, usd FROM api_calls WHERE provider = ? AND mode = 'live'",
                         [PROVIDER]).fetchall()
    assert len(rows) == candidates and all(status == "ok" for status, _ in rows)
    usd = 0.120 * settings.serverless.usd_per_s  # the fake reports 120 ms executed per job
    assert all(cost == pytest.approx(usd) for _, cost in rows)
    # RunPod bills the worker from its start but reports each job's executed time only: the round that sent
    # requests books one start (serverless.cold_start_s, an estimate); the round that sent nothing books none
    start = settings.serverless.cold_start_s * settings.serverless.usd_per_s
    starts = store.execute("SELECT usd FROM api_calls WHERE provider = ? AND mode = ?", [PROVIDER, WORKER_START])
    assert [row[0] for row in starts] == [pytest.approx(start)] and first.start_usd == pytest.approx(start)
    assert today_usd(store) == pytest.approx(candidates * usd + start) and first.usd == pytest.approx(candidates * usd)
    assert "worker start $0.0186 (estimated)" in first.summary() and again.start_usd == 0
    labels = store.execute("SELECT label FROM predictions p JOIN runs r ON r.id = p.run_id"
                           " WHERE r.kind = 'endpoint'").fetchall()
    assert len(labels) == candidates and {label for (label,) in labels} <= {"bearish", "neutral", "bullish"}


def test_the_daily_budget_caps_what_a_round_sends(store, settings: Settings, endpoint) -> None:
    fake, url = endpoint
    cfg = settings.serverless
    per_post, cold = cfg.s_per_post * cfg.usd_per_s, cfg.cold_start_s * cfg.usd_per_s
    settings.live.daily_budget_usd = cold + 2.5 * per_post  # a cold start and two posts fit, not three
    with client_for(url, settings, fake) as client:
        report = predict_new(store, settings, client)
        assert report.scored == 2 and report.waiting == store.execute(CANDIDATES).fetchone()[0] - 2
        settings.live.daily_budget_usd = cold / 2  # not even the start
        starved = predict_new(store, settings, client)
    assert starved.scored == 0 and len(fake.inputs) == 2
    assert "waiting" in starved.summary() and today_usd(store) <= cold + 2.5 * per_post


def test_an_endpoint_that_fails_stops_the_round_and_leaves_the_posts_for_the_next(store, settings: Settings,
                                                                                 endpoint) -> None:
    fake, url = endpoint
    fake.script = lambda n: "500"
    with client_for(url, settings, fake) as client:
        report = predict_new(store, settings, client)
    assert report.failed == 3 and report.scored == 0 and "HTTP 500" in report.problems[0]
    statuses = store.execute("SELECT mode, status FROM api_calls WHERE provider = ? ORDER BY id", [PROVIDER]).fetchall()
    assert statuses == [(WORKER_START, "ok")] + [("live", "error")] * 3  # the worker may have started: counted
    assert report.waiting == store.execute(CANDIDATES).fetchone()[0] - 3


def test_the_7b_is_refused_on_a_cpu_with_the_estimate(settings: Settings) -> None:
    line = local_refusal(settings, 500, cuda=False)
    assert line is not None and "about 8.3 h at 60 s a post" in line and "\n" not in line
    assert local_refusal(settings, 500, cuda=True) is None
    settings.train.base_model = "tiny-qwen-test"
    assert local_refusal(settings, 500, cuda=False) is None


def test_a_collection_round_scores_through_live_endpoint_or_says_why_not(store, settings: Settings, endpoint,
                                                                          monkeypatch) -> None:
    fake, url = endpoint
    assert live_round(store, settings).startswith("predictions: not scoring") or _has_cuda()
    monkeypatch.setenv("RUNPOD_API_KEY", "rp-test-key")
    settings.runpod.serverless_base = url
    settings.live.endpoint = fake.endpoint
    line = live_round(store, settings)
    assert line.startswith(f"predictions: {store.execute(CANDIDATES).fetchone()[0]} new posts scored")
    assert fake.authorizations[-1] == "Bearer rp-test-key"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
