"""The Eval screen through Textual's Pilot, on runs, metric events and predictions written straight into the store:
the matrix redraws when a new evaluation lands, the loss curve has every step, the metrics sit beside baselines."""

from __future__ import annotations

import io

import pytest
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.eval import EvalScreen
from bizsent.tui.widgets.confusion import ConfusionMatrix
from bizsent.tui.widgets.loss_plot import EvalPoint, LossPlot, render_plot
from fakes.eval_runs import add_eval, add_predictions, add_run, add_train_steps, human, probs
from fakes.tui import build_store, open_screen, toasts, until
from rich.console import Console
from textual.widgets import DataTable

FIRST = [[3, 1, 0], [0, 2, 1], [1, 0, 4]]
SECOND = [[41, 2, 3], [5, 37, 1], [2, 4, 59]]


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    settings.tui.refresh_s = 0.05  # the poll interval: fast, so the live redraw shows within the test
    return build_store(db, settings.image_dir)




def shown(renderable) -> str:
    console = Console(width=160, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.file.getvalue()


async def open_eval(app: BizsentApp, pilot) -> EvalScreen:
    return await open_screen(app, pilot, "eval", EvalScreen)


async def test_matrix_redraws_live_when_a_new_eval_event_lands(settings, db, store):
    run = add_run(db, name="live-run", state="running")
    add_train_steps(db, run, 6)
    add_eval(db, run, FIRST, step=6, split="val")
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_eval(app, pilot)
        matrix = screen.query_one(ConfusionMatrix)
        await until(pilot, lambda: matrix.matrix == FIRST)
        assert "val (12 posts) step 6" in shown(matrix.content)  # the split and its size name every figure
        add_eval(db, run, SECOND, step=12, split="val")  # another process's write: the poll must find it
        await until(pilot, lambda: matrix.matrix == SECOND)
        text = shown(matrix.content)
        assert "41" in text and "59" in text and "step 12" in text
        await pilot.press("n")
        assert matrix.normalise and "89.1%" in shown(matrix.content)  # 41 of 46 in the bearish row
        points = screen.query_one(LossPlot).evals
        assert [p.step for p in points] == [6, 12]


async def test_the_final_evaluation_replaces_its_live_progress_even_in_the_same_row_id(settings, db, store):
    """Found doing the whole day in tmux: after `T` the matrix kept saying `scoring 97/97`. The final event
    replaces the live ones (core.evaluate.live.clear_live) and SQLite gives it the id of the last live row it
    deleted, which the screen had read already."""
    from bizsent.core.evaluate.live import clear_live
    from bizsent.core.model.events import MetricEvent, record

    run = add_run(db, name="scored")
    live = MetricEvent("eval", step=12, accuracy=0.75, macro_f1=0.7, confusion=FIRST,
                       data={"split": "test", "live": True, "n": 12, "of": 12})
    live_id = record(db, run, live)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_eval(app, pilot)
        matrix = screen.query_one(ConfusionMatrix)
        await until(pilot, lambda: "test scoring 12/12" in shown(matrix.content))
        clear_live(db, run, "test")
        assert add_eval(db, run, SECOND, split="test") == live_id  # the row id comes back
        await until(pilot, lambda: matrix.matrix == SECOND)
        assert f"run {run} test (154 posts)" in shown(matrix.content)


async def test_loss_plot_draws_every_train_step(settings, db, store):
    run = add_run(db)
    add_train_steps(db, run, 37)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_eval(app, pilot)
        plot = screen.query_one(LossPlot)
        await until(pilot, lambda: len(plot.train) == 37)
        assert [s for s, _ in plot.train] == list(range(1, 38))
        await pilot.pause()
        text = plot.rendered.plain
        assert "train loss per answer token (37 steps)" in text  # not the eval loss: another quantity
        assert "┌" in text and "37" in text.splitlines()[-1]  # framed plot, last step on the x axis
        assert "1.60" in text  # the first loss, 2 / (1 + 1/4), tops the left axis


def test_render_plot_fits_its_size_and_buckets_long_runs():
    train = [(s, 1.0 / s) for s in range(1, 5001)]
    out = render_plot(train, [EvalPoint(2500, 0.4, 0.3), EvalPoint(None, 0.5, 0.45)], 60, 12)
    lines = out.splitlines()
    assert len(lines) == 12
    assert "5000" in lines[-1] and "1.00" in out  # the right axis (0..1) is there for the eval points


async def test_metrics_table_shows_model_baselines_and_api_labelers(settings, db, store):
    run = add_run(db)
    truth = {store[1]: "bullish", store[3]: "bullish", store[4]: "bearish", store[5]: "neutral", store[6]: "bearish"}
    for pid, label in truth.items():
        human(db, pid, label, sarcastic=pid == store[3])
    add_predictions(db, run, {store[1]: probs(0.1, 0.2, 0.7), store[3]: probs(0.6, 0.3, 0.1),
                              store[4]: probs(0.8, 0.1, 0.1), store[5]: probs(0.2, 0.5, 0.3),
                              store[6]: probs(0.7, 0.2, 0.1), store[7]: probs(0.3, 0.3, 0.4)})
    add_eval(db, run, [[2, 0, 0], [0, 1, 0], [1, 0, 1]])
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(160, 32)) as pilot:  # wide: the per-class columns show (test_tui_eval_fit)
        screen = await open_eval(app, pilot)
        table = screen.query_one("#eval-metrics", DataTable)
        await until(pilot, lambda: table.row_count > 5, timeout=20)
        rows = [[str(c) for c in table.get_row_at(k)] for k in range(table.row_count)]
        names = [(r[0], r[1]) for r in rows]
        assert names[0] == ("run-a", "model")
        assert rows[0][2] == "5" and rows[0][3].startswith("80.0 [")  # 4 of the 5 test posts (post 7 has no truth)
        assert ("  sarcastic", "slice") in names
        for expected in (("VADER (text only)", "live"), ("CryptoBERT", "brief"), ("agree/confidence rule", "brief"),
                         ("CryptoBERT+VADER ensemble", "brief"), ("openai:gpt-test", "API")):
            assert expected in names
        crypto = rows[names.index(("CryptoBERT", "brief"))]
        assert crypto[3].startswith("39.3") and crypto[6].split("/")[1] == "22"  # bearish recall 22.4%
        assert "5 human test posts" in str(screen.query_one("#eval-note").content)


