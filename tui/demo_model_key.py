"""The console's "demo model" key (`m`), on Eval and Spot-check: after a y/n saying what it does, how long it takes
and that it costs nothing, start `bizsent demo-model` as a detached job (jobs.demo_model), so a newcomer with no
model yet gets live runs, metrics and predictions from the keyboard."""

from __future__ import annotations

from contextlib import closing

from bizsent.core.errors import BizsentError
from bizsent.core.store import open_db
from bizsent.tui.app import BizsentNode
from bizsent.tui.screens.confirm import ConfirmModal
from bizsent.tui.workers import background


class DemoModelKey(BizsentNode):
    """Mixin for a screen with a binding to "demo_model"."""

    def action_demo_model(self) -> None:
        from bizsent.jobs.demo_model import offer

        def answer(yes: bool | None) -> None:
            if yes:
                self._start_demo_model()

        self.bizsent.push_screen(ConfirmModal(offer(), yes="Build and train"), answer)

    @background("starting the demo model", group="demo-model", exclusive=True)
    def _start_demo_model(self) -> None:
        from bizsent.jobs.demo_model import launch

        app = self.bizsent
        try:
            with closing(open_db(app.db_path, create=False)) as db:
                job_id, pid = launch(db, app.db_path, app.config_path(), app.settings.data_dir,
                                     app.settings.data_dir / "logs")
        except BizsentError as exc:
            app.call_from_thread(app.notify, str(exc), severity="warning", timeout=8)
            return
        app.call_from_thread(app.notify, f"building and training the demo model in the background (job {job_id}, "
                             f"pid {pid}): its run shows on Eval as it trains, Jobs follows each stage", timeout=8)
