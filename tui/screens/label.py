"""Label: the keyboard labeling session that builds the human test set.

Only the random order adds to the test split, so the test set stays a random sample of the pool: under any other
order (newest, filter, active learning, disagreements first) and for a post opened from Posts, answers go to the
training pool, and the flags line says so. Each human label records how its post was chosen (labels.sampling).

One post at a time, image and text side by side, other labels hidden (no anchoring). Each answer goes to the
writer thread at once; the next posts are prefetched with their images already drawn and their text already
wrapped, into panes whose size never depends on the post, so the next one is a repaint, never a relayout.
"""

from __future__ import annotations

import gc
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, replace

import sqlite_utils
from bizsent.core.labels import LABELS, RANDOM_SAMPLING, Label
from bizsent.core.model.acquisition import scoring_run
from bizsent.core.store.history import LabelValue, actor
from bizsent.core.store.posts import add_note, add_skip, current_label, delete_skip, restore_label, set_label
from bizsent.core.store.records import NewLabel
from bizsent.core.store.sessions import LabelSession, load_label_session, new_label_session, save_label_session
from bizsent.tui.messages import LabelItemsLoaded, PoolScoringStarted, QueueLoaded, SessionLoaded
from bizsent.tui.pool_job import start_pool_scoring
from bizsent.tui.queries import (
    NO_PREDICTIONS,
    QUEUE_ORDERS,
    LabelPost,
    QueueSpec,
    format_time,
    label_posts,
    label_queue,
    parse_queue_filter,
    reading,
)
from bizsent.tui.screens.confirm import ConfirmModal
from bizsent.tui.screens.prompt import PromptModal
from bizsent.tui.widgets.image_preview import ImagePreview, Picture, load_picture
from bizsent.tui.widgets.post_detail import TextPane, Wrapped, post_text, wrap
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.workers import background
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static

PREFETCH = 6  # posts ahead whose text and decoded image are kept ready
KEEP_BEHIND = 3  # posts behind kept for undo
GOALS = (25, 50, 100, 200)
ORDER_NAMES = {"random": "random", "newest": "newest", "filter": "filter", "active": "active learning"}
RANDOM_SEED = 1322
IMAGE_PX = 800  # "large" image: enough for Kitty/Sixel, trivially downscaled again by half-block
WRITER = "console Label screen"  # changed_by of what this screen writes (core.history.actor)


@dataclass
class Answer:
    """One thing written this session, kept so `u` can take it back."""

    kind: str  # label | skip
    post_id: int
    label: Label | None = None
    sarcastic: bool = False
    unsure: bool = False
    written: Future | None = None  # the label write's future: (label row id, the value it replaced or None)


