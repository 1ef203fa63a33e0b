"""Planning a labeling run: which posts a labeler still has to label, which few-shot examples it is shown, and
what the run will cost with every provider and mode (the dry-run table). Nothing here sends or writes anything;
jobs.labeling runs a plan live, jobs.batches through a provider's Batch API."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import sqlite_utils
from bizsent.core.collect.images import image_jpeg
from bizsent.core.config import ModelPrice, Settings
from bizsent.core.errors import BizsentError
from bizsent.core.label import budget, ledger, providers
from bizsent.core.labels import (
    API_SOURCE,
    LABELS,
    PROMPT_VERSION,
    Example,
    LabelAnswer,
    api_labeler,
    data_url,
    post_text,
    prompt_version,
    user_prompt,
)
from bizsent.core.model.dataset import leakage_check
from bizsent.core.store.posts import CANDIDATE_SQL

CLAIMED = "claimed by another run (in flight or in an open batch)"


@dataclass(frozen=True, slots=True)
class Params:
    """What a labeling job sends and how its labels are filed. A job records these (jobs.params) when it starts;
    resuming or collecting it rebuilds them from that record, never from the config as it is now."""

    provider: str
    model: str
    mode: str = "live"  # live | batch
    limit: int | None = None
    few_shot: int = 0  # few-shot examples asked for (labeling.few_shot)
    examples: tuple[int, ...] | None = None  # post ids of the examples actually sent; None until `plan` picks them
    prompt_version: str = PROMPT_VERSION  # of what is actually sent (core.labels.prompt_version)
    price: ModelPrice | None = None  # the model's price when the job was planned

    source = API_SOURCE  # the labels table's source of what it labels

    @property
    def labeler(self) -> str:
        """The name its labels carry: provider, model and prompt ("openai:gpt-5-mini@p3")."""
        return api_labeler(self.provider, self.model, self.prompt_version)

    def usd(self, tokens_in: int, tokens_out: int) -> float:
        assert self.price is not None, "a Params without a price was never resolved"
        return self.price.usd(tokens_in, tokens_out, self.mode)

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "mode": self.mode, "limit": self.limit,
                "prompt_version": self.prompt_version, "few_shot": self.few_shot,
                "examples": list(self.examples) if self.examples is not None else None,
                "price": self.price.model_dump() if self.price is not None else None}

    @classmethod
    def from_dict(cls, p: dict[str, Any], settings: Settings) -> Params:
        """The Params a job recorded; rows from before prices were recorded take the model's price now."""
        price = ModelPrice.model_validate(p["price"]) if p.get("price") else settings.price(p["model"])
        examples = tuple(int(i) for i in p["examples"]) if p.get("examples") is not None else None
        return cls(p["provider"], p["model"], p.get("mode") or "live", p.get("limit"), int(p.get("few_shot") or 0),
                   examples, p.get("prompt_version") or PROMPT_VERSION, price)


@dataclass(frozen=True, slots=True)
class Item:
    post_id: int
    subject: str
    text: str
    image_path: str
    image_sha: str
    width: int
    height: int
    split: str  # 'test' when a human test label exists: the API label must never train the model
    key: str


@dataclass(slots=True)
class Plan:
    params: Params
    items: list[Item]
    skipped: Counter[str]
    estimates: list[budget.Estimate]  # every provider x mode, the chosen one first
    examples: tuple[Example, ...] = ()
    notes: list[str] = field(default_factory=list)  # few-shot problems, providers that could not be priced
    item_usd: dict[int, float] = field(default_factory=dict)  # post id -> its share of the chosen estimate

    def usd_of(self, item: Item) -> float:
        return self.item_usd.get(item.post_id, self.chosen.usd / max(1, len(self.items)))

    @property
    def chosen(self) -> budget.Estimate:
        return self.estimates[0]

    def render(self) -> str:
        lines = [f"posts to label: {len(self.items)} (labeler {self.params.provider} {self.params.labeler})"]
        for reason, n in sorted(self.skipped.items()):
            lines.append(f"skipped, not sent: {n} ({reason})")
        lines.extend(self.notes)
        lines.append(f"{'provider':<11} {'model':<28} {'mode':<6} {'tokens in':>11} {'tokens out':>10}"
                     f" {'USD':>9}  basis")
        for e in self.estimates:
            mark = "*" if e is self.chosen else " "
            lines.append(f"{mark}{e.provider:<10} {e.model[:28]:<28} {e.mode:<6} {e.tokens_in:>11,}"
                         f" {e.tokens_out:>10,} {e.usd:>9.4f}  {e.basis}")
        return "\n".join(lines)


