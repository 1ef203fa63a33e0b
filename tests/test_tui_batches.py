"""The Jobs screen through Textual's Pilot: the new-job dialog's estimate and its Cancel (nothing spent), jobs
written by other processes showing up with progress and cost, failures, cancel, the agreement table and the
confusion heat-map, and a job started from the dialog running detached against the fake OpenAI server."""

from __future__ import annotations

import pytest
from bizsent.core.config import load_settings
from bizsent.core.demo import seed_demo
from bizsent.core.label import ledger, planning
from bizsent.core.label.agreement import scores
from bizsent.core.labels import LABELS
from bizsent.core.store import now, open_db
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel
from bizsent.jobs import labeling, rows
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.batches import NARROW, BatchesScreen
from bizsent.tui.screens.confirm import ConfirmModal, NewJobModal
from bizsent.tui.widgets.confusion import ConfusionMatrix, confusion_table
from fakes.label_posts import FAKE_CONFIG, make_posts
from fakes.openai_server import FakeOpenAI, Server
from fakes.tui import open_screen, until
from rich.console import Console
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Button, DataTable

SIZE = (100, 32)


@pytest.fixture
def fake_openai():
    fake = FakeOpenAI()
    with Server(fake) as server:
        yield fake, server.url


@pytest.fixture
def world(tmp_path, monkeypatch, fake_openai):
    """A config file pointing the openai labeler at the fake server, its settings, and its database."""
    fake, url = fake_openai
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    cfg = tmp_path / "config.toml"
    cfg.write_text(FAKE_CONFIG + f'[labeling]\nprovider = "openai"\n[labeling.openai]\nbase_url = "{url}"\n'
                   'model = "gpt-fake"\nconcurrency = 2\nrequests_per_minute = 60000\n[tui]\nrefresh_s = 0.1\n',
                   encoding="utf-8")
    settings = load_settings(cfg, environ={})
    database = open_db(settings.db_path)
    yield fake, settings, database
    database.close()


def text_of(widget: Widget) -> str:
    lines = widget.render_lines(Region(0, 0, widget.outer_size.width, widget.outer_size.height))
    return "\n".join("".join(segment.text for segment in line) for line in lines)


def cells(table: DataTable, job_id: int) -> list[str]:
    return [str(getattr(cell, "plain", cell)).strip() for cell in table.get_row(str(job_id))]




async def open_batches(app: BizsentApp, pilot) -> BatchesScreen:
    return await open_screen(app, pilot, "batches", BatchesScreen, lambda screen: screen.loaded)


async def open_dialog(app: BizsentApp, pilot) -> NewJobModal:
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, NewJobModal) and app.screen.view is not None)
    return app.screen  # type: ignore[return-value]