class LabelScreen(Screen):
    TITLE = "Label"
    HELP_FILE = "labeling_rules.md"  # shown under the keys by the help modal (`?`)
    F_KEYS_ONLY = True  # the status bar numbers the screens F1..F5 here (see the 4,5 binding)
    BINDINGS = [
        Binding("1", "answer('bearish')", "bearish"),
        Binding("2", "answer('neutral')", "neutral"),
        Binding("3", "answer('bullish')", "bullish"),
        Binding("s", "toggle('sarcastic')", "sarcastic"),
        Binding("w", "toggle('unsure')", "unsure"),
        Binding("x", "skip", "skip"),
        Binding("u", "undo", "undo"),
        Binding("n", "note", "note"),
        Binding("t", "toggle_split", "split", show=False),
        Binding("o", "cycle_order", "order", show=False),
        Binding("d", "toggle_disagree_first", "disagreements first", show=False),
        Binding("pagedown", "scroll_text(1)", "text down", show=False),
        Binding("pageup", "scroll_text(-1)", "text up", show=False),
        Binding("f", "filter", "filter", show=False),
        Binding("g", "cycle_goal", "goal", show=False),
        Binding("p", "score_pool", "score pool", show=False),
        Binding("ctrl+n", "new_session", "new session", show=False),
        # Next to the label keys: 4 and 5 switch screens elsewhere, here they only say how to (F-keys), and `q`
        # asks first. A stray key must never land the user on a screen where 1-3 mean something else.
        Binding("4,5", "screen_keys_hint", "F1-F5 switch screens", show=False),
        Binding("q", "quit_confirm", "quit"),
    ]
    HELP = (
        "`1` bearish, `2` neutral, `3` bullish (each writes a human label at once and shows the next post); "
        "`s` sarcastic and `w` unsure flag the current post before you answer; `x` skips it (broken image, "
        "spam); `u` undoes the last answer and goes back to that post; `n` adds a note to this post.\n\n"
        "`t` switches between labeling into the **test** split (the human test set, default) and the "
        "**train** pool. Only the **random** order adds to the test split, so the test set stays a random "
        "sample: under any other order, with disagreements first, or for a post opened from Posts, answers go "
        "to the train pool (the flags line says so); correcting a post that already has a human label keeps "
        "its split. `o` cycles the queue order (random, newest, filter once `f` set one, active "
        "learning: the queue `bizsent queue` prints, the most uncertain posts of the newest run that scored the "
        "pool first, in diverse batches, repeats of an image or text left out); `p` scores the pool in the "
        "background (`bizsent score-pool`; Spot-check shows its progress); `d` puts the "
        "posts on which API "
        "labelers disagree first (which labels they gave stays hidden); `f` sets the filter (free text "
        "and/or `source:label`, e.g. `openai:bullish moon`); `g` changes the session goal; PgUp/PgDn scroll "
        "a long text. Other labels of a post are hidden here on purpose. Only `F1`-`F5` switch screens here "
        "(`4` and `5` do nothing, so a slip next to `3` cannot take you to another screen) and `q` asks before "
        "quitting; `enter` on a post in Posts opens it here.\n\n"
        "The session (counts, goal, split, order, filter) is saved as you go: quitting or a crash continues it "
        "next time; `ctrl+n` starts a new one."
    )

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[int] = []
        self.pos = 0
        self.items: dict[int, tuple[LabelPost, Picture, Wrapped]] = {}
        self._loading: set[int] = set()
        self._generation = 0
        self.sarcastic = False
        self.unsure = False
        self.split = "test"
        self.order = "random"
        self.disagree_first = False
        self.pinned: int | None = None  # a post opened from Posts: first in the queue whatever the order
        self.notice = ""
        self._flags_line = ""
        self.filter_text = ""
        self.goal = 50
        self.history: list[Answer] = []
        self.counts: Counter[str] = Counter()
        self.queue_loaded = False
        self.started_at = ""  # the session's start; set from the saved session or a new one on mount

    @property
    def current(self) -> int | None:
        return self.queue[self.pos] if self.pos < len(self.queue) else None

    @property
    def random_sample(self) -> bool:
        """Does the queue take posts in random order (the only order that may add to the test split)?"""
        return self.order == "random" and not self.disagree_first

    def target(self, pid: int) -> tuple[str, str]:
        """(split, sampling) of an answer to `pid`: the test split only for a post the random order chose."""
        if pid == self.pinned:
            return "train", "picked"  # opened from Posts: chosen by hand
        if not self.random_sample:
            return "train", "disagree-first" if self.disagree_first else self.order
        return self.split, RANDOM_SAMPLING

    def compose(self) -> ComposeResult:
        with Horizontal(id="label-main"):
            yield ImagePreview(self.app.settings.tui.image_renderer, id="label-image")
            with Vertical(id="label-side"):
                yield Static(id="label-meta")
                yield TextPane(id="label-text", classes="post-text")
        yield Static(id="label-flags")
        with Horizontal(id="label-progress"):
            yield ProgressBar(total=self.goal, show_eta=False, id="goal")
            yield Static(id="label-counts")
        yield StatusBar()
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p still works; 80 columns are tight

    def on_mount(self) -> None:
        self.query_one(TextPane).can_scroll_by_key = True
        self._show_flags()
        self._show_counts()
        self._load_session()


    # -- the session -----------------------------------------------------------------------------------------

    @background("reading your labeling session", group="label-session", exclusive=True)
    def _load_session(self) -> None:
        with reading(self.app.db_path) as db:
            session = load_label_session(db)
        self.post_message(SessionLoaded(session))

    def on_session_loaded(self, message: SessionLoaded) -> None:
        session = message.session or new_label_session()
        self.started_at, self.split, self.goal = session.started_at, session.split, session.goal
        self.order = session.order if session.order in ORDER_NAMES else "random"
        self.disagree_first, self.filter_text = session.disagree_first, session.filter_text
        self.counts = Counter(session.counts)
        if self.pinned is None:  # a post opened from Posts meanwhile wins over the saved one
            self.pinned = session.pinned
        self._show_flags()
        self._show_counts()
        self.reload_queue()

    def session(self) -> LabelSession:
        return LabelSession(started_at=self.started_at, split=self.split, order=self.order,
                            disagree_first=self.disagree_first, filter_text=self.filter_text, goal=self.goal,
                            counts={k: v for k, v in self.counts.items() if v}, pinned=self.pinned)

    def _save_session(self) -> None:
        # Queued after the answer's own write (one FIFO writer): the saved counts never run ahead of the labels.
        if self.started_at:  # not before the saved one is read: it would be overwritten with defaults
            snapshot = self.session()
            self.app.write(lambda db: save_label_session(db, snapshot))

    def action_new_session(self) -> None:
        self.started_at, self.counts, self.history = new_label_session().started_at, Counter(), []
        self._show_counts()
        self._save_session()
        self.notify("new labeling session: counts start from zero")

    # -- keys that would leave the screen --------------------------------------------------------------------

    def action_screen_keys_hint(self) -> None:
        self.notify("while labeling, F1-F5 switch screens (4 and 5 do nothing here)", timeout=4)

    def action_quit_confirm(self) -> None:
        def answer(yes: bool | None) -> None:
            if yes:
                self.app.exit()

        self.app.push_screen(ConfirmModal("Quit bizsent? The session is saved and continues next time.",
                                          yes="Quit"), answer)

    # -- queue and prefetch ----------------------------------------------------------------------------------

    def reload_queue(self) -> None:
        self._generation += 1
        source, label, text = parse_queue_filter(self.filter_text)
        spec = QueueSpec(order=self.order, disagree_first=self.disagree_first, seed=RANDOM_SEED, text=text,
                         label_source=source, label=label, exclude=frozenset(a.post_id for a in self.history))
        self._load_queue(spec, self._generation)

    @background("loading the labeling queue", group="label-queue", exclusive=True)
    def _load_queue(self, spec: QueueSpec, generation: int) -> None:
        with reading(self.app.db_path) as db:
            ids = label_queue(db, spec)
            notice = NO_PREDICTIONS if spec.order == "active" and scoring_run(db) is None else ""
        self.post_message(QueueLoaded(generation, ids, notice))

    def on_queue_loaded(self, message: QueueLoaded) -> None:
        if message.generation != self._generation:
            return
        ids = message.ids
        if self.pinned is not None:
            ids = [self.pinned, *(pid for pid in ids if pid != self.pinned)]
        self.queue, self.pos, self.queue_loaded = ids, 0, True
        self.notice = message.notice
        if message.notice:
            self.notify(message.notice, severity="warning", timeout=8)
        self._show_flags()
        self._show_current()

    def open_post(self, pid: int) -> None:
        """Label `pid` next (Posts' `enter`): it goes first, the session's queue follows."""
        self.pinned = pid
        if self.queue_loaded:
            self.queue = [*self.queue[:self.pos], pid, *(p for p in self.queue[self.pos:] if p != pid)]
            self.sarcastic = self.unsure = False
            self._show_current()
        self._save_session()

    def _prefetch(self) -> None:
        wanted = [pid for pid in self.queue[self.pos:self.pos + PREFETCH]
                  if pid not in self.items and pid not in self._loading]
        if wanted:
            self._loading.update(wanted)
            preview = self.query_one(ImagePreview)
            self._load_items(wanted, preview.renderer, preview.target_size, self.query_one(TextPane).text_width)

    @background("loading the next posts", group="label-prefetch")
    def _load_items(self, ids: list[int], renderer: str, size: Size, text_width: int) -> None:
        with reading(self.app.db_path) as db:
            posts = label_posts(db, ids)
        # Prepare one at a time and post each: the post on screen may be waiting for the first.
        for post in posts:
            picture = load_picture(post.image_path, max_px=IMAGE_PX, renderer=renderer, size=size)
            text = wrap(post_text(post.text, post.subject), text_width)
            self.post_message(LabelItemsLoaded([(post, picture, text)]))

    def on_label_items_loaded(self, message: LabelItemsLoaded) -> None:
        preview = self.query_one(ImagePreview)
        stale = False
        for post, picture, text in message.items:
            self._loading.discard(post.id)
            if picture.image is not None and preview.draws_cells and picture.size != preview.target_size:
                stale = True  # drawn for the size before a resize: draw it again
                continue
            self.items[post.id] = (post, picture, text)
            if post.id == self.current:
                self._show_current()
        window = set(self.queue[max(self.pos - KEEP_BEHIND, 0):self.pos + PREFETCH])
        for pid in [pid for pid in self.items if pid not in window]:
            del self.items[pid]
        if stale:
            self._prefetch()

    def on_image_preview_resized(self, message: ImagePreview.Resized) -> None:
        # Prefetched pictures were drawn for the old size: draw them again now, not one by one as they show
        # (until then they would go through textual-image's much slower widget). The preview redraws the one
        # on screen meanwhile.
        self.items.clear()
        self._prefetch()

    # -- drawing ---------------------------------------------------------------------------------------------

    def _show_current(self) -> None:
        pid = self.current
        meta = self.query_one("#label-meta", Static)
        body = self.query_one(TextPane)
        preview = self.query_one(ImagePreview)
        if pid is None:
            preview.show(Picture(reason="nothing to show"))
            meta.update("", layout=False)
            body.show(Text("Queue empty: every candidate post has a human label or a skip. "
                           "Change the order/filter (o, f), or go scrape more posts.", style="bold")
                      if self.queue_loaded else Text("loading queue…", style="dim"))
        elif pid in self.items:
            post, picture, text = self.items[pid]
            preview.show(picture)
            meta.update(Text.assemble((f"post {post.id}", "bold"), (f"  {format_time(post.time)}", "dim"),
                                      (f"  {self.pos + 1}/{len(self.queue)} in queue", "dim")), layout=False)
            body.show(text)
        else:
            preview.show(Picture(reason="loading"))
            meta.update(Text(f"post {pid}", style="bold"), layout=False)
            body.show(Text("loading…", style="dim"))
        self._show_flags()
        # Prefetching decodes and draws images in a thread that competes for the GIL: start it once this
        # post is on screen, not while it is being painted.
        self.call_after_refresh(self._after_paint)

    def _after_paint(self) -> None:
        # The user now reads this post for seconds: the time for the work that would otherwise land on the
        # next key press. A young-generation collection here (~1-3 ms) keeps automatic ones, which run
        # whenever allocations pile up (mid-paint included, 5-25 ms on a busy machine), from coming due.
        gc.collect(1)
        self._prefetch()

    def _show_flags(self) -> None:
        def flag(key: str, name: str, on: bool) -> str:
            return f"[reverse b] {key} {name} [/]" if on else f"[dim] {key} {name} [/]"

        split = "[b green]TEST[/]" if self.split == "test" else "[b yellow]TRAIN[/]"
        if self.split == "test" and not self.random_sample:
            split = "[b yellow]TRAIN[/] (test: random order only)"
        order = ORDER_NAMES[self.order]
        if self.order == "filter" and self.filter_text:
            order += f" “{self.filter_text}”"
        elif self.notice:
            order += " → random"  # active learning without predictions
        if self.disagree_first:
            order = f"disagree first, {order}"
        line = (f"{flag('s', 'sarcastic', self.sarcastic)} {flag('w', 'unsure', self.unsure)}"
                f"  split {split} (t)  order [b]{order}[/] (o)")
        if line != self._flags_line:  # unchanged on most keys: repainting it would only cost time
            self._flags_line = line
            self.query_one("#label-flags", Static).update(line, layout=False)  # one fixed line: no relayout

    def _show_counts(self) -> None:
        labelled = sum(self.counts[name] for name in LABELS)
        bar = self.query_one("#goal", ProgressBar)
        bar.update(total=self.goal, progress=min(labelled, self.goal))
        colors = {"bearish": "red", "neutral": "yellow", "bullish": "green"}
        parts = [f"[{colors[n]}]{n[:4]}[/] {self.counts[n]}"
                 + (f" {self.counts[n] / labelled:.0%}" if labelled else "") for n in LABELS]
        self.query_one("#label-counts", Static).update(
            f"{labelled}/{self.goal} " + " · ".join(parts) + f" · skip {self.counts['skip']}", layout=False
        )

    # -- answers ---------------------------------------------------------------------------------------------

    def _advance(self) -> None:
        if self.current == self.pinned:
            self.pinned = None  # answered: a reloaded queue no longer puts it first
        self.pos += 1
        self.sarcastic = self.unsure = False
        self._show_current()
        self._save_session()
        # The tally goes in the frame after the next post: one frame later (~17 ms) nobody notices, and the
        # post's frame then repaints the post alone instead of the screen from its first row to its last.
        self.call_after_refresh(self._show_counts)

    def action_answer(self, label: Label) -> None:
        pid = self.current
        if pid is None:
            return
        split, sampling = self.target(pid)
        new = NewLabel(label=label, source="human", split=split, labeler="human",
                       sarcastic=self.sarcastic, unsure=self.unsure, sampling=sampling)
        written = self.app.write(lambda db: write_answer(db, pid, new))
        self.history.append(Answer("label", pid, label, self.sarcastic, self.unsure, written))
        self.counts[label] += 1
        self._advance()

    def action_skip(self) -> None:
        pid = self.current
        if pid is None:
            return
        self.app.write(lambda db: add_skip(db, pid))
        self.history.append(Answer("skip", pid, sarcastic=self.sarcastic, unsure=self.unsure))
        self.counts["skip"] += 1
        self._advance()

    def action_undo(self) -> None:
        if not self.history:
            self.notify("nothing to undo in this session")
            return
        last = self.history.pop()
        if last.kind == "label":
            written = last.written
            # FIFO writer: the label's own write has finished by the time this runs. An answer that replaced a
            # label (a post opened from Posts) gets that label back rather than losing it.
            self.app.write(lambda db: restore_label(db, *written.result(), changed_by=actor(WRITER)))
            self.counts[last.label] -= 1
        else:
            self.app.write(lambda db: delete_skip(db, last.post_id))
            self.counts["skip"] -= 1
        if self.pos > 0 and self.queue[self.pos - 1] == last.post_id:
            self.pos -= 1
        else:
            self.queue.insert(self.pos, last.post_id)
        self.sarcastic, self.unsure = last.sarcastic, last.unsure
        self._show_counts()
        self._show_current()
        self._save_session()

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
                self.app.write(lambda db: add_note(db, pid, text))
                self.notify(f"note saved on post {pid}")

        self.app.push_screen(PromptModal(f"note on post {pid} (enter saves, escape cancels)"), save)

    # -- session settings ------------------------------------------------------------------------------------

    def action_toggle_split(self) -> None:
        self.split = "train" if self.split == "test" else "test"
        if self.split == "test" and not self.random_sample:
            self.notify("the test split takes posts in random order only: answers go to the train pool until the "
                        "order is random (o) without disagreements first (d)", timeout=6)
        self._show_flags()
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

    def action_scroll_text(self, pages: int) -> None:
        pane = self.query_one(TextPane)
        pane.scroll_by(pages * max(pane.content_size.height - 1, 1))

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

    def action_score_pool(self) -> None:
        self._start_scoring()

    @background("starting the pool-scoring job", group="label-score-pool", exclusive=True)
    def _start_scoring(self) -> None:
        self.post_message(PoolScoringStarted(*start_pool_scoring(self.app)))

    def on_pool_scoring_started(self, message: PoolScoringStarted) -> None:
        self.notify(message.text, severity="error" if message.error else "information", timeout=8)


def write_answer(db: sqlite_utils.Database, post: int, new: NewLabel) -> tuple[int, LabelValue | None]:
    """Write the human label; return its row id and the label it replaced, which an undo puts back.

    A correction of a post's human label keeps that label's split and recorded sampling: answering again never
    moves a post into or out of the test set."""
    previous = current_label(db, post, new.source, new.labeler)
    if previous is not None:
        new = replace(new, split=previous.split, sampling=None)
    return set_label(db, post, new, changed_by=actor(WRITER)), previous
