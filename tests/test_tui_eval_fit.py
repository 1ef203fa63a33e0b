"""The Eval screen's tables size to the terminal (issue 21.6): at 80 columns the minor columns drop in a fixed
order so accuracy and macro-F1 with their intervals, the size and the split stay whole; at 160 every column is
there. Through Textual's Pilot on runs and predictions written straight into the store."""

from __future__ import annotations

import pytest
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.eval import EvalScreen
from fakes.eval_runs import add_eval, add_predictions, add_run, human, probs
from fakes.tui import build_store, open_screen, until
from test_tui_keys import SIZES
from textual.widgets import DataTable


def headers(table: DataTable) -> list[str]:
    return [str(column.label) for column in table.columns.values()]


def fits(table: DataTable, width: int) -> bool:
    return sum(column.get_render_width(table) for column in table.columns.values()) <= width


@pytest.mark.parametrize("size", SIZES)
async def test_eval_tables_keep_the_key_figures_and_drop_the_minor_columns_first(settings, db, size):
    settings.tui.refresh_s = 0.05
    store = build_store(db, settings.image_dir)
    run = add_run(db, name="a-fairly-long-run-name-for-the-list")
    for pid, label in {store[1]: "bullish", store[3]: "bullish", store[4]: "bearish", store[5]: "neutral"}.items():
        human(db, pid, label)
    add_predictions(db, run, {store[1]: probs(0.1, 0.2, 0.7), store[3]: probs(0.6, 0.3, 0.1),
                              store[4]: probs(0.8, 0.1, 0.1), store[5]: probs(0.2, 0.5, 0.3)})
    add_eval(db, run, [[1, 0, 0], [0, 1, 0], [1, 0, 1]])
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=size) as pilot:
        screen = await open_screen(app, pilot, "eval", EvalScreen)
        runs, metrics = screen.query_one("#eval-runs", DataTable), screen.query_one("#eval-metrics", DataTable)
        await until(pilot, lambda: metrics.row_count > 3, timeout=20)
        await pilot.pause()
        for table in (runs, metrics):
            assert fits(table, size[0]), (headers(table), size)
        assert {"n", "acc % [95% CI]", "macro-F1 % [95% CI]"} <= set(headers(metrics))
        model = [str(c) for c in metrics.get_row_at(0)]
        f1 = model[headers(metrics).index("macro-F1 % [95% CI]")]
        assert f1.startswith("77.8 [") and f1.endswith("]")  # the interval is whole, never cut to "75.0 [3…"
        systems = [str(metrics.get_row_at(k)[0]) for k in range(metrics.row_count)]
        assert {"VADER (text only)", "CryptoBERT+VADER ensemble", "agree/confidence rule"} <= set(systems)
        best = [str(c) for c in runs.get_row_at(0)][headers(runs).index("best F1")]
        assert best == "test 67.5 (4 posts)"  # the split and its size stay beside the figure
        if size[0] >= 160:
            assert "bull P/R/F1" in headers(metrics) and "created" in headers(runs)
        else:
            assert "bull P/R/F1" not in headers(metrics)  # the per-class figures drop first (the matrix has them)
