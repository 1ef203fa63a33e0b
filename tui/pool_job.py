"""The console's "score the pool" key (`p`), shared by the Spot-check and Label screens: start `bizsent score-pool`
as a detached job (it keeps running after the console quits) and say in one line what happened. For a run trained
on RunPod the pool is scored on a pod (jobs.pod_pool): its plan and price are shown first, and only a yes starts
it."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from bizsent.core.errors import BizsentError
from bizsent.core.store import open_db
from bizsent.tui.app import BizsentNode
from bizsent.tui.workers import background


def start_pool_scoring(app: Any) -> tuple[str, bool]:
    """(message, is_error). Runs in a worker thread, on a connection of its own: spawning takes a moment and
    must not hold up the console's writer thread."""
    from bizsent.jobs.pool import launch

    # Anything else that fails is reported by the calling `background` worker: one line, the trace in the log.
    try:
        with closing(open_db(app.db_path, create=False)) as db:
            job_id, pid, run_id = launch(db, app.db_path, app.config_path(), app.settings.data_dir / "logs")
    except BizsentError as exc:
        return str(exc), True
    return (f"scoring the pool with run {run_id} in the background (job {job_id}, pid {pid}); Spot-check shows "
            "its progress and the predictions as they land"), False


class ScorePoolKey(BizsentNode):
    """Mixin for a screen with the `p` binding to "score_pool": starts the job off the event loop and says what
    happened; a screen that shows the job's progress extends `pool_scoring_started`."""

    def action_score_pool(self) -> None:
        self._start_scoring()

    @background("starting the pool-scoring job", group="score-pool", exclusive=True)
    def _start_scoring(self) -> None:
        from bizsent.jobs.pod_pool import plan_for_console

        app = self.bizsent
        try:
            with closing(open_db(app.db_path, create=False)) as db:
                planned = plan_for_console(db, app.settings)
        except BizsentError as exc:
            app.call_from_thread(self.pool_scoring_started, str(exc), True)
            return
        if planned is None:
            app.call_from_thread(self.pool_scoring_started, *start_pool_scoring(app))
        else:
            app.call_from_thread(self._confirm_pod, *planned)

    def _confirm_pod(self, job_id: int, plan: Any) -> None:
        from bizsent.tui.screens.confirm import ConfirmModal

        question = "\n".join([*plan.render(), "", "The run was trained on RunPod: score the pool on a pod? It bills"
                                                  " by the hour until the scores are collected."])
        self.bizsent.push_screen(ConfirmModal(question, yes="Start pod"),
                                 callback=lambda yes: self._answer_pod(job_id, bool(yes)))

    @background("starting the pod pool-scoring job", group="score-pool", exclusive=True)
    def _answer_pod(self, job_id: int, yes: bool) -> None:
        from bizsent.jobs.pod_pool import drop_planned, start_planned

        app = self.bizsent
        with closing(open_db(app.db_path, create=False)) as db:
            if not yes:
                drop_planned(db, job_id)
                app.call_from_thread(self.pool_scoring_started, "nothing was started", False)
                return
            pid = start_planned(db, app.db_path, app.config_path(), app.settings.data_dir / "logs", job_id)
        app.call_from_thread(self.pool_scoring_started, f"scoring the pool on a RunPod pod in the background (job"
                             f" {job_id}, pid {pid}); Spot-check shows the predictions once they are collected", False)

    def pool_scoring_started(self, text: str, error: bool) -> None:
        self.bizsent.notify(text, severity="error" if error else "information", timeout=8)
