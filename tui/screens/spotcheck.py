"""Spot-check: a run's predictions, pool posts first (the ones `p` / `bizsent score-pool` scored), most uncertain
(or most at odds with the API labels) first, each with its image, text, the model's probabilities, the API labels
and the human label. One key accepts the model's label or corrects it, and the answer becomes a human label
(through the app's single writer, like the Label screen).

A new human label always goes to the training pool: this list is ordered by the model's doubt, and the test split
takes only randomly sampled posts (the Label screen's random order). A post that already has a human label keeps
its split. Posts with a human TEST label are not listed (core.evaluate.spotcheck): a test label corrected after
seeing the model's answer moves the test set towards the model, so it is corrected blind, in the Label screen.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

from bizsent.core.errors import NO_MODEL_YET
from bizsent.core.evaluate.spotcheck import (
    SPOT_ORDERS,
    HumanLabel,
    SpotItem,
    answer_label,
    order_items,
    predicted_runs,
    restored_label,
    spot_items,
)
from bizsent.core.store.history import actor
from bizsent.core.store.posts import delete_label, set_label
from bizsent.jobs.pool_status import PoolJob, pool_job
from bizsent.tui.demo_model_key import DemoModelKey
from bizsent.tui.keys import nav_bindings, with_ids
from bizsent.tui.pool_job import ScorePoolKey
from bizsent.tui.screens.labeling_keys import LabelingKeys, digit_guard
from bizsent.tui.screens.zoom import ZoomKeys
from bizsent.tui.widgets.image_preview import NO_POST, ImagePreview, Picture, load_picture
from bizsent.tui.widgets.key_bar import KeyBar
from bizsent.tui.widgets.nav_table import NavScroll
from bizsent.tui.widgets.post_detail import post_text
from bizsent.tui.widgets.spot_item import label_lines, prob_bars
from bizsent.tui.widgets.status_bar import StatusBar
from bizsent.tui.workers import background, reading
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

PREFETCH = 4  # items ahead whose images are decoded in advance
IMAGE_PX = 800
WRITER = "console Spot-check screen"  # changed_by of what this screen writes (core.history.actor)
SPOT_PAGE = 10  # posts one PgUp/PgDn moves (one post is on screen, so a page is a chosen stride)


@dataclass
class Answer:
    """One spot-check answer, kept so `u` can put the post's human label back as it was."""

    post_id: int
    before: HumanLabel | None
    written: Future  # set_label's future: its result is the label row id


