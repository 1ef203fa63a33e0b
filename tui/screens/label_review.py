"""The Label screen's view of its own session (issue 21.8): the last answers, the pace, blind repeats and the
self-agreement they give. The rules are core.label.repeats'; this draws them and routes keys.

`b` lists the session's answers; choosing one opens that post again exactly as Posts' `enter` does (a correction
keeps its split, a test label asks first). Every `labeling.repeat_every` answers a post answered earlier comes
back blind: its answer is recorded as a repeat and never changes the label.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

from bizsent.core.label.repeats import (
    SessionAnswer,
    agreement_line,
    delete_repeat,
    pace,
    pick_repeat,
    record_repeat,
    repeat_due,
    repeats,
    session_answers,
)
from bizsent.core.labels import Label
from bizsent.core.store.history import LabelValue, actor
from bizsent.tui.app import BizsentNode
from bizsent.tui.workers import background, reading
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

REVIEW_DELAY_S = 0.4  # the review line is read again this long after the last answer
RECENT_SHOWN = 2  # answers on the review line; `b` lists them all
WRITER = "console Label screen"  # changed_by of what the Label screen writes (core.history.actor)


@dataclass
class Answer:
    """One thing written this session, kept so `u` can take it back."""

    kind: str  # label | skip | repeat
    post_id: int
    label: Label | None = None
    sarcastic: bool = False
    unsure: bool = False
    written: Future | None = None  # label: (label row id, the value it replaced or None); repeat: its row id
    # Where it went and how its post was chosen (None: kept by a correction); after `u`, the next answer reuses both
    split: str = "train"
    sampling: str | None = None
    by_hand: bool = False  # the post was opened from Posts
    before: LabelValue | None = None  # the post's human label when it was opened from Posts


def answer_mark(answer: SessionAnswer) -> str:
    flags = "".join(mark for mark, on in (("S", answer.sarcastic), ("?", answer.unsure)) if on)
    return f"{answer.post_id} {answer.label[:4]}{flags}"


class LabelReview(Static):
    """One line: the last answers, the session's pace and its self-agreement."""

    DEFAULT_CSS = "LabelReview { height: 1; padding: 0 1; color: $text-muted; }"

    def show(self, answers: list[SessionAnswer], pace_line: str, agreement: str) -> None:
        recent = ", ".join(answer_mark(a) for a in answers[:RECENT_SHOWN]) or "none yet"
        self.update(f"last {recent} (b) · {pace_line} · {agreement}", layout=False)  # fits 80 columns


class AnswersModal(ModalScreen[int | None]):
    """The session's answers, newest first: enter opens one again to change it, escape closes."""

    BINDINGS = [Binding("escape", "cancel", "close")]

    def __init__(self, answers: list[SessionAnswer]) -> None:
        super().__init__()
        self._answers = answers

    def compose(self) -> ComposeResult:
        with Vertical(id="answers-box", classes="modal-box"):
            yield Static("Your answers this session (enter: open it to change it, escape: close)",
                         classes="modal-title")
            yield OptionList(*(Option(f"post {a.post_id}  {a.label}{'  sarcastic' if a.sarcastic else ''}"
                                      f"{'  unsure' if a.unsure else ''}  {a.split}  {a.at[11:19]}",
                                      id=str(a.post_id)) for a in self._answers), id="answers-list")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_cancel(self) -> None:
        self.dismiss(None)


class LabelReviewKeys(BizsentNode):
    """Mixin for the Label screen: `b` (back to an answer), the review line, repeats. The screen provides
    queue, pos, current, history, started_at, open_post, _advance and a LabelReview widget."""

    @dataclass
    class ReviewLoaded(Message):
        answers: list[SessionAnswer]
        pace_line: str
        agreement: str

    def init_review(self) -> None:
        self.answers: list[SessionAnswer] = []
        self.repeat_post: int | None = None  # the post on screen is a blind repeat
        self.repeated: set[int] = set()
        self.answered = 0  # answers this session on this screen, repeats excluded: when the next repeat is due
        self._review_timer: Timer | None = None

    def restart_review(self) -> None:
        """A new session: its answers, pace, repeats and agreement start from nothing (a repeat on screen stays
        a repeat: it was shown blind)."""
        self.answers, self.repeated, self.answered = [], set(), 0
        self.refresh_review()

    def refresh_review(self) -> None:
        """Read the review line again, once the keys pause: a burst of answers costs one read, not one each."""
        if self._review_timer is not None:
            self._review_timer.stop()
        self._review_timer = self.set_timer(REVIEW_DELAY_S, self._read_review)

    def _read_review(self) -> None:
        self._review_timer = None
        if self.started_at:
            self._load_review(self.started_at)

    @background("reading your recent answers", group="label-review", exclusive=True)
    def _load_review(self, started_at: str) -> None:
        with reading(self.bizsent.db_path) as db:
            answers = session_answers(db, started_at, actor(WRITER))
            found = repeats(db, started_at)
        self.post_message(self.ReviewLoaded(answers, pace(answers).line(), agreement_line(found)))

    def on_label_review_keys_review_loaded(self, message: LabelReviewKeys.ReviewLoaded) -> None:
        self.answers = message.answers
        self.query_one(LabelReview).show(message.answers, message.pace_line, message.agreement)

    def action_back(self) -> None:
        if not self.answers:
            self.notify("no answer in this session yet")
            return

        def chosen(pid: int | None) -> None:
            if pid:
                self.open_post(pid)

        self.app.push_screen(AnswersModal(self.answers), chosen)

    def queue_repeat(self) -> None:
        """After every `labeling.repeat_every` answers an earlier answer's post comes back, blind. It is put in
        the queue one post ahead, behind the post on screen, so it is prefetched like any other post."""
        if (self.repeat_post is not None or self.current is None
                or not repeat_due(self.answered + 1, self.bizsent.settings.labeling.repeat_every)):
            return
        # The post on screen is answered before the repeat shows: it counts towards the gap.
        labelled = [a.post_id for a in self.history if a.kind == "label"] + [self.current]
        pid = pick_repeat(labelled, self.repeated | {p for p in (self.pinned,) if p is not None})
        if pid is not None:
            self.repeat_post = pid
            self.repeated.add(pid)
            self.queue.insert(self.pos + 1, pid)

    async def answer_repeat(self, label: Label) -> None:
        pid, session = self.current, self.started_at
        sarcastic, unsure, by = self.sarcastic, self.unsure, actor(WRITER)
        written = self.bizsent.write(lambda db: record_repeat(db, session, pid, label, sarcastic, unsure, by))
        self.history.append(Answer("repeat", pid, label, sarcastic, unsure, written=written))
        self.repeat_post = None
        await self._advance()

    async def skip_repeat(self) -> None:
        self.repeat_post = None
        await self._advance()

    def undo_repeat(self, last: Answer) -> None:
        written = last.written
        self.bizsent.write(lambda db: delete_repeat(db, written.result()))
        self.repeat_post = last.post_id
