"""The Label screen's session settings keys (split, order, disagreements first, filter, goal): each changes what
the session labels next and is saved with the session. A mixin of tui.screens.label.LabelScreen."""

from __future__ import annotations

from collections import Counter

from bizsent.core.label.queue import QUEUE_ORDERS
from bizsent.core.store.sessions import new_label_session
from bizsent.tui.screens.prompt import PromptModal

GOALS = (25, 50, 100, 200)


class LabelSettingsKeys:
    """Needs the screen's split, order, disagree_first, filter_text, goal and notice, and its _show_flags,
    _show_counts, reload_queue, _save_session and restart_review (LabelReviewKeys)."""

    def action_new_session(self) -> None:
        self.started_at, self.counts, self.history = new_label_session().started_at, Counter(), []
        self.restart_review()
        self._show_counts()
        self._save_session()
        self.notify("new labeling session: counts start from zero")

    def action_toggle_split(self) -> None:
        self.split = "train" if self.split == "test" else "test"
        if self.split == "test" and not self.random_sample:
            self.notify("the test split takes posts in random order only: answers go to the train pool until the "
                        "order is random (o) without disagreements first (d)", timeout=6)
        self._show_flags()
        if self.bizsent.settings.labeling.test_reserve > 0:  # the test reservation is a queue of its own
            self.reload_queue()
        self._save_session()

    def action_cycle_order(self) -> None:
        # "filter" is in the cycle once `f` has set one; until then `o` steps over it.
        orders = [o for o in QUEUE_ORDERS if o != "filter" or self.filter_text]
        self.order = orders[(orders.index(self.order) + 1) % len(orders)] if self.order in orders else orders[0]
        self.notice = ""
        self._show_flags()
        self.reload_queue()
        self._save_session()

    def action_toggle_disagree_first(self) -> None:
        self.disagree_first = not self.disagree_first
        self._show_flags()
        self.reload_queue()
        self._save_session()

    def action_filter(self) -> None:
        def apply(text: str | None) -> None:
            if text is None:
                if self.order == "filter" and not self.filter_text:
                    self.order = "random"
                self._show_flags()
                return
            self.filter_text, self.order = text.strip(), "filter"
            self._show_flags()
            self.reload_queue()
            self._save_session()

        self.app.push_screen(
            PromptModal("queue filter: text and/or source:label (e.g. openai:bullish moon)", self.filter_text),
            apply,
        )

    def action_cycle_goal(self) -> None:
        self.goal = GOALS[(GOALS.index(self.goal) + 1) % len(GOALS)] if self.goal in GOALS else GOALS[0]
        self._show_counts()
        self._save_session()
