"""The Pods screen through Textual's Pilot against the fake RunPod server: a pod the database knows beside an
orphan (flagged), terminate and stop behind their questions, the status bar's billing figure, the start-up orphan
warning, the run's log tail and loss curve moving as rows and lines arrive, and no key: one line, no network."""

from __future__ import annotations

import re
import time

import pytest
from bizsent.core.config import load_settings
from bizsent.core.store import now, open_db
from bizsent.jobs import control, rows
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.confirm import ConfirmModal
from bizsent.tui.screens.pods import PodsScreen
from bizsent.tui.widgets.log_tail import LogTail
from bizsent.tui.widgets.loss_plot import LossPlot
from bizsent.tui.widgets.status_bar import StatusBar
from fakes.eval_runs import add_run, add_train_steps
from fakes.runpod_server import FakeRunpod
from fakes.tui import build_store, toasts, until
from textual.widgets import DataTable, Static

CANARY = "canary-runpod-user-key-7c2a90"
SIZE = (120, 36)


@pytest.fixture
def fake(tmp_path):
    with FakeRunpod(CANARY, root=tmp_path / "pods", boot_delay_s=0.05) as server:
        yield server


@pytest.fixture
def world(settings, db, fake, monkeypatch):
    """A run 'run1' training on a pod the database knows (billing $0.69/h), and a stray bizsent pod."""
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    settings.runpod.api_base = fake.url
    settings.tui.refresh_s = 0.05
    known = fake.add_pod("bizsent-run1")
    db.execute("INSERT INTO pods (pod_id, name, run_name, gpu, cloud, usd_per_hour, state, created_at, updated_at)"
               " VALUES (?, 'bizsent-run1', 'run1', 'NVIDIA GeForce RTX 4090', 'SECURE', 0.69, 'running', ?, ?)",
               [known, now(), now()])
    ghost = fake.add_pod("bizsent-ghost")
    run_id = add_run(db, "run1", state="running")
    log = settings.data_dir / "runs" / "run1" / "pod.log"
    log.parent.mkdir(parents=True)
    log.write_text("agent up\nstep 1 loss 2.0\n", encoding="utf-8")
    return known, ghost, run_id, log


def cells(table: DataTable, key: str) -> list[str]:
    return [str(getattr(cell, "plain", cell)).strip() for cell in table.get_row(key)]


async def open_pods(app: BizsentApp, pilot) -> PodsScreen:
    await app.switch_mode("pods")
    screen = app.screen
    assert isinstance(screen, PodsScreen)
    await until(pilot, lambda: screen.loaded)
    return screen


async def answer(app: BizsentApp, pilot, key: str) -> None:
    await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
    await pilot.press(key)


