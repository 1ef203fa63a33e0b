"""The Eval screen's comparison through Textual's Pilot: `c` on run A, `c` on run B, both matrices and the paired
figures on the same posts, `v` for the other split, `s` to Spot-check the posts they disagree on (dev only)."""

from __future__ import annotations

import io

import pytest
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.compare import CompareScreen, DisagreementCheck
from bizsent.tui.screens.eval import EvalScreen
from fakes.eval_runs import two_scored_runs
from fakes.tui import open_screen, toasts, until
from rich.console import Console
from textual.widgets import DataTable


@pytest.fixture
def runs(settings, db, tmp_path):
    settings.tui.image_renderer = "halfcell"
    settings.tui.refresh_s = 0.05
    return two_scored_runs(db, settings.image_dir, tmp_path)


def shown(renderable) -> str:
    console = Console(width=160, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


async def test_pick_two_runs_compare_switch_split_and_spot_check_disagreements(settings, runs):
    store, a, b = runs
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 40), notifications=True) as pilot:
        screen = await open_screen(app, pilot, "eval", EvalScreen)
        table = screen.query_one("#eval-runs", DataTable)
        await until(pilot, lambda: table.row_count == 2)  # newest first: B (tuned), then A (zero-shot)
        await pilot.press("down", "c")
        await until(pilot, lambda: any(f"run {a} is A" in t for t in toasts(app)))
        await pilot.press("up", "c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen))
        cmp = app.screen
        await until(pilot, lambda: cmp.comparison is not None)
        assert cmp.comparison.split == "dev" and cmp.comparison.stats.n == 3
        assert "on the 3 human dev posts both scored" in text_of(cmp, "#cmp-head")
        summary = text_of(cmp, "#cmp-summary")
        assert "accuracy (dev, n=3): A 66.7% → B 66.7%, B − A +0.0 points [95% CI" in summary
        assert ("McNemar on accuracy (dev, n=3): B right where A wrong 1, A right where B wrong 1: p = 1 "
                "(exact binomial)") in summary
        assert cmp.query_one("#cmp-a").matrix == [[0, 1, 0], [0, 1, 0], [0, 0, 1]]
        assert cmp.query_one("#cmp-b").matrix == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]
        assert f"run {a} zero-shot · dev, n=3" in shown(cmp.query_one("#cmp-a").content)
        posts = cmp.query_one("#cmp-posts", DataTable)
        assert [str(posts.get_row_at(k)[0]) for k in range(posts.row_count)] == [str(store[8]), str(store[10])]

        await pilot.press("s")  # the disagreements in Spot-check: B's answers first, r for A's
        await until(pilot, lambda: isinstance(app.screen, DisagreementCheck) and app.screen.loaded)
        spot = app.screen
        assert spot.run_id == b and {it.post_id for it in spot.items} == {store[8], store[10]}
        await pilot.press("r")
        await until(pilot, lambda: spot.run_id == a and {it.post_id for it in spot.items} == {store[8], store[10]})
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is cmp)

        await pilot.press("v")  # the same two runs on the test split
        await until(pilot, lambda: cmp.comparison is not None and cmp.comparison.split == "test")
        assert "on the 4 human test posts both scored (1 scored only by run" in text_of(cmp, "#cmp-head")
        assert "accuracy (test, n=4)" in text_of(cmp, "#cmp-summary")
        await pilot.press("s")  # test posts are never spot-checked
        await until(pilot, lambda: any("test posts are not spot-checked" in t for t in toasts(app)))
        assert app.screen is cmp