def count(db, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- the confusion heat-map ------------------------------------------------------------------------------------

def test_confusion_table_shows_counts_recall_accuracy_and_row_percentages():
    matrix = [[40, 7, 3], [5, 30, 9], [1, 12, 44]]
    console = Console(width=80, record=True, color_system=None)
    console.print(confusion_table(matrix, title="gpt"))
    counts = console.export_text()
    assert "gpt · accuracy 75.5% (n=151)" in counts
    assert [line.split() for line in counts.splitlines()[2:5]] == [
        ["bearish", "40", "7", "3", "80%"], ["neutral", "5", "30", "9", "68%"], ["bullish", "1", "12", "44", "77%"]]
    console.print(confusion_table(matrix, normalise=True))
    assert "80.0%   14.0%    6.0%" in console.export_text()
    with pytest.raises(ValueError, match="3x3"):
        confusion_table([[1, 2], [3, 4]])


async def test_confusion_widget_renders_at_80_columns():
    from textual.app import App

    class One(App):
        def compose(self):
            yield ConfusionMatrix()

    app = One()
    async with app.run_test(size=(80, 24)) as pilot:
        widget = app.query_one(ConfusionMatrix)
        assert "no confusion matrix yet" in text_of(widget)
        widget.show([[3, 0, 1], [0, 2, 0], [2, 0, 5]], title="model")
        await pilot.pause()
        shown = text_of(widget)
        assert "model · accuracy 76.9% (n=13)" in shown
        assert "bullish" in shown and " 5 " in shown and "71%" in shown
        assert widget.size.width <= 80 and widget.matrix == [[3, 0, 1], [0, 2, 0], [2, 0, 5]]


# -- the new-job dialog --------------------------------------------------------------------------------------

async def test_dialog_shows_the_estimate_and_cancel_spends_nothing(world):
    fake, settings, db = world
    make_posts(db, settings.image_dir, 8, corrupt=1)
    expected = planning.plan(db, settings, planning.resolve(settings, "openai", None, None, False))
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_batches(app, pilot)
        modal = await open_dialog(app, pilot)
        assert modal.view.blocker is None
        assert modal.view.plan.chosen.usd == pytest.approx(expected.chosen.usd)
        shown = text_of(modal.query_one("#newjob-estimate")) + text_of(modal.query_one("#newjob-summary"))
        assert f"${expected.chosen.usd:,.4f}" in shown and "gpt-fake" in shown and "batch" in shown
        assert "7 posts to label" in shown and "not sent: 1 image corrupt" in shown
        assert "caps: job $5.00 · total $10.00" in shown
        # The form's first changes (the model field filled from the provider) re-estimate once: Start waits for it.
        await until(pilot, lambda: not modal.query_one("#newjob-start", Button).disabled)
        # Another mode re-estimates: the Batch API row becomes the chosen one.
        modal.query_one("#newjob-mode").value = "batch"
        await until(pilot, lambda: modal.view.plan.params.mode == "batch")
        await pilot.click("#newjob-cancel")
        await until(pilot, lambda: isinstance(app.screen, BatchesScreen))
        await pilot.pause(0.3)
    assert count(db, "jobs") == 0 and count(db, "api_calls") == 0 and count(db, "labels") == 0
    assert fake.calls == []


async def test_dialog_shows_a_missing_key_instead_of_starting(world, monkeypatch):
    fake, settings, db = world
    monkeypatch.delenv("OPENAI_API_KEY")
    make_posts(db, settings.image_dir, 4)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_batches(app, pilot)
        modal = await open_dialog(app, pilot)
        assert modal.view.blocker == "OPENAI_API_KEY is not set; export it in your shell to use openai"
        assert "OPENAI_API_KEY is not set" in text_of(modal.query_one("#newjob-error"))
        assert modal.query_one("#newjob-start", Button).disabled
        modal.query_one("#newjob-start", Button).press()
        await pilot.pause(0.2)
        assert isinstance(app.screen, NewJobModal)  # still open: nothing started
        await pilot.press("escape")
    assert count(db, "jobs") == 0 and fake.calls == []


# -- jobs written by other processes -----------------------------------------------------------------------------

async def test_a_job_written_elsewhere_shows_progress_cost_and_failures(world):
    fake, settings, db = world
    ids = make_posts(db, settings.image_dir, 3)
    params = planning.resolve(settings, "openai", None, None, False)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_batches(app, pilot)
        table = screen.query_one("#jobs", DataTable)
        assert table.row_count == 0
        # "Another process": the engine's own row writers, on a connection of their own.
        other = open_db(settings.db_path)
        job = rows.create(other, "label", params.as_dict(), 20, {})
        rows.progress(other, job, done=5, failed=1, total=20,
                      counts={"mode": "live", "usd": 0.012, "estimate_usd": 0.05, "rate_per_min": 30.0, "eta_s": 28})
        for post in ids[:2]:
            call = ledger.begin(other, key=f"k{post}", job_id=job, post_id=post, provider="openai",
                                model="gpt-fake", prompt_version=params.prompt_version)
            ledger.complete(other, call, status="error", error="HTTP 500")
        await until(pilot, lambda: job in screen.jobs)
        row = cells(table, job)
        assert row[:4] == [str(job), "label", "openai/gpt-fake live", "running"]
        assert row[4].endswith("30%") and row[5:8] == ["5/20", "1", "28s"]
        assert row[8] == "$0.012/$0.050" and row[9].endswith("s")  # the heartbeat's age
        await until(pilot, lambda: "HTTP 500" in text_of(screen.query_one("#job-info")))
        info = text_of(screen.query_one("#job-info"))
        assert "cost $0.012 so far, estimate $0.050" in info and "error 2" in info
        assert [(f.reason, f.attempts, f.posts) for f in screen.detail.failures] == [("HTTP 500", 2, 2)]

        rows.progress(other, job, done=19, failed=1, total=20, counts={"mode": "live", "usd": 0.048,
                                                                      "estimate_usd": 0.05})
        rows.finish(other, job, "done")
        other.close()
        await until(pilot, lambda: screen.jobs[job].status == "done")
        row = cells(table, job)
        assert row[3] == "done" and row[4].endswith("100%") and row[5] == "19/20" and row[7] == "–"


async def test_cancel_asks_first_then_cancels_the_selected_job(world):
    fake, settings, db = world
    make_posts(db, settings.image_dir, 2)
    job = labeling.queue(db, planning.resolve(settings, "openai", None, None, False))
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_batches(app, pilot)
        await until(pilot, lambda: screen.selected == job)
        # 80 columns: the narrow list (model only, no mode/fail/rate), and a queued job has no estimate yet.
        table = screen.query_one("#jobs", DataTable)
        assert screen.columns == NARROW and table.virtual_size.width <= 80
        assert cells(table, job) == [str(job), "gpt-fake", "queued", "────────   0%", "0/0", "–", "$0.000/?"]
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("n")  # no: nothing changes
        await pilot.pause(0.2)
        assert rows.get(db, job)["state"] == "queued"
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: screen.jobs[job].status == "cancelled")
    assert rows.get(db, job)["error"] == "cancelled by the user"


