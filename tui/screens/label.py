"""Label: the keyboard labeling session that builds the human test set.

Only the random order adds to the test split, so the test set stays a random sample of the pool: under any other
order (newest, filter, active learning, disagreements first) and for a post opened from Posts, answers go to the
training pool, and the flags line says so. Each human label records how its post was chosen (labels.sampling).

One post at a time, image and text side by side, other labels hidden (no anchoring; tui.widgets.label_view
prefetches the next ones). Each answer goes to the writer thread at once. The keys are in label_help.md (`?`).
"""

from __future__ import annotations

import gc
from collections import Counter
from dataclasses import dataclass
from importlib.resources import files

from bizsent.core.label.human import (
    answer_target,
    current_human,
    random_sample,
    rewrites_test_label,
    why_split,
    write_answer,
)
from bizsent.core.label.queue import LabelQueue, QueueSpec, label_queue, parse_queue_filter
from bizsent.core.labels import Label, reserved_for_test
from bizsent.core.store.history import LabelValue, actor
from bizsent.core.store.posts import add_note, add_skip, delete_skip, restore_label
from bizsent.core.store.records import NewLabel
from bizsent.tui.keys import with_ids
from bizsent.tui.pool_job import ScorePoolKey
from bizsent.tui.screens.confirm import ConfirmModal
from bizsent.tui.screens.label_review import WRITER, Answer, LabelReview, LabelReviewKeys
from bizsent.tui.screens.label_settings import LabelSettingsKeys
from bizsent.tui.screens.labeling_keys import LabelingKeys, digit_guard
from bizsent.tui.screens.prompt import PromptModal
from bizsent.tui.screens.zoom import ZoomKeys
from bizsent.tui.widgets.key_bar import KeyBar
from bizsent.tui.widgets.label_bars import LabelFlags, LabelTally
from bizsent.tui.widgets.label_view import LabelPostView
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.workers import background, reading
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen

PREFETCH = 6  # posts ahead whose text and decoded image are kept ready
KEEP_BEHIND = 3  # posts behind kept for undo
HOLD_S = 0.05  # how long a label key waits for a next post not prepared yet before drawing "loading…"
ORDER_NAMES = {"random": "random", "newest": "newest", "filter": "filter", "active": "active learning"}
RANDOM_SEED = 1322