async def test_pods_listed_orphan_flagged_and_terminated_after_asking(settings, db, fake, world):
    known, ghost, _, _ = world
    app = BizsentApp(settings, settings.db_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await open_pods(app, pilot)
        table = screen.query_one("#pods", DataTable)
        await until(pilot, lambda: table.row_count == 2 and ghost in screen.pods)
        assert cells(table, ghost)[-1] == "ORPHAN" and screen.pods[ghost].orphan
        row = cells(table, known)
        assert row[2] == "RTX 4090" and row[3] == "running" and row[5] == "0.69" and row[-1] == ""
        assert not screen.pods[known].orphan

        table.move_cursor(row=list(screen.order).index(ghost))
        await until(pilot, lambda: screen.selected == ghost)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("n")  # declined: nothing happens
        await pilot.pause(0.2)
        assert ghost in fake.pods

        await pilot.press("t")
        await answer(app, pilot, "y")
        # the orphan stays listed, terminated, with what it cost (its row is where "spent" counts it)
        await until(pilot, lambda: ghost in fake.gone and ghost in screen.pods
                    and screen.pods[ghost].state == "terminated")
        assert fake.billing_now() == [known]
        await until(pilot, lambda: any("terminated (RunPod confirms it is gone)" in t for t in toasts(app)))

        table.move_cursor(row=list(screen.order).index(known))
        await until(pilot, lambda: screen.selected == known)
        await pilot.press("t")
        await answer(app, pilot, "y")
        await until(pilot, lambda: known in fake.gone)
        assert fake.billing_now() == []
        await until(pilot, lambda: db.execute("SELECT state FROM pods WHERE pod_id = ?", [known]).fetchone()
                    == ("terminated",))


async def test_stop_asks_then_releases_the_gpu(settings, db, fake, world):
    known, ghost, _, _ = world
    app = BizsentApp(settings, settings.db_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await open_pods(app, pilot)
        await until(pilot, lambda: screen.selected == known and ghost in screen.pods)
        await pilot.press("s")
        await answer(app, pilot, "y")
        await until(pilot, lambda: fake.pods[known].status == "EXITED")
        assert fake.billing_now() == [ghost]
        await until(pilot, lambda: screen.pods.get(known) is not None and screen.pods[known].state == "stopped")
        assert db.execute("SELECT state FROM pods WHERE pod_id = ?", [known]).fetchone() == ("stopped",)


async def test_status_bar_and_startup_orphan_warning(settings, db, fake, world):
    app = BizsentApp(settings, settings.db_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: any("orphan pod(s) billing" in t for t in toasts(app)))
        warning = next(t for t in toasts(app) if "orphan pod(s) billing" in t)
        assert "1 orphan pod(s) billing $0.69/h" in warning and "F6" in warning and "bizsent pods reap" in warning
        bar = app.screen.query_one(StatusBar)
        await until(pilot, lambda: app.status.pods_billing == 1)
        assert " pods 1 $0.69/h " in str(bar.render())
        assert CANARY not in "".join(toasts(app))


async def test_log_tail_and_loss_curve_follow_the_run(settings, db, fake, world):
    known, _, run_id, log = world
    add_train_steps(db, run_id, 3)
    app = BizsentApp(settings, settings.db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pods(app, pilot)
        await until(pilot, lambda: screen.selected == known)
        plot, tail = screen.query_one(LossPlot), screen.query_one(LogTail)
        await until(pilot, lambda: len(plot.train) == 3 and tail.lines[-1:] == ["step 1 loss 2.0"])
        assert [s for s, _ in plot.train] == [1, 2, 3]

        add_train_steps(db, run_id, 5)  # steps 1..5 again: the curve gets every row the run writes
        with log.open("a", encoding="utf-8") as f:
            f.write("step 5 loss 1.1\n")
        await until(pilot, lambda: len(plot.train) == 8 and tail.lines[-1] == "step 5 loss 1.1")
        assert tail.lines[0] == "agent up"


async def test_without_a_key_the_screen_opens_and_says_what_is_needed(settings, db, fake, world, monkeypatch):
    known, ghost, _, _ = world
    monkeypatch.delenv("RUNPOD_API_KEY")
    app = BizsentApp(settings, settings.db_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await open_pods(app, pilot)
        note = screen.query_one("#pods-note", Static)
        await until(pilot, lambda: "RUNPOD_API_KEY is not set" in str(note.render()))
        assert list(screen.pods) == [known]  # the database's pod only: the account is not read
        await pilot.press("t")
        await until(pilot, lambda: any("RUNPOD_API_KEY is not set" in t for t in toasts(app)))
        assert not isinstance(app.screen, ConfirmModal)
        assert fake.requests == []  # no call at all without the key
        assert set(fake.billing_now()) == {known, ghost}


async def test_runpod_down_is_one_line(settings, db, fake, world):
    settings.runpod.api_base = "http://127.0.0.1:9"  # nothing listens
    app = BizsentApp(settings, settings.db_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await open_pods(app, pilot)
        note = screen.query_one("#pods-note", Static)
        await until(pilot, lambda: "RunPod could not be read" in str(note.render()))
        assert "\n" not in str(note.render()).strip() and screen.pods
        await until(pilot, lambda: any("could not check for orphan pods" in t for t in toasts(app)))


async def test_n_plans_asks_with_price_and_kill_switches_then_starts_a_pod_job(tmp_path, fake, monkeypatch):
    """The detached job reads the config file: it names the fake, so nothing leaves this machine."""
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    cfg = tmp_path / "run" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text(f'[data]\ndir = "data"\n[runpod]\napi_base = "{fake.url}"\nproxy_url = "{fake.proxy_url}"\n'
                   'install_deps = false\n[tui]\nrefresh_s = 0.05\n[images]\nread_text = false\n', encoding="utf-8")
    settings = load_settings(cfg, environ={})
    db = open_db(settings.db_path)
    build_store(db, settings.image_dir)
    app = BizsentApp(settings, settings.db_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_pods(app, pilot)
        await pilot.press("n")
        await until(pilot, lambda: app.screen.query("#prompt-input"))
        prompt = str(app.screen.query_one(".modal-title").render())
        assert "bundle" in prompt and "nothing is created" not in prompt  # enter writes the bundle: says so
        app.screen.query_one("#prompt-input").value = "screen-run"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), timeout=30)
        question = str(app.screen.query_one("#confirm-question", Static).render())
        assert "run screen-run" in question and "expected cost: about $" in question
        assert "kill switches" in question and "$0.34/h" in question
        assert re.search(r" x \d+(\.\d)? epochs,", question), question  # 2.1, never 2.11765
        assert fake.created_bodies == []  # nothing created before the yes
        await pilot.press("y")
        await until(pilot, lambda: db.execute("SELECT count(*) FROM jobs WHERE kind = 'pod'").fetchone()[0] == 1)
        job = db.execute("SELECT id, params FROM jobs WHERE kind = 'pod'").fetchone()
        assert '"screen-run"' in job[1]
        await until(pilot, lambda: any("started as job" in t for t in toasts(app)))
    control.cancel(db, settings, job[0])  # stopped right away: its process terminates any pod it made
    deadline = time.monotonic() + 60
    while (fake.billing_now() or rows.get(db, job[0])["state"] in ("queued", "starting", "running")) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fake.billing_now() == []
    db.close()


async def test_terminating_a_pod_that_a_job_runs_cancels_the_job(settings, db, fake, world):
    """Issue 21.2: `t` on a pod whose job waits on it (in `connecting`, say) cancels that job too: its process stops
    waiting for a pod that is gone (tests/test_pod_cancel.py runs that process) instead of failing much later."""
    import subprocess

    from bizsent.core.store import liveness

    known = world[0]
    worker = subprocess.Popen(["sleep", "60"])
    job = rows.queue(db, "pod", {"name": "run1"})
    db.execute("UPDATE jobs SET state = 'running', pid = ?, host = ?, heartbeat_at = ?, counts = ? WHERE id = ?",
               [worker.pid, liveness.HOST, now(), '{"state": "connecting"}', job])
    db.execute("UPDATE pods SET job_id = ? WHERE pod_id = ?", [job, known])
    try:
        app = BizsentApp(settings, settings.db_path)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            screen = await open_pods(app, pilot)
            table = screen.query_one("#pods", DataTable)
            await until(pilot, lambda: known in screen.pods)
            table.move_cursor(row=list(screen.order).index(known))
            await until(pilot, lambda: screen.selected == known)
            await pilot.press("t")
            await answer(app, pilot, "y")
            await until(pilot, lambda: any(f"its job {job} is cancelled" in t for t in toasts(app)))
        assert known in fake.gone and rows.get(db, job)["state"] == "cancelled"
    finally:
        worker.kill()
        worker.wait()