# -- agreement -------------------------------------------------------------------------------------------------

async def test_agreement_table_and_confusion_of_demo_labels(settings, db):
    seed_demo(db, settings.image_dir, n_posts=80, seed=3)
    human = dict(db.execute("SELECT post_id, label FROM labels WHERE source = 'human' AND split = 'test'"))
    openai = db.execute("SELECT post_id, label, labeler FROM labels"
                        " WHERE source = 'api' AND labeler LIKE 'openai:%'").fetchall()
    expected = scores([(human[p], label) for p, label, _ in openai if p in human])
    name = openai[0][2]
    assert expected.n > 5
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_batches(app, pilot)
        # No jobs yet: the pane opens on the agreement view.
        await until(pilot, lambda: screen.agreement is not None)
        assert screen.view == "agreement"
        table = text_of(screen.query_one("#agreement-table"))
        assert f"labelers vs the human test set ({len(human)} posts)" in table
        assert "gemini:" in table and name in table
        line = next(line for line in table.splitlines() if name in line)
        assert f"{expected.accuracy:.3f}" in line and f"{expected.kappa:.3f}" in line
        while screen.shown_labeler().name != name:
            await pilot.press("l")
        widget = screen.query_one(ConfusionMatrix)
        await pilot.pause()
        assert widget.matrix == expected.confusion
        shown = text_of(widget)
        assert f"{name} · accuracy {expected.accuracy:.1%} (n={expected.n})" in shown
        for label, row in zip(LABELS, expected.confusion, strict=True):
            assert next(line for line in shown.splitlines() if line.strip().startswith(label)).split()[1:4] == [
                str(v) for v in row]
        await pilot.press("a")
        assert screen.view == "job" and not widget.display


async def test_agreement_follows_new_api_labels(settings, db):
    settings.tui.refresh_s = 0.1
    ids = make_posts(db, settings.image_dir, 6, human_test=6)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_batches(app, pilot)
        await until(pilot, lambda: screen.agreement is not None)
        await pilot.press("a", "a")  # chosen by the user now: a job appearing keeps it
        assert screen.view == "agreement"
        assert "no API labels yet" in text_of(screen.query_one("#agreement-table"))
        for pid in ids:
            set_label(db, pid, NewLabel(label="bullish", source="api", labeler="openai:m@p2", split="test"))
        job = labeling.queue(db, planning.resolve(settings, "openai", "gpt-5-mini", None, False))
        await until(pilot, lambda: screen.agreement.labelers)  # a new job row triggers a re-read
        assert screen.query_one(ConfusionMatrix).matrix == [[0, 0, 2], [0, 0, 2], [0, 0, 2]]
        assert job in screen.jobs


# -- a real detached job ---------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
async def test_start_runs_a_detached_job_that_completes(world):
    fake, settings, db = world
    make_posts(db, settings.image_dir, 6)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_batches(app, pilot)
        modal = await open_dialog(app, pilot)
        assert len(modal.view.plan.items) == 6
        await pilot.click("#newjob-start")
        await until(pilot, lambda: screen.jobs, timeout=15)
        job = next(iter(screen.jobs))
        await until(pilot, lambda: screen.jobs[job].status == "done", timeout=30)
        assert cells(screen.query_one("#jobs", DataTable), job)[5] == "6/6"
    assert count(db, "jobs") == 1 and len(fake.calls) == 6
    assert db.execute("SELECT count(*) FROM labels WHERE source = 'api' AND labeler LIKE 'openai:%'").fetchone()[0] == 6


