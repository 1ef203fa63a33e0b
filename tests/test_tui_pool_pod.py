"""The console's `p` for a run trained on RunPod, through Textual's Pilot against the fake RunPod: the pool is
scored on a pod, so the plan and its price are asked about first; a no leaves nothing started (the job row says
so, RunPod was asked for prices only). A run trained here keeps scoring on this machine."""

from __future__ import annotations

import pytest
from bizsent.core.model.events import set_params
from bizsent.jobs import rows
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.confirm import ConfirmModal
from bizsent.tui.screens.spotcheck import SpotCheckScreen
from fakes.eval_runs import add_run
from fakes.runpod_server import FakeRunpod
from fakes.tui import build_store, open_screen, until

CANARY = "canary-runpod-user-key-5d1e77"


@pytest.fixture
def fake(tmp_path):
    with FakeRunpod(CANARY, root=tmp_path / "pods", boot_delay_s=0.05) as server:
        yield server


async def test_p_on_a_runpod_run_asks_with_the_pod_plan_and_no_starts_nothing(settings, db, fake, monkeypatch,
                                                                                tmp_path):
    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    settings.runpod.api_base = fake.url
    settings.tui.image_renderer = "halfcell"
    build_store(db, settings.image_dir)
    run_id = add_run(db, "pod-run")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    db.execute("UPDATE runs SET adapter_path = ? WHERE id = ?", [str(adapter), run_id])
    set_params(db, run_id, where="runpod")
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_screen(app, pilot, "spotcheck", SpotCheckScreen, lambda screen: screen.loaded)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), timeout=30)
        question = str(app.screen.query_one("#confirm-question").content)
        assert f"with run {run_id} (pod-run)" in question and "posts to score" in question
        assert "expected cost: about $" in question and "kill switches" in question
        await pilot.press("n")
        await until(pilot, lambda: rows.listing(db, "pod-pool")[0]["state"] == "cancelled", timeout=30)
    (job,) = rows.listing(db, "pod-pool")
    assert job["state"] == "cancelled" and "not confirmed" in job["error"]
    assert fake.created_bodies == [] and fake.pods == {}


async def test_e_on_a_run_whose_base_model_is_not_here_asks_with_the_pod_plan(settings, db, fake, monkeypatch,
                                                                               tmp_path):
    """The Eval screen's `e` for the 7B on a laptop: the evaluation goes to a pod, so its plan (zero-shot and the
    run, on the human dev split) and price come first; a no leaves the row cancelled and RunPod untouched."""
    from bizsent.tui.screens.eval import EvalScreen

    monkeypatch.setenv("RUNPOD_API_KEY", CANARY)
    settings.runpod.api_base = fake.url
    settings.tui.image_renderer = "halfcell"
    build_store(db, settings.image_dir)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "dev.jsonl").write_text('{"post_id": 1}\n{"post_id": 2}\n', encoding="utf-8")
    run_id = add_run(db, "pod-run", bundle=str(bundle))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    db.execute("UPDATE runs SET adapter_path = ?, base_model = ? WHERE id = ?",
               [str(adapter), "Qwen/Qwen2.5-VL-7B-Instruct", run_id])
    db.conn.commit()
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(app, pilot, "eval", EvalScreen)
        await until(pilot, lambda: screen.run_id == run_id)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), timeout=30)
        question = str(app.screen.query_one("#confirm-question").content)
        assert f"evaluate run {run_id} (pod-run) and the base model without adapter (zero-shot)" in question
        assert "human dev split: 2 posts each" in question and "expected cost: about $" in question
        await pilot.press("n")
        await until(pilot, lambda: rows.listing(db, "pod-eval")[0]["state"] == "cancelled", timeout=30)
    (job,) = rows.listing(db, "pod-eval")
    assert "not confirmed" in job["error"]
    assert fake.created_bodies == [] and fake.pods == {}