EXAMPLE_SQL = ("SELECT p.id, p.subject, p.text, i.path, l.label, l.sarcastic FROM labels l"
               " JOIN posts p ON p.id = l.post_id JOIN images i ON i.id = p.image_id"
               " WHERE l.source = 'human' AND l.split = 'train' AND " + CANDIDATE_SQL +
               " AND NOT EXISTS (SELECT 1 FROM labels t WHERE t.post_id = p.id AND t.split = 'test')")


def few_shot_examples(db: sqlite_utils.Database, n: int, max_pixels: int, ids: tuple[int, ...] | None = None
                      ) -> tuple[tuple[Example, ...], list[str]]:
    """Human TRAIN-split labels only (test-split posts must never leak into prompts): `n` spread over the classes
    as evenly as they allow, or exactly the posts `ids` (a recorded job's). Returns the examples that will be
    sent and one line per problem (fewer than asked, unreadable images): nothing is dropped silently."""
    if (ids is None and n <= 0) or ids == ():
        return (), []
    rows: list[tuple] = []
    if ids is not None:
        marks = ",".join("?" * len(ids))
        found = {r[0]: r for r in db.execute(f"{EXAMPLE_SQL} AND p.id IN ({marks})", list(ids))}
        rows = [found[i] for i in ids if i in found]
        missing = [i for i in ids if i not in found]
    else:
        missing = []
        by_class = {label: db.execute(f"{EXAMPLE_SQL} AND l.label = ? ORDER BY l.id", [label]).fetchall()
                    for label in LABELS}
    picked: list[Example] = []
    unreadable: list[int] = []
    leaking: list[int] = []  # copies of test posts (image or text): the labeler is scored on the test set
    leaks = leakage_check(db)

    def take(row: tuple) -> bool:
        post, subject, text, path, label, sarcastic = row
        if leaks(post):
            leaking.append(post)
            return False
        try:
            url = data_url(image_jpeg(path, max_pixels))
        except (OSError, ValueError):
            unreadable.append(post)
            return False
        picked.append(Example(post_text(subject, text), url, LabelAnswer(
            label=label, confidence=1.0, sarcastic=bool(sarcastic), rationale="human label"), post))
        return True

    if ids is not None:
        for row in rows:
            take(row)
        wanted = len(ids)
    else:
        wanted = n
        for index, label in enumerate(LABELS):
            share = n // len(LABELS) + (1 if index < n % len(LABELS) else 0)
            got = 0
            for row in by_class[label]:
                if got >= share:
                    break
                got += take(row)
    problems = []
    if unreadable:
        problems.append(f"few-shot: {len(unreadable)} example image(s) unreadable, not sent (posts "
                        f"{', '.join(map(str, unreadable[:10]))})")
    if leaking:
        problems.append(f"few-shot: {len(leaking)} example(s) share an image or text with the human test set, not"
                        f" sent (posts {', '.join(map(str, leaking[:10]))})")
    if missing:
        problems.append(f"few-shot: {len(missing)} recorded example(s) are no longer human train labels, not sent"
                        f" (posts {', '.join(map(str, missing[:10]))})")
    if len(picked) < wanted:
        counts = Counter(e.answer.label for e in picked)
        problems.append(f"few-shot: asked for {wanted} example(s), sending {len(picked)} ("
                        + (", ".join(f"{counts[label]} {label}" for label in LABELS)) + ")")
    return tuple(picked), problems