class SpotCheckScreen(LabelingKeys, ZoomKeys, ScorePoolKey, DemoModelKey, Screen):
    TITLE = "Spot-check"
    CSS_PATH = Path(__file__).parent.parent / "styles" / "spotcheck.tcss"
    AUTO_FOCUS = None  # the list is the screen's: the moving keys move it until Tab gives the text pane focus
    BINDINGS = with_ids("spotcheck", [
        Binding("a,enter", "accept", "accept"),
        Binding("1", "correct('bearish')", "bearish"),
        Binding("2", "correct('neutral')", "neutral"),
        Binding("3", "correct('bullish')", "bullish"),
        Binding("u", "undo", "undo"),
        Binding("o", "cycle_order", "order"),
        Binding("p", "score_pool", "score pool"),
        Binding("m", "demo_model", "demo model", show=False),
        Binding("r", "next_run", "run", show=False),
        *nav_bindings({"nav.down": "move(1)", "nav.up": "move(-1)", "nav.page_down": "page(1)",
                       "nav.page_up": "page(-1)", "nav.top": "jump(0)", "nav.bottom": "jump(-1)"}),
        Binding("escape", "focus_list", "to list", show=False),
        Binding("z", "zoom", "zoom", show=False),
        Binding("v", "viewer", "viewer", show=False),
        digit_guard("123"), Binding("q", "quit_confirm", "quit"),
    ])
    HELP = (
        "A run's predictions, one post at a time: the image, the text, the model's class probabilities (▶ marks "
        "its label), the API labels and the human label. Posts without a human label (the pool) come first; "
        "`p` scores the pool with the newest trained run in the background (only posts it has not scored yet; "
        "the same as `bizsent score-pool`) and the list fills in as it goes; with no model yet, `m` builds, "
        "trains and evaluates the tiny demo model and scores the pool (about a minute on a CPU, free).\n\n"
        "`a` or `enter` accepts the model's label and `1` bearish, `2` neutral, `3` bullish correct it: either "
        "way the answer is written as a **human** label and the next post shows. `u` undoes the last answer "
        "(the post's earlier human label, if any, comes back). A **new** human label goes to the training pool, "
        "never the test split (this list is not a random sample); a post that already has a human label keeps "
        "its split. Human **test** posts are not listed: correct a test label blind, without the model's answer "
        "on screen (Posts, `enter`, then answer in the Label screen). `o` orders by uncertainty (smallest margin "
        "between the top two classes first) or by disagreement with the API labels; `r` switches to the next "
        "run with predictions; the moving keys move without answering (PgUp/PgDn: ten posts; `tab`: the text pane)."
    )

    @dataclass
    class ItemsLoaded(Message):
        """The runs with predictions, and the items of `run_id` (unordered)."""

        generation: int
        runs: list[tuple[int, str, int]]
        run_id: int | None
        items: list[SpotItem]

    @dataclass
    class PictureLoaded(Message):
        post_id: int
        picture: Picture

    @dataclass
    class JobPolled(Message):
        """The newest pool-scoring job (None: never started); a newer poll replaces an older one still queued."""

        job: PoolJob | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, SpotCheckScreen.JobPolled)

    runs_shown: tuple[int, ...] | None = None  # the runs `r` cycles through (None: every run with predictions)

    def __init__(self, run_id: int | None = None) -> None:
        super().__init__()
        self.runs: list[tuple[int, str, int]] = []
        self.run_id: int | None = run_id
        self.all_items: list[SpotItem] = []
        self.items: list[SpotItem] = []
        self.pos = 0
        self.order = SPOT_ORDERS[0]
        self.history: list[Answer] = []
        self.pictures: dict[int, Picture] = {}
        self._loading: set[int] = set()
        self._generation = 0
        self._keep: int | None = None
        self._keep_current = False
        self.loaded = False
        self.job: PoolJob | None = None

    @property
    def current(self) -> SpotItem | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def zoom_post(self) -> int | None:
        return self.current.post_id if self.current else None

    def compose(self) -> ComposeResult:
        yield Static(id="spot-head")
        with Horizontal(id="spot-main"):
            yield ImagePreview(self.bizsent.settings.tui.image_renderer, id="spot-image")
            with Vertical(id="spot-side"):
                yield Static(id="spot-probs")
                yield Static(id="spot-labels")
                with NavScroll(id="spot-text-box"):
                    yield Static(id="spot-text", classes="post-text")
        yield StatusBar()
        yield KeyBar()

    def on_mount(self) -> None:
        left_at = self.bizsent.position("spotcheck")  # the post shown when the console was last closed
        self.load(keep=left_at if isinstance(left_at, int) else None)
        self.poll_job()
        self.poll_while_shown(self.poll_job)

    def on_screen_resume(self) -> None:
        # A run may have been evaluated, or labels changed elsewhere, since this screen was last shown.
        if self.loaded:
            self.load(keep_position=True)

    # -- loading -------------------------------------------------------------------------------------------

    def load(self, run_id: int | None = None, keep_position: bool = False, keep: int | None = None) -> None:
        self._generation += 1
        if keep is not None or not keep_position:  # keeping the position keeps a post still on its way too
            self._keep = keep
        self._keep_current = keep_position  # the post under the cursor when the list arrives, not when asked
        self._load(self._generation, run_id if run_id is not None else self.run_id)

    @background("loading the spot-check list", group="spot-items", exclusive=True)
    def _load(self, generation: int, run_id: int | None) -> None:
        with reading(self.bizsent.db_path) as db:
            runs = [r for r in predicted_runs(db) if self.runs_shown is None or r[0] in self.runs_shown]
            if run_id not in [r[0] for r in runs]:
                run_id = runs[0][0] if runs else None
            items = spot_items(db, run_id) if run_id is not None else []
        self.post_message(self.ItemsLoaded(generation, runs, run_id, self.narrow(items)))

    def narrow(self, items: list[SpotItem]) -> list[SpotItem]:
        """The items this screen lists: all of them (tui.screens.compare lists the posts two runs disagree on)."""
        return items

    def on_spot_check_screen_items_loaded(self, message: SpotCheckScreen.ItemsLoaded) -> None:
        if message.generation != self._generation:
            return
        keep = self.current.post_id if self._keep_current and self.current else self._keep
        if message.run_id != self.run_id:
            self.history.clear()  # undo stays within one run's list
        self.runs, self.run_id, self.all_items, self.loaded = message.runs, message.run_id, message.items, True
        self.items = order_items(self.all_items, self.order)
        ids = [it.post_id for it in self.items]
        self.pos = ids.index(keep) if keep in ids else 0
        self._show()

    def _prefetch(self) -> None:
        wanted = [it for it in self.items[self.pos:self.pos + PREFETCH]
                  if it.post_id not in self.pictures and it.post_id not in self._loading]
        if wanted:
            self._loading.update(it.post_id for it in wanted)
            preview = self.query_one(ImagePreview)
            self._load_pictures(wanted, preview.renderer, preview.target_size)

    @background("loading pictures", group="spot-pictures")
    def _load_pictures(self, items: list[SpotItem], renderer: str, size: Size) -> None:
        for it in items:
            picture = load_picture(it.image_path, it.image_status, it.image_reason, max_px=IMAGE_PX,
                                   renderer=renderer, size=size)
            self.post_message(self.PictureLoaded(it.post_id, picture))

    def on_spot_check_screen_picture_loaded(self, message: SpotCheckScreen.PictureLoaded) -> None:
        self._loading.discard(message.post_id)
        self.pictures[message.post_id] = message.picture
        if self.current and self.current.post_id == message.post_id:
            self.query_one(ImagePreview).show(message.picture)
        window = {it.post_id for it in self.items[max(self.pos - 2, 0):self.pos + PREFETCH]}
        for pid in [pid for pid in self.pictures if pid not in window]:
            del self.pictures[pid]

    # -- drawing -------------------------------------------------------------------------------------------

    def _show(self) -> None:
        self._show_head()
        item = self.current
        self.bizsent.note_position("spotcheck", item.post_id if item else None)
        preview = self.query_one(ImagePreview)
        probs, labels = self.query_one("#spot-probs", Static), self.query_one("#spot-labels", Static)
        body = self.query_one("#spot-text", Static)
        if item is None:
            preview.show(Picture(reason=NO_POST))
            probs.update("")
            labels.update("")
            body.update(Text("loading predictions…" if not self.loaded else
                             "no predictions yet: press `p` to score the pool with the newest run or, with no "
                             f"model yet, {NO_MODEL_YET}"
                             if not self.items else "end of the list: `o` reorders, `u` undoes, `r` next run",
                             style="dim"))
            return
        preview.show(self.pictures.get(item.post_id, Picture(reason="loading")))
        probs.update(prob_bars(item))
        labels.update(label_lines(item))
        body.update(post_text(item.text, item.subject))
        self.query_one("#spot-text-box").scroll_home(animate=False)
        self._prefetch()

    def _show_head(self) -> None:
        # The split comes first: at 80 columns the end of the line is what gets cut.
        name = next((r[1] for r in self.runs if r[0] == self.run_id), "-")
        name = name if len(name) <= 18 else name[:17] + "…"
        item = self.current
        if item is not None and item.human is not None:
            split = Text.assemble("split ", (f"keeps {item.human.split.upper()}", "bold"))
        else:
            split = Text.assemble("new label → ", ("TRAIN", "bold yellow"))
        where = f"{self.pos + 1}/{len(self.items)}" if self.items else "0/0"
        pid = f" · post {item.post_id}" if item else ""
        job = self.job
        scoring = (f" · scoring pool {job.done}/{job.total or '?'}" if job is not None and job.active else "")
        self.query_one("#spot-head", Static).update(Text.assemble(
            split, " · ", (f"run {self.run_id or '-'} {name}", "bold"), " (r) · ", where, " by ", (self.order, "bold"),
            " (o)", pid, (scoring, "bold cyan")), layout=False)

    # -- answers -------------------------------------------------------------------------------------------

    def _answer(self, label: str) -> None:
        item = self.current
        if item is None:
            return
        self._write_answer(item, label)

    def _write_answer(self, item: SpotItem, label: str) -> None:
        before = item.human
        new = answer_label(label, before)
        pid = item.post_id
        written = self.bizsent.write(lambda db: set_label(db, pid, new, changed_by=actor(WRITER)))
        self.history.append(Answer(pid, before, written))
        self._set_human(pid, HumanLabel(-1, label, new.split, new.labeler, new.sarcastic, new.unsure))
        ids = [it.post_id for it in self.items]
        self.pos = ids.index(pid) + 1 if pid in ids else self.pos
        self._show()

    def _set_human(self, pid: int, human: HumanLabel | None) -> None:
        """Show the post's new human label at once, in the ordered list and in the list it is ordered from."""
        for items in (self.items, self.all_items):
            for k, it in enumerate(items):
                if it.post_id == pid:
                    items[k] = replace(it, human=human)

    def action_accept(self) -> None:
        if self.current is not None:
            self._answer(self.current.label)

    def action_correct(self, label: str) -> None:
        self._answer(label)

    def action_undo(self) -> None:
        if not self.history:
            self.notify("nothing to undo in this session")
            return
        last = self.history.pop()
        pid, before, written = last.post_id, last.before, last.written
        if before is None:
            # FIFO writer: the answer's own write has finished by the time this runs.
            self.bizsent.write(lambda db: delete_label(db, written.result(), changed_by=actor(WRITER)))
        else:
            old = restored_label(before)
            self.bizsent.write(lambda db: set_label(db, pid, old, changed_by=actor(WRITER)))
        self._set_human(pid, before)
        ids = [it.post_id for it in self.items]
        if pid in ids:
            self.pos = ids.index(pid)
        self._show()

    def action_move(self, step: int) -> None:
        if self.items:
            self.pos = max(0, min(len(self.items) - 1, self.pos + step))
            self._show()

    def action_focus_list(self) -> None:
        self.set_focus(None)

    def action_page(self, direction: int) -> None:
        self.action_move(direction * SPOT_PAGE)

    def action_jump(self, index: int) -> None:
        if self.items:
            self.action_move((index if index >= 0 else len(self.items) - 1) - self.pos)

    def action_cycle_order(self) -> None:
        self.order = SPOT_ORDERS[(SPOT_ORDERS.index(self.order) + 1) % len(SPOT_ORDERS)]
        self.items = order_items(self.all_items, self.order)
        self.pos = 0
        self._show()

    def action_next_run(self) -> None:
        ids = [r[0] for r in self.runs]
        if len(ids) < 2:
            self.notify("no other run with predictions")
            return
        nxt = ids[(ids.index(self.run_id) + 1) % len(ids)] if self.run_id in ids else ids[0]
        self.pictures.clear()
        self.load(nxt)

    # -- scoring the pool ----------------------------------------------------------------------------------

    def pool_scoring_started(self, text: str, error: bool) -> None:
        super().pool_scoring_started(text, error)
        self.poll_job()

    @background("reading the pool-scoring job", group="spot-job", exclusive=True)
    def poll_job(self) -> None:
        with reading(self.bizsent.db_path) as db:
            job = pool_job(db)
        self.post_message(self.JobPolled(job))

    def on_spot_check_screen_job_polled(self, message: SpotCheckScreen.JobPolled) -> None:
        old, new = self.job, message.job
        self.job = new
        if new is None or old == new:
            return
        same = old is not None and old.id == new.id
        if same and old.state != new.state and new.state == "failed":
            self.notify(f"pool scoring failed: {new.error}", severity="error", timeout=10)
        if same and (old.done, old.state) != (new.done, new.state):
            self.load(keep_position=True)  # a batch landed: show it, the post on screen stays where it is
        elif not same and new.active:
            self.load(new.run_id, keep_position=True)  # a job started: show the run it scores with
        self._show_head()
