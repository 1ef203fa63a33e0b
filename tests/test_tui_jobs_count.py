"""A loop without end counts its rounds, not a fake total (issue 21.6): `scrape --every` without --rounds has no
total, and the Jobs list and the job's pane read "8 rounds", never "8/0"; a loop with --rounds keeps "2/5".
Through Textual's Pilot on collect rows written as the collect job writes them (jobs.collect)."""

from __future__ import annotations

import io

import pytest
from bizsent.core.store import open_db
from bizsent.jobs import collect, rows
from bizsent.tui.app import BizsentApp
from fakes.tui import until
from rich.console import Console
from test_tui_keys import SIZES, config
from textual.widgets import DataTable, Static


def plain(widget: Static) -> str:
    console = Console(width=160, file=io.StringIO(), color_system=None)
    console.print(widget.content)
    return console.file.getvalue()


@pytest.mark.parametrize("size", SIZES)
async def test_an_endless_collect_loop_counts_rounds_without_a_total(tmp_path, size):
    settings = config(tmp_path)
    db = open_db(settings.db_path)
    endless = rows.create(db, collect.KIND, {"every_s": 3600}, 0, {})
    rows.progress(db, endless, done=8, failed=0, total=0, counts={})
    bounded = rows.create(db, collect.KIND, {"every_s": 3600, "rounds": 5}, 5, {})
    rows.progress(db, bounded, done=2, failed=0, total=5, counts={})
    db.close()
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=size) as pilot:
        await app.switch_mode("batches")
        screen = app.screen
        table = screen.query_one("#jobs", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        count = list(screen.columns).index("count")

        def cell(job: int) -> str:
            return str(table.get_row(str(job))[count]).strip()

        assert cell(endless) == "8 rounds" and cell(bounded) == "2/5"
        table.focus()
        table.move_cursor(row=table.get_row_index(str(endless)))
        info = screen.query_one("#job-info", Static)
        await until(pilot, lambda: f"job {endless} " in plain(info))
        text = plain(info)
        assert "8 rounds done" in text and "of ?" not in text, text


async def test_a_finished_pod_training_job_says_how_to_evaluate_its_run(tmp_path):
    """Issue 21.6: after a pod trains a run, the job's pane says in one line that `e` on Eval evaluates it (on a
    pod when its base model is not on this machine, price asked first); a running or failed one says nothing."""
    settings = config(tmp_path)
    db = open_db(settings.db_path)
    trained = rows.create(db, "pod", {"name": "night-run", "max_steps": 40}, 40, {})
    rows.progress(db, trained, done=40, failed=0, total=40, counts={})
    rows.finish(db, trained, "done")
    failed = rows.create(db, "pod", {"name": "bad-run"}, 40, {})
    rows.finish(db, failed, "failed", "no GPU available")
    db.close()
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("batches")
        screen = app.screen
        table, info = screen.query_one("#jobs", DataTable), screen.query_one("#job-info", Static)
        await until(pilot, lambda: table.row_count == 2)
        table.focus()
        for job, offered in ((trained, True), (failed, False)):
            table.move_cursor(row=table.get_row_index(str(job)))
            await until(pilot, lambda job=job: f"job {job} " in plain(info))
            text = " ".join(plain(info).split())
            assert ("e on the Eval screen evaluates run night-run" in text) is offered, text
    db = open_db(settings.db_path)
    assert db.execute("SELECT state FROM jobs WHERE id = ?", [trained]).fetchone()[0] == "done"
    db.close()