async def test_runs_list_and_evaluate_without_model_says_why(settings, db, store):
    first = add_run(db, name="older")
    add_eval(db, first, FIRST)
    add_run(db, name="newer", state="running")
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        screen = await open_eval(app, pilot)
        table = screen.query_one("#eval-runs", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        assert [str(table.get_row_at(k)[2]) for k in range(2)] == ["newer", "older"]
        assert str(table.get_row_at(1)[5]) == "test 67.5 (12 posts)"  # best macro-F1: 0.9 * 9/12, on its split
        await pilot.press("e")  # the running run: nothing to evaluate yet, one line says why
        await until(pilot, lambda: any("no adapter yet" in t for t in toasts(app)))
        await pilot.press("down")
        await until(pilot, lambda: screen.query_one(ConfusionMatrix).matrix == FIRST)
        await pilot.press("e")  # its adapter is on another machine: a notice, no process started
        await until(pilot, lambda: any("adapter /nowhere/adapter is not on this machine" in t for t in toasts(app)))


async def test_scoring_test_asks_first_and_says_how_often_this_test_set_was_scored(settings, db, store):
    from bizsent.tui.screens.confirm import ConfirmModal

    older = add_run(db, name="older")
    add_eval(db, older, FIRST)  # one test evaluation of this (empty-manifest) test set
    db.execute("UPDATE runs SET manifest = json_object('hashes', json_object('test', 'abc'))")
    add_run(db, name="newer")
    db.execute("UPDATE runs SET manifest = json_object('hashes', json_object('test', 'abc'))")
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        screen = await open_eval(app, pilot)
        table = screen.query_one("#eval-runs", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        await pilot.press("T")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        text = " ".join(str(w.content) for w in app.screen.query("Static"))
        assert f"has been scored 1 time (runs {older})" in text and "dev (e)" in text
        await pilot.press("escape")  # no: nothing starts
        await until(pilot, lambda: app.screen is screen)
        assert db.execute("SELECT count(*) FROM jobs WHERE kind = 'eval'").fetchone()[0] == 0


def test_the_report_leaves_unsure_test_labels_out_as_the_test_split_does(db, store):
    from bizsent.core.evaluate.runs import run_report
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    run = add_run(db)
    human(db, store[1], "bullish")
    set_label(db, store[3], NewLabel(label="bearish", source="human", split="test", labeler="human", unsure=True))
    add_predictions(db, run, {store[1]: probs(0.1, 0.2, 0.7), store[3]: probs(0.6, 0.3, 0.1)})
    assert run_report(db, run, "run-a").model.n == 1


async def test_a_run_not_scored_on_test_keeps_the_baselines_in_the_table(tmp_path):
    """Found doing the whole day in tmux: before any run Eval's table shows the baselines (VADER, the brief's
    figures); once a run exists that is not scored on the test split yet, the table went empty and the baselines
    the user compares against were gone until `T`."""
    from bizsent.core.store import open_db
    from bizsent.tui.widgets.fitted_table import FittedTable
    from fakes.eval_runs import add_eval, add_run
    from test_tui_fit import app_on_store

    app = app_on_store(tmp_path)
    with open_db(app.db_path) as db:
        add_eval(db, add_run(db, name="demo"), [[1, 0, 0], [0, 1, 0], [0, 0, 1]], step=8, split="val")
    async with app.run_test(size=(160, 45)) as pilot:
        await app.switch_mode("eval")
        note = app.screen.query_one("#eval-note")
        await until(pilot, lambda: "not scored on the human test split" in str(note.render()))
        table = app.screen.query_one("#eval-metrics", FittedTable)

        def systems() -> list[str]:
            return [str(table.get_row_at(k)[0]).strip() for k in range(table.row_count)]

        await until(pilot, lambda: {"CryptoBERT+VADER ensemble", "agree/confidence rule"} <= set(systems()))
        assert "demo" not in systems()  # the run has no test figures to show
