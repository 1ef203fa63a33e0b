"""No dead ends for a newcomer (issue 21, section 5): on the demo store with no model yet, Eval shows the baselines
that need no run, every "no model" state offers the demo model, and Eval's `m` builds the tiny Qwen2.5-VL, trains
it, evaluates it and scores the pool as real background jobs, so Eval and Spot-check show live data."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from bizsent.core.demo import seed_demo
from bizsent.core.errors import NO_MODEL_YET, BizsentError
from bizsent.core.evaluate.runs import runs_list
from bizsent.core.evaluate.tables import on_split
from bizsent.core.label.queue import NO_PREDICTIONS
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.confirm import ConfirmModal
from bizsent.tui.screens.eval import EvalScreen
from bizsent.tui.screens.spotcheck import SpotCheckScreen
from bizsent.tui.widgets.confusion import ConfusionMatrix
from bizsent.tui.widgets.key_bar import KeyBar
from fakes.eval_runs import add_eval, add_run
from fakes.tui import open_screen, until
from textual.widgets import DataTable

DEMO_POSTS = 90  # a small demo store: the chain scores its whole pool in seconds


@pytest.fixture
def demo(settings, db):
    settings.tui.refresh_s = 0.05
    seed_demo(db, settings.image_dir, n_posts=DEMO_POSTS, seed=7)
    return db


def human_test_count(db) -> int:
    return db.execute("SELECT count(*) FROM labels WHERE source = 'human' AND split = 'test' AND NOT unsure"
                      ).fetchone()[0]


def test_a_runs_best_f1_names_the_split_and_its_size(db):
    run = add_run(db, name="r")
    add_eval(db, run, [[1, 0, 0], [0, 1, 0], [0, 0, 1]], step=2, split="val")  # 3 posts, F1 0.9
    add_eval(db, run, [[3, 1, 0], [0, 2, 1], [1, 0, 4]], split="test")  # 12 posts, lower
    row = runs_list(db)[0]
    assert (row.best_split, row.best_n) == ("val", 3)
    assert on_split("90.0", row.best_split, row.best_n) == "val 90.0 (3 posts)"
    assert on_split("-", None, None) == "-"


def test_scoring_the_pool_without_a_model_offers_the_demo_model(db, settings):
    from bizsent.core.model.pool import score_pool

    with pytest.raises(BizsentError) as caught:
        score_pool(db, settings)
    assert NO_MODEL_YET in str(caught.value) and "press `m`" in str(caught.value)
    assert NO_MODEL_YET in NO_PREDICTIONS  # Label's active-learning order with nothing scored says the same


async def test_eval_before_any_run_shows_the_baselines_and_the_next_step(settings, demo):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(app, pilot, "eval", EvalScreen)
        table = screen.query_one("#eval-metrics", DataTable)
        await until(pilot, lambda: table.row_count >= 5, timeout=30)
        names = [str(table.get_row_at(k)[0]) for k in range(table.row_count)]
        kinds = {str(table.get_row_at(k)[0]): str(table.get_row_at(k)[1]) for k in range(table.row_count)}
        sizes = {str(table.get_row_at(k)[0]): str(table.get_row_at(k)[2]) for k in range(table.row_count)}
        n_test = human_test_count(demo)
        assert n_test > 0
        assert kinds["VADER (text only)"] == "live" and sizes["VADER (text only)"] == str(n_test)
        api = [name for name in names if kinds[name] == "API"]
        assert api and all(0 < int(sizes[name]) <= n_test for name in api)  # the API labelers on human test posts
        assert kinds["CryptoBERT"] == "brief" and "agree/confidence rule" in names
        assert f"baselines on {n_test} human test posts" in str(screen.query_one("#eval-note").content)
        assert NO_MODEL_YET[1:] in str(screen.query_one(ConfusionMatrix).content)
        footer = screen.query_one(KeyBar).render().plain  # the run keys do nothing yet: the next step fits at 80
        assert "m demo model" in footer and "evaluate" not in footer


async def test_spot_check_with_no_model_offers_the_demo_model(settings, demo):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_screen(app, pilot, "spotcheck", SpotCheckScreen, lambda s: s.loaded)
        await pilot.pause()
        assert NO_MODEL_YET in str(screen.query_one("#spot-text").content)
        await pilot.press("m")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")  # no: nothing is started
        assert demo.execute("SELECT count(*) FROM jobs WHERE kind = 'demo-model'").fetchone()[0] == 0


async def test_m_on_eval_builds_trains_evaluates_the_demo_model_and_fills_spot_check(settings, demo):
    from bizsent.core.model.pool import pool_ids

    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_screen(app, pilot, "eval", EvalScreen)
        await pilot.press("m")
        assert isinstance(app.screen, ConfirmModal)
        question = str(app.screen.query_one("#confirm-question").content)
        assert "costs nothing" in question and "on a CPU" in question and "train it 8 steps" in question
        await pilot.press("y")
        table = screen.query_one("#eval-runs", DataTable)
        await until(pilot, lambda: table.row_count == 1, timeout=120)  # the run shows while it trains
        done = "SELECT state FROM jobs WHERE kind = 'demo-model'"
        await until(pilot, lambda: (demo.execute(done).fetchone() or [""])[0] in ("done", "failed"), timeout=600)
        jobs = demo.execute("SELECT kind, state FROM jobs ORDER BY id").fetchall()
        assert jobs == [("demo-model", "done"), ("train", "done"), ("eval", "done"), ("score-pool", "done")]
        run_id, state = demo.execute("SELECT id, state FROM runs WHERE kind = 'train'").fetchone()
        assert state == "done"
        splits = {r[0] for r in demo.execute(
            "SELECT json_extract(data, '$.split') FROM metrics WHERE run_id = ? AND kind = 'eval'", [run_id])}
        assert splits == {"val", "test"}  # validation while training; the demo store has no dev split
        scored = {r[0] for r in demo.execute("SELECT post_id FROM predictions WHERE run_id = ?", [run_id])}
        assert set(pool_ids(demo)) <= scored
        await until(pilot, lambda: " posts)" in str(table.get_row_at(0)[5]), timeout=30)
        note = screen.query_one("#eval-note")
        await until(pilot, lambda: f"run {run_id} on " in str(note.content), timeout=60)
        assert "human test posts" in str(note.content)  # the run's report, next to the baselines
        metrics = screen.query_one("#eval-metrics", DataTable)
        assert str(metrics.get_row_at(0)[1]) == "model" and "VADER (text only)" in {
            str(metrics.get_row_at(k)[0]) for k in range(metrics.row_count)}
        spot = await open_screen(app, pilot, "spotcheck", SpotCheckScreen, lambda s: len(s.items) > 0)
        assert spot.run_id == run_id


def test_cli_demo_model_asks_first_and_bad_steps_is_one_line(tmp_path):
    bizsent = str(Path(sys.executable).with_name("bizsent"))
    db_path = str(tmp_path / "x.db")
    subprocess.run([bizsent, "--db", db_path, "init"], check=True, capture_output=True, timeout=60)
    asked = subprocess.run([bizsent, "--db", db_path, "demo-model"], input="n\n", capture_output=True, text=True,
                           timeout=60)
    assert asked.returncode == 0, asked.stderr
    assert "costs nothing" in asked.stdout and "nothing started" in asked.stdout
    bad = subprocess.run([bizsent, "--db", db_path, "demo-model", "--steps", "0", "--yes"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert "--steps must be at least 1" in bad.stderr and "Traceback" not in bad.stderr
    with sqlite3.connect(db_path) as con:
        assert con.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0


def test_without_the_training_extra_the_demo_model_says_what_to_install(db, settings, monkeypatch):
    from bizsent.core.model import modeling
    from bizsent.jobs.demo_model import launch

    # A package no machine has stands for an extra that is not installed: the check must find it missing.
    monkeypatch.setattr(modeling, "TRAINING_MODULES", (*modeling.TRAINING_MODULES, "bizsent_not_installed_pkg"))
    with pytest.raises(BizsentError, match="bizsent_not_installed_pkg, which is not installed; install the training"):
        launch(db, settings.db_path, settings.source, settings.data_dir, settings.data_dir / "logs")
    assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
