"""The Eval screen's `e` and `T` for a run whose base model is not on this machine (the 7B on a CPU laptop): the
run is evaluated on a RunPod pod (jobs.pod_eval), whose plan and price are shown first; only a yes starts it, as
a detached job whose live events fill the screen's matrix as a local evaluation's do."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from bizsent.core.errors import BizsentError
from bizsent.core.store import open_db
from bizsent.tui.app import BizsentNode
from bizsent.tui.workers import background


class PodEvalKey(BizsentNode):
    """Mixin for the Eval screen: `pod_eval_planned(run_id, split)` (from a worker thread) says whether the run
    goes to a pod, and if so asks; the answer starts the job or drops its queued row."""

    def pod_eval_planned(self, run_id: int, split: str) -> bool:
        """True when the run is evaluated on a pod (the question is on screen, or a one-line refusal was shown);
        False when it can be evaluated here. Runs in a worker thread."""
        from bizsent.jobs.pod_eval import plan_for_console

        app = self.bizsent
        try:
            with closing(open_db(app.db_path, create=False)) as db:
                planned = plan_for_console(db, app.settings, run_id, split)
        except BizsentError as exc:
            app.call_from_thread(app.notify, str(exc), severity="warning", timeout=8)
            return True
        if planned is None:
            return False
        app.call_from_thread(self._confirm_pod_eval, *planned)
        return True

    def _confirm_pod_eval(self, job_id: int, plan: Any) -> None:
        from bizsent.tui.screens.confirm import ConfirmModal

        question = "\n".join([*plan.render(), "", "The run's base model is not on this machine: evaluate it on a"
                                                  " pod? It bills by the hour until the scores are collected."])
        self.bizsent.push_screen(ConfirmModal(question, yes="Start pod"),
                                 callback=lambda yes: self._answer_pod_eval(job_id, bool(yes)))

    @background("starting the pod evaluation", group="eval-launch", exclusive=True)
    def _answer_pod_eval(self, job_id: int, yes: bool) -> None:
        from bizsent.jobs.pod_pool import drop_planned, start_planned

        app = self.bizsent
        with closing(open_db(app.db_path, create=False)) as db:
            if not yes:
                drop_planned(db, job_id)
                app.call_from_thread(app.notify, "nothing was started")
                return
            pid = start_planned(db, app.db_path, app.config_path(), app.settings.data_dir / "logs", job_id)
        app.call_from_thread(app.notify, f"evaluating on a RunPod pod in the background (job {job_id}, pid {pid});"
                             " the matrix fills in as the pod scores, the Jobs screen follows it", timeout=8)