class LabelScreen(LabelingKeys, LabelSettingsKeys, LabelReviewKeys, ZoomKeys, ScorePoolKey, Screen):
    TITLE = "Label"
    HELP_FILE = "labeling_rules.md"  # shown under the keys by the help modal (`?`)
    BINDINGS = with_ids("label", [
        Binding("1", "answer('bearish')", "bearish"),
        Binding("2", "answer('neutral')", "neutral"),
        Binding("3", "answer('bullish')", "bullish"),
        Binding("s", "toggle('sarcastic')", "sarcastic"),
        Binding("w", "toggle('unsure')", "unsure"),
        Binding("x", "skip", "skip"),
        Binding("u", "undo", "undo"),
        Binding("n", "note", "note"),
        Binding("b", "back", "answers", show=False),
        Binding("z", "zoom", "zoom", show=False),
        Binding("v", "viewer", "viewer", show=False),
        Binding("t", "toggle_split", "split", show=False),
        Binding("o", "cycle_order", "order", show=False),
        Binding("d", "toggle_disagree_first", "disagreements first", show=False),
        Binding("pagedown", "scroll_text(1)", "text down", show=False),
        Binding("pageup", "scroll_text(-1)", "text up", show=False),
        Binding("f", "filter", "filter", show=False),
        Binding("g", "cycle_goal", "goal", show=False),
        Binding("p", "score_pool", "score pool", show=False),
        Binding("ctrl+n", "new_session", "new session", show=False),
        digit_guard("123"), Binding("q", "quit_confirm", "quit"),
    ])
    HELP = files("bizsent.tui").joinpath("label_help.md").read_text(encoding="utf-8").strip()

    @dataclass
    class QueueLoaded(Message):
        generation: int
        queue: LabelQueue

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[int] = []
        self.pos = 0
        self._generation = 0
        self.sarcastic = False
        self.unsure = False
        self.split = "test"
        self.order = "random"
        self.disagree_first = False
        self.pinned: int | None = None  # a post opened from Posts: first in the queue whatever the order
        self.pinned_label: LabelValue | None = None  # its current human label (a correction replaces it)
        self.undone: Answer | None = None  # the answer `u` took back: the next answer on its post goes where it went
        self._key_waits = False  # a key's handler waits for its next post (_until_ready) and draws it itself
        self.notice = ""
        self.filter_text = ""
        self.goal = 50
        self.history: list[Answer] = []
        self.counts: Counter[str] = Counter()
        self.queue_loaded = False
        self.started_at = ""  # the session's start; set from the saved session or a new one on mount
        self.init_review()

    @property
    def current(self) -> int | None:
        return self.queue[self.pos] if self.pos < len(self.queue) else None

    def zoom_post(self) -> int | None:
        return self.current

    @property
    def items(self) -> dict:
        """The posts made ready to show (the post pane's prefetch), by id."""
        return self.query_one(LabelPostView).items

    @property
    def random_sample(self) -> bool:
        return random_sample(self.order, self.disagree_first)

    def compose(self) -> ComposeResult:
        yield LabelPostView(self.bizsent.settings.tui.image_renderer, id="label-main")
        yield LabelFlags(id="label-flags")
        yield LabelTally(self.goal, id="label-progress")
        yield LabelReview(id="label-review")
        yield StatusBar()
        yield KeyBar()

    def on_mount(self) -> None:
        self._show_flags()
        self._show_counts()
        self._load_session()

    # -- queue and prefetch ----------------------------------------------------------------------------------

    def queue_spec(self) -> QueueSpec:
        """The session's queue as its settings say now."""
        source, label, text = parse_queue_filter(self.filter_text)
        return QueueSpec(order=self.order, disagree_first=self.disagree_first, seed=RANDOM_SEED, text=text,
                         label_source=source, label=label, exclude=frozenset(a.post_id for a in self.history),
                         split=self.split, test_reserve=self.bizsent.settings.labeling.test_reserve)

    def reload_queue(self) -> None:
        self._generation += 1
        self._load_queue(self.queue_spec(), self._generation)

    @background("loading the labeling queue", group="label-queue", exclusive=True)
    def _load_queue(self, spec: QueueSpec, generation: int) -> None:
        with reading(self.bizsent.db_path) as db:
            queue = label_queue(db, spec)
        self.post_message(self.QueueLoaded(generation, queue))

    def on_label_screen_queue_loaded(self, message: LabelScreen.QueueLoaded) -> None:
        if message.generation != self._generation:
            return
        ids = message.queue.ids
        if self.pinned is not None:
            ids = [self.pinned, *(pid for pid in ids if pid != self.pinned)]
        self.queue, self.pos, self.queue_loaded = ids, 0, True
        self.notice = message.queue.notice
        if self.notice:
            self.notify(self.notice, severity="warning", timeout=8)
        self._show_flags()
        self._show_current()

    def open_post(self, pid: int) -> None:
        """Label `pid` next (Posts' `enter`): it goes first, the session's queue follows."""
        self._pin(pid)
        if self.queue_loaded:
            self.queue = [*self.queue[:self.pos], pid, *(p for p in self.queue[self.pos:] if p != pid)]
            self.sarcastic = self.unsure = False
            self._show_current()
        self._save_session()

    def _pin(self, pid: int | None) -> None:
        # One indexed read on the event loop, once per post opened from Posts: the flags line and the answer
        # need its current human label before the next key.
        self.pinned, self.pinned_label = pid, None
        if pid is not None:
            with reading(self.bizsent.db_path) as db:
                found = current_human(db, pid)
            self.pinned_label = found[1] if found else None

    def on_label_post_view_items_loaded(self, message: LabelPostView.ItemsLoaded) -> None:
        # A key waiting for its post draws it itself; and the message reaches the screen after the view, which
        # may already show the post (the key's handler drew it once the view had it): once is enough.
        if self._key_waits or self.query_one(LabelPostView).draws(self.current):
            return
        if any(post.id == self.current for post, _, _ in message.items) and self.current in self.items:
            self._show_current()

    # -- drawing ---------------------------------------------------------------------------------------------

    def _follow(self) -> LabelPostView:
        """The post pane, told which posts to keep (behind, for undo) and to prepare (this one first)."""
        view = self.query_one(LabelPostView)
        view.follow(self.queue[max(self.pos - KEEP_BEHIND, 0):self.pos], self.queue[self.pos:self.pos + PREFETCH])
        return view

    def _show_current(self) -> None:
        view = self._follow()
        empty = (Text("") if self.current is not None  # the label key's path: only an empty queue says why
                 else Text(f"Queue empty: {self.queue_spec().empty_says}.", style="bold") if self.queue_loaded
                 else Text("loading queue…", style="dim"))
        view.show(self.current, f"{self.pos + 1}/{len(self.queue)} in queue", empty)
        self._show_flags()
        # Prefetching decodes and draws images in a thread that competes for the GIL: start it once this
        # post is on screen, not while it is being painted.
        self.call_after_refresh(self._after_paint)

    def _after_paint(self) -> None:
        # The user now reads this post for seconds: the time for the work that would otherwise land on the
        # next key press. A young-generation collection here (~1-3 ms) keeps automatic ones, which run
        # whenever allocations pile up (mid-paint included, 5-25 ms on a busy machine), from coming due.
        # Not while the post is still loading: the user waits for it, and its worker needs the GIL.
        if self.current is not None and self.current not in self.items:
            return
        gc.collect(1)
        self.query_one(LabelPostView).prefetch()

    def _show_flags(self) -> None:
        order = ORDER_NAMES[self.order]
        if self.order == "filter" and self.filter_text:
            order += f" “{self.filter_text}”"
        elif self.notice:
            order += " → random"  # active learning without predictions
        if self.disagree_first:
            order = f"disagree first, {order}"
        split, why = self.split, ""
        if self.current is not None and self.current == self.repeat_post:
            split, why = "repeat", "blind: your stored label is kept"
        elif self.current is not None:
            split, sampling = self._target(self.current)
            why = why_split(split, sampling, self.split, self.random_sample)
        self.query_one(LabelFlags).show(sarcastic=self.sarcastic, unsure=self.unsure, split=split, why=why,
                                        order=order)

    def _show_counts(self) -> None:
        self.query_one(LabelTally).show(self.counts, self.goal)

    # -- answers ---------------------------------------------------------------------------------------------

    async def _advance(self, *, hold: bool = True) -> None:
        if self.current == self.pinned:
            self.pinned, self.pinned_label = None, None  # answered: a reloaded queue no longer puts it first
        self.undone = None
        self.pos += 1
        self.sarcastic = self.unsure = False
        self.queue_repeat()
        if hold:
            await self._until_ready()
        self._show_current()
        self._save_session()
        # The tally goes in the frame after the next post: one frame later (~17 ms) nobody notices, and the
        # post's frame then repaints the post alone instead of the screen from its first row to its last.
        self.call_after_refresh(self._show_counts)
        self.refresh_review()

    async def _until_ready(self) -> None:
        """A next post not prepared yet (after a queue reload or a resize) is read now and waited for, up to
        HOLD_S, before anything is drawn: it then comes in one frame. Drawn at once, "loading…" would take a
        frame and the post the next one, and Textual's next frame after one that came late is 17-33 ms away.
        This runs in the key's handler and the app handles keys one at a time, so a key pressed meanwhile waits
        its turn: none lands on a post that is not on screen."""
        self._key_waits = True
        try:
            await self._follow().until_ready(self.current, HOLD_S)
        finally:
            self._key_waits = False

    def _target(self, pid: int) -> tuple[str, str | None]:
        """(split, sampling) the next answer on `pid` gets: what the flags line shows."""
        if self.undone is not None and self.undone.post_id == pid:
            return self.undone.split, self.undone.sampling
        reserve = self.bizsent.settings.labeling.test_reserve
        return answer_target(chosen_by_hand=pid == self.pinned, order=self.order,
                             disagree_first=self.disagree_first, split=self.split,
                             reserved=reserved_for_test(pid, reserve) if reserve > 0 else None,
                             corrects=self.pinned_label if pid == self.pinned else None)

    def _shown(self, pid: int | None) -> bool:
        """Whether `pid` is on screen to be answered: a post that outlasted the key's wait shows "loading…", and
        an answer then would land on a post the user has not seen."""
        if pid is None:
            return False
        if self.query_one(LabelPostView).shown != pid:
            self.notify(f"post {pid} is still loading: answer it once it shows", severity="warning", timeout=3)
            return False
        return True

    async def action_answer(self, label: Label) -> None:
        pid = self.current
        if not self._shown(pid):
            return
        assert pid is not None
        if pid == self.repeat_post:
            await self.answer_repeat(label)
            return
        split, sampling = self._target(pid)
        before = self.pinned_label if pid == self.pinned else None
        answer = Answer("label", pid, label, self.sarcastic, self.unsure, split=split, sampling=sampling,
                        by_hand=pid == self.pinned, before=before)
        if not rewrites_test_label(before, label, self.sarcastic, self.unsure):
            await self._write(answer)
            return
        assert before is not None

        async def confirmed(yes: bool | None) -> None:
            # Run by the screen, not in a key's handler: keys are not held back meanwhile, so no waiting.
            if yes and self.current == pid:
                await self._write(answer, hold=False)

        flags = "".join(f", {f}" for f in ("sarcastic", "unsure") if getattr(answer, f))
        self.app.push_screen(ConfirmModal(
            f"Post {pid} is in the human test set as {before.label}. Change its test label to {label}{flags}? "
            "The history keeps the old one.", yes="Change test label"), confirmed)

    async def _write(self, answer: Answer, *, hold: bool = True) -> None:
        new = NewLabel(label=answer.label, source="human", split=answer.split, labeler="human",
                       sarcastic=answer.sarcastic, unsure=answer.unsure, sampling=answer.sampling)
        pid = answer.post_id
        answer.written = self.bizsent.write(lambda db: write_answer(db, pid, new, actor(WRITER)))
        self.history.append(answer)
        self.counts[answer.label] += 1
        self.answered += 1
        await self._advance(hold=hold)

    async def action_skip(self) -> None:
        pid = self.current
        if not self._shown(pid):
            return
        assert pid is not None
        if pid == self.repeat_post:
            await self.skip_repeat()
            return
        self.bizsent.write(lambda db: add_skip(db, pid))
        self.history.append(Answer("skip", pid, sarcastic=self.sarcastic, unsure=self.unsure,
                                   by_hand=pid == self.pinned, before=self.pinned_label))
        self.counts["skip"] += 1
        await self._advance()

    def action_undo(self) -> None:
        if not self.history:
            self.notify("nothing to undo in this session")
            return
        last = self.history.pop()
        if last.kind == "repeat":
            self.undo_repeat(last)
        elif last.kind == "label":
            written = last.written
            # FIFO writer: the label's own write has finished by the time this runs. An answer that replaced a
            # label (a post opened from Posts) gets that label back rather than losing it.
            self.bizsent.write(lambda db: restore_label(db, *written.result(), changed_by=actor(WRITER)))
            self.counts[last.label] -= 1
            self.answered -= 1
        else:
            self.bizsent.write(lambda db: delete_skip(db, last.post_id))
            self.counts["skip"] -= 1
        if self.pos > 0 and self.queue[self.pos - 1] == last.post_id:
            self.pos -= 1
        else:
            self.queue.insert(self.pos, last.post_id)
        self.sarcastic, self.unsure = last.sarcastic, last.unsure
        if last.by_hand:  # chosen by hand it was, chosen by hand it stays
            self.pinned, self.pinned_label = last.post_id, last.before
        self.undone = last if last.kind == "label" else None
        self._show_counts()
        self._show_current()
        self._save_session()
        self.refresh_review()  # read after the undo's write (one FIFO writer): the line drops what it took back

    def action_toggle(self, flag: str) -> None:
        setattr(self, flag, not getattr(self, flag))
        self._show_flags()

    def action_note(self) -> None:
        pid = self.current
        if pid is None:
            return

        def save(text: str | None) -> None:
            # `pid` was fixed when the modal opened: the note belongs to that post whatever happens next.
            if text:
                self.bizsent.write(lambda db: add_note(db, pid, text))
                self.notify(f"note saved on post {pid}")

        self.app.push_screen(PromptModal(f"note on post {pid} (enter saves, escape cancels)", keep=save), save)

    def action_scroll_text(self, pages: int) -> None:
        self.query_one(LabelPostView).scroll_text(pages)
