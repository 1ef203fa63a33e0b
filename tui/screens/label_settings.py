"""The Label screen's labeling session: read on mount, saved after each change, and the keys that change its
settings (split, order, disagreements first, filter, goal), each of which changes what the session labels next.
A mixin of tui.screens.label.LabelScreen."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bizsent.core.label.queue import QUEUE_ORDERS
from bizsent.core.store.sessions import LabelSession, load_label_session, new_label_session, save_label_session
from bizsent.tui.screens.prompt import PromptModal
from bizsent.tui.workers import background, reading
from textual.message import Message

GOALS = (25, 50, 100, 200)


class LabelSettingsKeys:
    """Needs the screen's split, order, disagree_first, filter_text, goal, counts, pinned, started_at and notice,
    and its _pin, _show_flags, _show_counts, reload_queue, refresh_review and restart_review (LabelReviewKeys)."""

    @dataclass
    class SessionLoaded(Message):
        """The saved labeling session (None: start a new one)."""

        session: LabelSession | None

    @background("reading your labeling session", group="label-session", exclusive=True)
    def _load_session(self) -> None:
        with reading(self.bizsent.db_path) as db:
            session = load_label_session(db)
        self.post_message(self.SessionLoaded(session))

    def on_label_settings_keys_session_loaded(self, message: LabelSettingsKeys.SessionLoaded) -> None:
        session = message.session or new_label_session()
        self.started_at, self.split, self.goal = session.started_at, session.split, session.goal
        self.order = session.order if session.order in QUEUE_ORDERS else "random"
        self.disagree_first, self.filter_text = session.disagree_first, session.filter_text
        self.counts = Counter(session.counts)
        if self.pinned is None:  # a post opened from Posts meanwhile wins over the saved one
            self._pin(session.pinned)
        elif self.pinned != session.pinned:
            self._save_session()  # opened before the saved session was read: it could not be saved then
        self._show_flags()
        self._show_counts()
        self.reload_queue()
        self.refresh_review()

    def session(self) -> LabelSession:
        return LabelSession(started_at=self.started_at, split=self.split, order=self.order,
                            disagree_first=self.disagree_first, filter_text=self.filter_text, goal=self.goal,
                            counts={k: v for k, v in self.counts.items() if v}, pinned=self.pinned)

    def _save_session(self) -> None:
        # Queued after the answer's own write (one FIFO writer): the saved counts never run ahead of the labels.
        if self.started_at:  # not before the saved one is read: it would be overwritten with defaults
            snapshot = self.session()
            self.bizsent.write(lambda db: save_label_session(db, snapshot))

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
