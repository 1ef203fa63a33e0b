"""Dialogs that stand between a key press and money or lost work.

NewJobModal: choose provider, model, live or batch, and a limit; it shows the dry-run estimate (posts, tokens,
dollars per provider and mode) and the budget caps, and dismisses with the chosen Params only on Start.
Nothing is written and nothing is sent while it is open. ConfirmModal: a yes/no question.
"""

from __future__ import annotations

from dataclasses import dataclass

from bizsent.core.label import providers
from bizsent.core.label.planning import Params
from bizsent.jobs.label_views import EstimateView, estimate_view
from bizsent.tui.app import BizsentNode
from bizsent.tui.keys import nav_bindings
from bizsent.tui.workers import background, reading
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Input, Select, Static

MODES = ("live", "batch")
ESTIMATE_DEBOUNCE_S = 0.3


def estimate_table(view: EstimateView) -> Table:
    """Posts, tokens and dollars for every provider and mode; the chosen one first and marked."""
    the_plan = view.plan
    assert the_plan is not None
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="bold")
    for name, justify in (("provider", "left"), ("model", "left"), ("mode", "left"), ("tok in", "right"),
                          ("tok out", "right"), ("USD", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for e in the_plan.estimates:
        chosen = e is the_plan.chosen
        model = e.model if len(e.model) <= 20 else e.model[:19] + "…"
        table.add_row(("▶ " if chosen else "  ") + e.provider, model, e.mode, f"{e.tokens_in:,}",
                      f"{e.tokens_out:,}", f"${e.usd:,.4f}", style="bold" if chosen else "dim")
    return table


def estimate_summary(view: EstimateView) -> Text:
    """The lines around the table: what is sent, what is skipped, the basis, the caps."""
    out = Text()
    if view.plan is not None:
        p = view.plan
        out.append(f"{len(p.items)} posts to label", style="bold")
        out.append(f" as {p.params.labeler}\n")
        skipped = sum(p.skipped.values())
        if skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(p.skipped.items()))
            out.append(f"not sent: {reasons}\n", style="dim")
        for note in p.notes:
            out.append(f"{note}\n", style="yellow")
        price = p.params.price
        if price is not None:
            out.append(f"price of {p.params.model}: ${price.input_per_mtok:g} in / ${price.output_per_mtok:g} out"
                       f" per million tokens, batch x{price.batch_discount:g} ([prices] in config.toml)\n",
                       style="dim")
        out.append(f"estimate basis: {p.chosen.basis}\n", style="dim")
    out.append(f"caps: job ${view.job_cap_usd:,.2f} · total ${view.total_cap_usd:,.2f}"
               f" (spent ${view.spent_usd:,.4f})")
    return out


class NewJobModal(BizsentNode, ModalScreen[Params | None]):
    """Dismisses with the Params to start, or None. Start is enabled only for an estimate with no blocker. Like
    every question of the console, `y` starts and `n` cancels (in a text field they type, as they should)."""

    BINDINGS = [Binding("y", "start", "start job"), Binding("n,escape", "cancel", "cancel")]

    @dataclass
    class EstimateReady(Message):
        """The dry-run estimate for one choice (generation tells stale results apart)."""

        generation: int
        view: EstimateView

    def __init__(self) -> None:
        super().__init__()
        self.view: EstimateView | None = None
        self._generation = 0
        self._debounce: Timer | None = None

    def compose(self) -> ComposeResult:
        settings = self.bizsent.settings
        provider = settings.labeling.provider
        with Vertical(id="newjob-box", classes="modal-box"):
            yield Static("New labeling job · y starts · n or escape cancels · tab moves", classes="modal-title")
            with Horizontal(classes="newjob-row"):
                yield Static("provider", classes="newjob-label")
                yield Select([(p, p) for p in providers.names()], value=provider, allow_blank=False, compact=True,
                             id="newjob-provider")
                yield Static("mode", classes="newjob-label")
                yield Select([(m, m) for m in MODES], value="live", allow_blank=False, compact=True,
                             id="newjob-mode")
            with Horizontal(classes="newjob-row"):
                yield Static("model", classes="newjob-label")
                yield Input(value=providers.settings_of(settings, provider).model, compact=True, id="newjob-model")
                yield Static("limit", classes="newjob-label")
                yield Input(placeholder="all", type="integer", compact=True, id="newjob-limit")
            yield Static(Text("estimating…", style="dim"), id="newjob-estimate")
            yield Static(id="newjob-summary")
            yield Static(id="newjob-error")
            with Horizontal(id="newjob-buttons"):
                yield Button("Start job", variant="success", compact=True, disabled=True, id="newjob-start")
                yield Button("Cancel", compact=True, id="newjob-cancel")

    def on_mount(self) -> None:
        self._estimate_now()

    def choice(self) -> tuple[str, str, int | None, bool]:
        """(provider, model, limit, batch) as the form says now."""
        provider = str(self.query_one("#newjob-provider", Select).value)
        model = self.query_one("#newjob-model", Input).value.strip()
        limit_text = self.query_one("#newjob-limit", Input).value.strip()
        limit = int(limit_text) if limit_text.lstrip("-").isdigit() else None
        batch = self.query_one("#newjob-mode", Select).value == "batch"
        return provider, model, limit, batch

    @on(Select.Changed, "#newjob-provider")
    def _provider_changed(self, event: Select.Changed) -> None:
        # Each provider has its own default model; a typed model name rarely makes sense for another provider.
        self.query_one("#newjob-model", Input).value = providers.settings_of(self.bizsent.settings,
                                                                            str(event.value)).model
        self._estimate_soon()

    @on(Select.Changed, "#newjob-mode")
    @on(Input.Changed)
    def _form_changed(self) -> None:
        self._estimate_soon()

    def _estimate_soon(self) -> None:
        self.query_one("#newjob-start", Button).disabled = True
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(ESTIMATE_DEBOUNCE_S, self._estimate_now)

    def _estimate_now(self) -> None:
        self._generation += 1
        self.query_one("#newjob-start", Button).disabled = True
        self._estimate(self._generation, *self.choice())

    @background("estimating the cost", group="newjob-estimate", exclusive=True)
    def _estimate(self, generation: int, provider: str, model: str, limit: int | None, batch: bool) -> None:
        with reading(self.bizsent.db_path) as db:
            view = estimate_view(db, self.bizsent.settings, provider, model, limit, batch)
        self.post_message(self.EstimateReady(generation, view))

    def on_new_job_modal_estimate_ready(self, message: NewJobModal.EstimateReady) -> None:
        if message.generation != self._generation:
            return
        self.view = view = message.view
        self.query_one("#newjob-estimate", Static).update(
            estimate_table(view) if view.plan else Text("no estimate", style="dim"))
        self.query_one("#newjob-summary", Static).update(estimate_summary(view))
        self.query_one("#newjob-error", Static).update(Text(view.blocker or "", style="bold red"))
        self.query_one("#newjob-start", Button).disabled = view.blocker is not None

    @on(Button.Pressed, "#newjob-start")
    def action_start(self) -> None:
        # Start is enabled only while the estimate on screen is the form's as it is now: just after a change the
        # view still holds the previous choice's plan (live instead of batch, another limit), which must not start.
        if self.query_one("#newjob-start", Button).disabled:
            blocker = self.view.blocker if self.view is not None else None
            self.notify(f"nothing started: {blocker or 'the estimate is being made for your change; y once it shows'}",
                        severity="warning", timeout=4)
            return
        if self.view is not None and self.view.plan is not None and self.view.blocker is None:
            self.dismiss(self.view.plan.params)

    @on(Button.Pressed, "#newjob-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmModal(ModalScreen[bool]):
    """A question with Yes/No; `y` and `n`/escape answer too. A question taller than the screen (a pod's plan at
    80x24) scrolls by the moving keys inside the dialog, under which the buttons always stay in sight."""

    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no"),
                *nav_bindings({"nav.down": "scroll_question('scroll_down')", "nav.up": "scroll_question('scroll_up')",
                               "nav.page_down": "scroll_question('page_down')",
                               "nav.page_up": "scroll_question('page_up')",
                               "nav.top": "scroll_question('scroll_home')",
                               "nav.bottom": "scroll_question('scroll_end')"})]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self._question = question
        self._yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            with VerticalScroll(id="confirm-scroll"):
                yield Static(self._question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self._yes} (y)", variant="error", compact=True, id="confirm-yes")
                yield Button("No (n)", compact=True, id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()  # the safe answer is the default one

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def action_scroll_question(self, how: str) -> None:
        getattr(self.query_one("#confirm-scroll", VerticalScroll), f"action_{how}")()