async def test_a_dead_job_of_any_kind_shows_dead_within_seconds_and_cancels(world):
    """A train job whose local process is killed, and an eval job on another machine whose heartbeat stopped, both
    read as dead (the one liveness rule) on the screen; the dead one is cancelled from the screen."""
    import signal
    import subprocess

    from bizsent.core.store import liveness
    from bizsent.core.store.liveness import DEAD_AFTER_S

    fake, settings, db = world
    worker = subprocess.Popen(["sleep", "60"])
    train = rows.queue(db, "train", {"name": "t1", "max_steps": 4})
    remote = rows.queue(db, "eval", {"run": "1"})
    db.execute("UPDATE jobs SET state = 'running', pid = ?, host = ?, heartbeat_at = ? WHERE id = ?",
               [worker.pid, liveness.HOST, now(), train])
    db.execute("UPDATE jobs SET state = 'running', pid = 1, host = 'another-machine', heartbeat_at = ? WHERE id = ?",
               [now(), remote])
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_batches(app, pilot)
        await until(pilot, lambda: {screen.jobs[j].status for j in (train, remote)} == {"running"})
        assert cells(screen.query_one("#jobs", DataTable), train)[1:4] == ["train", "t1 (4 steps)", "running"]
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        await until(pilot, lambda: screen.jobs[train].status == "dead", timeout=DEAD_AFTER_S)
        # Nothing on this machine can see the other one's process: only its heartbeat's age tells.
        db.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", [ago(DEAD_AFTER_S + 1), remote])
        await until(pilot, lambda: screen.jobs[remote].status == "dead")
        screen.query_one("#jobs", DataTable).move_cursor(row=screen.order.index(train))
        await until(pilot, lambda: screen.detail is not None and screen.detail.job.id == train)
        await until(pilot, lambda: "its process is gone" in text_of(screen.query_one("#job-info")))
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: screen.jobs[train].status == "cancelled")
    assert rows.get(db, train)["state"] == "cancelled" and rows.get(db, remote)["state"] == "running"


def ago(seconds: float) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="seconds")


def test_palette_lists_the_batches_actions():
    from types import SimpleNamespace

    from bizsent.tui.commands import _entries

    app = SimpleNamespace(switch_mode=lambda mode: None, run_screen_action=lambda mode, action: None,
                          action_help=lambda: None)
    texts = [text for text, _, _ in _entries(app)]
    for entry in ("Jobs: open screen", "Jobs: new job", "Jobs: cancel", "Jobs: collect", "Jobs: resume",
                  "Jobs: agreement"):
        assert entry in texts


async def test_cancelling_a_pod_job_says_what_happens_to_its_pod_and_ends_its_run(world):
    """Issue 21.2: the confirmation is the pod job's own (not the labeling job's), and a pod job whose process is
    gone is closed with the run it owned (Eval listed that run as running forever)."""
    import signal
    import subprocess

    from bizsent.core.model.events import create_run
    from bizsent.core.store import liveness
    from bizsent.core.store.liveness import DEAD_AFTER_S

    fake, settings, db = world
    worker = subprocess.Popen(["sleep", "60"])
    job = rows.queue(db, "pod", {"name": "gpu-run", "max_steps": None})
    db.execute("UPDATE jobs SET state = 'running', pid = ?, host = ?, heartbeat_at = ? WHERE id = ?",
               [worker.pid, liveness.HOST, now(), job])
    run = create_run(db, kind="train", name="gpu-run", job_id=job)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_batches(app, pilot)
        await until(pilot, lambda: screen.selected == job and screen.jobs[job].status == "running")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        question = text_of(app.screen.query_one("#confirm-question"))
        assert "pod is terminated" in question and "run ends cancelled" in question
        assert "labeling" not in question and "request" not in question
        await pilot.press("n")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        await until(pilot, lambda: screen.jobs[job].status == "dead", timeout=DEAD_AFTER_S)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: screen.jobs[job].status == "cancelled")
    assert db.execute("SELECT state FROM runs WHERE id = ?", [run]).fetchone()[0] == "cancelled"
