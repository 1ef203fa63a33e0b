"""`bizsent eval RUN --pod` and `bizsent score-pool --pod` end to end through the real CLI, offline: the fake RunPod
runs the real agent, which installs the project wheel and scores on the tiny model with the same engine as the
local commands. Eval: the run's test split, the base model without adapter (zero-shot) first; the laptop stores
the live events as they come, then the predictions, the final eval events and the report. Pool: the pool posts at
the run's pixel budget, their predictions merged so Spot-check lists them. Each pod is terminated at the end."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time

import psutil
import pytest
from bizsent.core.model.events import run_events
from fakes.pod_run import CANARY, pod_rig


@pytest.fixture(scope="module")
def rig(tmp_path_factory, model_dir):
    """A laptop project with a pool of 5 posts and run `base`, trained here on the tiny model (2 steps)."""
    with pod_rig(tmp_path_factory.mktemp("pod-eval") / "laptop", model_dir, unlabeled=5) as rig:
        trained = rig.cli("train", "--local", "--name", "base", "--max-steps", "2", "--no-eval")
        assert trained.returncode == 0, trained.stderr[-3000:]
        yield rig


def test_eval_on_a_pod_end_to_end(rig):
    out = rig.cli("eval", "base", "--pod", "--test", "--yes")
    assert out.returncode == 0, out.stderr[-3000:]
    # the plan and its price came before anything was created
    assert "evaluate run 1 (base) and the base model without adapter (zero-shot) on the human test split:" \
           " 3 posts each" in out.stderr
    assert "6 posts to score" in out.stderr and "expected cost: about $" in out.stderr
    fake = rig.fake
    (pod_id,) = fake.gone
    assert f"pod {pod_id} terminated (RunPod confirms it is gone)" in out.stdout
    assert fake.billing_now() == [] and fake.pods == {}
    with contextlib.closing(rig.db()) as db:
        runs = {name: (rid, state, adapter, json.loads(params)) for rid, name, state, adapter, params in
                db.execute("SELECT id, name, state, adapter_path, params FROM runs").fetchall()}
        job = db.execute("SELECT kind, state, counts FROM jobs WHERE kind = 'pod-eval'").fetchone()
        preds = {rid: db.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [rid]).fetchone()[0]
                 for rid, *_ in runs.values()}
        events = {name: run_events(db, runs[name][0], "eval") for name in runs}
        pod_state = db.execute("SELECT state FROM pods WHERE pod_id = ?", [pod_id]).fetchone()[0]
    # the zero-shot run is its own run, named so, without an adapter; both runs hold their 3 test predictions
    base_id, zs_id = runs["base"][0], runs["base-zero-shot"][0]
    assert runs["base-zero-shot"][1] == "done" and runs["base-zero-shot"][2] is None
    assert runs["base-zero-shot"][3]["zero_shot"] is True and runs["base-zero-shot"][3]["pod_id"] == pod_id
    assert preds[base_id] == 3 and preds[zs_id] == 3
    # one final eval event on the test split each, the live ones replaced by it
    for name in ("base", "base-zero-shot"):
        (final,) = [e for e in events[name] if e.data.get("split") == "test"]
        assert not final.data.get("live") and sum(map(sum, final.confusion)) == 3
        assert final.data["accuracy_ci"] and final.data["n"] == 3
    # the live events came through the watch channel as the pod scored: the job counted them per target
    assert job[:2] == ("pod-eval", "done") and json.loads(job[2])["scored"] == {"zero-shot": 3, "model": 3}
    pod_events = fake.root / pod_id / "workspace" / "bizsent" / "runs"
    (events_file,) = pod_events.glob("*/events.jsonl")
    live = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [(e["data"]["target"], e["step"]) for e in live] == [("zero-shot", 2), ("zero-shot", 3),
                                                                 ("model", 2), ("model", 3)]
    assert pod_state == "terminated"
    # the report shows the zero-shot run beside the fine-tuned one, on the same posts
    report = (rig.settings.data_dir / "runs" / "base" / "report.md").read_text()
    assert "zero-shot (base-zero-shot)" in report and "human test split" in report.lower()
    # the test labels went up for this step only: the eval payload has them, the adapter beside the bundle
    folder = next((rig.settings.data_dir / "runs").glob("eval*-base"))
    with tarfile.open(folder / "payload" / "bundle.tar") as tar:
        names = tar.getnames()
    assert "test.jsonl" in names and "train.jsonl" not in names
    assert "adapter/adapter_model.safetensors" in names


def test_score_pool_on_a_pod_fills_the_spot_check_list(rig):
    from bizsent.core.evaluate.spotcheck import spot_items
    from bizsent.core.model.pool import pool_ids
    from PIL import Image

    with contextlib.closing(rig.db()) as db:
        pool = pool_ids(db)  # the 5 unlabelled posts and the 12 with API labels only
    out = rig.cli("score-pool", "--run", "base", "--pod", "--yes", "--limit", "10")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"score 10 pool posts with run 1 (base); 0/{len(pool)} of the pool are scored already" in out.stderr
    assert "10 posts to score" in out.stderr and "expected cost: about $" in out.stderr
    assert f"10 pool posts scored on the pod; 10/{len(pool)} of the pool now have a prediction" in out.stdout
    assert rig.fake.billing_now() == [] and rig.fake.pods == {}
    with contextlib.closing(rig.db()) as db:
        items = spot_items(db, 1)
        scored = db.execute(f"SELECT post_id, embedding FROM predictions WHERE run_id = 1 AND post_id IN"
                            f" ({','.join(map(str, pool))})").fetchall()
        job = db.execute("SELECT state FROM jobs WHERE kind = 'pod-pool'").fetchone()
    # the first 10 pool posts are in Spot-check's list with the pod's predictions and packed embeddings (the
    # queue's diversity step reads them)
    assert sorted(pid for pid, _ in scored) == pool[:10] and all(len(emb) == 128 for _, emb in scored)
    assert set(pool[:10]) <= {item.post_id for item in items} and job == ("done",)
    # what went up: the pool's images at the run's pixel budget (3136 px), no human labels of any split
    folder = next((rig.settings.data_dir / "runs").glob("pool*-base"))
    with tarfile.open(folder / "payload" / "bundle.tar") as tar:
        names = tar.getnames()
    assert not [n for n in names if n.endswith(".jsonl") and not n.startswith("pool/")]
    images = sorted((folder / "pool" / "images").glob("*.jpg"))
    assert len(images) == 10 and all(f"pool/images/{p.name}" in names for p in images)
    for path in images:
        with Image.open(path) as img:
            assert img.width * img.height <= 3136


def pod_work_process(fake) -> psutil.Process | None:
    """The scoring process inside a live fake pod (the agent's child running `bizsent pod-work`)."""
    for pod in list(fake.pods.values()):
        with contextlib.suppress(psutil.Error, AttributeError):
            for kid in psutil.Process(pod.proc.pid).children(recursive=True):
                if "pod-work" in kid.cmdline():
                    return kid
    return None


def shown(renderable) -> str:
    from rich.console import Console

    console = Console(width=160, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def live_lines(fake) -> bool:
    return any(path.stat().st_size for pod in list(fake.pods.values())
               for path in (fake.root / pod.id).glob("workspace/bizsent/runs/*/events.jsonl"))


async def test_eval_screen_watches_a_pod_runs_matrix_fill_in(rig):
    from bizsent.tui.app import BizsentApp
    from bizsent.tui.screens.eval import EvalScreen
    from bizsent.tui.widgets.confusion import ConfusionMatrix
    from fakes.tui import open_screen, until

    settings = rig.settings
    settings.tui.image_renderer, settings.tui.refresh_s = "halfcell", 0.05
    with contextlib.closing(rig.db()) as db:
        before = db.execute("SELECT max(id) FROM runs").fetchone()[0]
    proc = rig.popen("eval", "base", "--pod", "--test", "--yes")
    frozen: list[psutil.Process] = []
    try:
        app = BizsentApp(settings=settings, db_path=settings.db_path)
        async with app.run_test(size=(110, 36)) as pilot:
            screen = await open_screen(app, pilot, "eval", EvalScreen)
            matrix = screen.query_one(ConfusionMatrix)

            def first_batch_scored() -> bool:
                """Hold the pod's scoring once its first batch is out, as a slow GPU would."""
                work = pod_work_process(rig.fake)
                if work is not None and live_lines(rig.fake):
                    work.suspend()
                    frozen.append(work)
                return bool(frozen)

            await until(pilot, first_batch_scored, timeout=300)
            await until(pilot, lambda: any(r.id > before for r in screen.runs), timeout=60)
            new = max(r.id for r in screen.runs)
            assert next(r for r in screen.runs if r.id == new).name == "base-zero-shot"
            while screen.run_id != new:
                await pilot.press("up")
                await pilot.pause(0.05)
            # the live matrix: the posts the pod has scored so far, from events that came through the channel
            await until(pilot, lambda: matrix.matrix and "scoring" in shown(matrix.content), timeout=60)
            scored_so_far = sum(map(sum, matrix.matrix))
            assert scored_so_far in (2, 3) and f"scoring {scored_so_far}/3" in shown(matrix.content)
            frozen[0].resume()
            # then the final matrix of all 3 test posts replaces it
            await until(pilot, lambda: sum(map(sum, matrix.matrix)) == 3
                        and "scoring" not in shown(matrix.content), timeout=300)
            assert f"run {new} test" in shown(matrix.content)
    finally:
        for work in frozen:
            with contextlib.suppress(psutil.Error):
                work.resume()
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert rig.fake.billing_now() == []


def job_of(rig, kind: str, pid: int) -> dict | None:
    """The job of `kind` that process `pid` runs, once it has taken it over."""
    from bizsent.jobs import rows

    with contextlib.closing(rig.db()) as db:
        return next((job for job in rows.listing(db, kind) if job["pid"] == pid), None)


def wait_for(condition, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["cancel", "kill"])
def test_a_cancelled_or_killed_pod_eval_leaves_nothing_billing(rig, how, monkeypatch):
    from bizsent.jobs import control

    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)  # what `bizsent jobs cancel` reads, as the console's does
    # Killed, the laptop collects nothing: the watchdog stops the pod grace_min after the scoring ended, so that
    # run has a short one (the module's other tests keep the long one a loaded machine's laptop needs to collect).
    grace = {"BIZSENT_RUNPOD__GRACE_MIN": "0.02"} if how == "kill" else {}
    proc = rig.popen("eval", "base", "--pod", "--test", "--yes", settings=grace)
    try:
        wait_for(lambda: (job_of(rig, "pod-eval", proc.pid) or {"counts": {}})["counts"].get("state")
                 in ("installing", "running"))
        job_id = job_of(rig, "pod-eval", proc.pid)["id"]
        (pod_id,) = rig.fake.pods
        if how == "kill":  # the laptop goes away: the pod's watchdog stops it, the cancel of the dead job ends it
            proc.kill()
            proc.wait(timeout=30)
            wait_for(lambda: rig.fake.billing_now() == [])
            assert rig.fake.pods[pod_id].status == "EXITED"
        with contextlib.closing(rig.db()) as db:
            line = control.cancel(db, rig.settings, job_id)
        if how == "kill":
            assert f"pod {pod_id} terminated (RunPod confirms it is gone)" in line
        else:
            assert f"terminates pod {pod_id}" in line
        proc.wait(timeout=120)
        wait_for(lambda: rig.fake.pods == {} and rig.fake.billing_now() == [])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    with contextlib.closing(rig.db()) as db:
        job = db.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()[0]
        pod = db.execute("SELECT state FROM pods WHERE pod_id = ?", [pod_id]).fetchone()[0]
        zero_shot = db.execute("SELECT state FROM runs WHERE job_id = ?", [job_id]).fetchone()[0]
    assert (job, pod, zero_shot) == ("cancelled", "terminated", "cancelled")