def select(db: sqlite_utils.Database, params: Params) -> tuple[list[Item], Counter[str]]:
    """Candidate posts without a label from this labeler, and the posts that cannot be sent (with why)."""
    source = params.source
    skipped: Counter[str] = Counter()
    for image_id, status, reason in db.execute(
        "SELECT p.image_id, i.status, i.reason FROM posts p LEFT JOIN images i ON i.id = p.image_id"
        " WHERE trim(p.text) != '' AND (p.image_id IS NULL OR i.status != 'ok')"
        " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.post_id = p.id AND l.source = ? AND l.labeler = ?)",
        [source, params.labeler],
    ):
        skipped["no image" if image_id is None else f"image {status}" + (f": {reason}" if reason else "")] += 1
    limit = -1 if params.limit is None else params.limit
    claimed = ledger.live_claims(db)
    items = []
    for row in db.execute(
        "SELECT p.id, p.subject, p.text, i.path, i.sha256, coalesce(i.width, 0), coalesce(i.height, 0),"
        " EXISTS (SELECT 1 FROM labels h WHERE h.post_id = p.id AND h.source = 'human' AND h.split = 'test')"
        f" FROM posts p JOIN images i ON i.id = p.image_id WHERE {CANDIDATE_SQL}"
        " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.post_id = p.id AND l.source = ? AND l.labeler = ?)"
        " ORDER BY p.id",
        [source, params.labeler],
    ):
        post, subject, text, path, sha, width, height, is_test = row
        key = ledger.request_key(post, sha or "", params.prompt_version, params.model)
        if key in claimed:
            skipped[CLAIMED] += 1
            continue
        items.append(Item(post, subject, text, path or "", sha or "", width, height,
                          "test" if is_test else "unassigned", key))
        if len(items) == limit:
            break
    return items, skipped


def plan(db: sqlite_utils.Database, settings: Settings, params: Params) -> Plan:
    """Everything `--dry-run` prints; nothing is sent and nothing is written.

    The returned plan's params are final: the few-shot examples actually sent, the prompt version (and so the
    labeler name) that says so, and the model's price."""
    providers.get(params.provider)
    examples, notes = few_shot_examples(db, params.few_shot, settings.images.max_pixels, params.examples)
    params = replace(params, examples=tuple(e.post_id for e in examples), prompt_version=prompt_version(examples),
                     price=params.price or settings.price(params.model))
    items, skipped = select(db, params)
    example_tokens = sum(budget.text_tokens(e.text) + 85 + 40 for e in examples)
    sizes = [budget.PostSize(i.subject, i.text, i.width, i.height) for i in items]
    estimates = []
    for provider in [params.provider] + [p for p in providers.names() if p != params.provider]:
        if provider == params.provider:
            model, price = params.model, params.price
        else:
            model = providers.settings_of(settings, provider).model
            price = settings.prices.get(model)
            if price is None:
                notes.append(f"{provider} {model}: no price known, not estimated (add [prices.\"{model}\"])")
                continue
        assert price is not None
        # the chosen mode first; a provider without a batch API only ever gets a live row
        modes = [params.mode] + [m for m in ("live", "batch") if m != params.mode]
        if not providers.get(provider).supports_batch:
            modes = ["live"]
        for mode in modes:
            estimates.append(budget.estimate(db, settings, provider, model, params.prompt_version, sizes, mode,
                                             price, example_tokens))
    return Plan(params, items, skipped, estimates, examples, notes,
                item_shares(settings, params, items, estimates[0], example_tokens))


def item_shares(settings: Settings, params: Params, items: list[Item], chosen: budget.Estimate,
                example_tokens: int) -> dict[int, float]:
    """Each post's share of the chosen estimate, in proportion to its own formula tokens (long posts and large
    images reserve more against the caps than short ones)."""
    if not items or params.price is None:
        return {}
    conf = providers.settings_of(settings, params.provider)
    formula = [budget.formula_tokens_in(params.provider, conf.detail, i.subject, i.text, i.width, i.height,
                                        settings.images.max_pixels, example_tokens) for i in items]
    scale = chosen.tokens_in / max(1, sum(formula))
    out_each = chosen.tokens_out / len(items)
    return {i.post_id: params.price.usd(round(f * scale), round(out_each), params.mode)
            for i, f in zip(items, formula, strict=True)}


def the_text(item: Item) -> str:
    return user_prompt(item.subject, item.text)


def resolve(settings: Settings, provider: str | None, model: str | None, limit: int | None, batch: bool) -> Params:
    provider = provider or settings.labeling.provider
    conf = providers.settings_of(settings, provider)
    if batch and not providers.get(provider).supports_batch:
        raise BizsentError(f"{provider} has no batch API here; run without --batch")
    if limit is not None and limit < 1:
        raise BizsentError("--limit must be at least 1")
    model = model or conf.model
    return Params(provider, model, "batch" if batch else "live", limit, settings.labeling.few_shot,
                  price=settings.price(model))


# ---- jobs run by id: queued by the console, resumed after a crash, cancelled from anywhere ----
