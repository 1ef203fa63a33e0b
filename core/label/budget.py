"""What a labeling run will cost before it starts, and the caps that stop it.

Input tokens per post = the prompt rules + the post text (about 4 characters a token, OpenAI's rule of
thumb) + the image at the provider's documented rate + few-shot examples. When the ledger already holds
answered calls for the same provider, model and prompt, the formula is calibrated by them (ratio of actual
to formula input tokens on those posts; mean actual output tokens), which is what "calibrated" means in
the dry-run table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlite_utils
from bizsent.core.collect.images import fit_to_budget
from bizsent.core.config import ModelPrice, ProviderSettings, Settings
from bizsent.core.errors import BizsentError
from bizsent.core.label import ledger, providers
from bizsent.core.labels import PROMPT_RULES, user_prompt

DEFAULT_TOKENS_OUT = 60  # a compact JSON answer with a one-sentence rationale
MESSAGE_OVERHEAD = 12  # role markers and the image part wrapper


class BudgetError(BizsentError):
    pass


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def formula_tokens_in(provider: str, detail: str, subject: str, text: str, width: int, height: int,
                      max_pixels: int, example_tokens: int = 0) -> int:
    w, h = fit_to_budget(width or 448, height or 448, max_pixels)
    return (text_tokens(PROMPT_RULES) + text_tokens(user_prompt(subject, text)) + MESSAGE_OVERHEAD
            + providers.get(provider).image_tokens(detail, max(1, w), max(1, h)) + example_tokens)


@dataclass(frozen=True, slots=True)
class Estimate:
    provider: str
    model: str
    mode: str
    posts: int
    tokens_in: int
    tokens_out: int
    usd: float
    basis: str  # "formula" or "calibrated on N calls"


@dataclass(frozen=True, slots=True)
class PostSize:
    subject: str
    text: str
    width: int
    height: int


def calibration(db: sqlite_utils.Database, provider: str, conf: ProviderSettings, model: str,
                prompt_version: str, max_pixels: int, min_calls: int = 3) -> tuple[float, float, int] | None:
    """(input-token ratio actual/formula, mean output tokens, calls) from the ledger, or None if too few."""
    rows = db.execute(
        "SELECT c.tokens_in, c.tokens_out, p.subject, p.text, i.width, i.height FROM api_calls c"
        " JOIN posts p ON p.id = c.post_id LEFT JOIN images i ON i.id = p.image_id"
        " WHERE c.provider = ? AND c.model = ? AND c.prompt_version = ? AND c.status = 'ok' AND c.tokens_in > 0"
        " ORDER BY c.id DESC LIMIT 500",
        [provider, model, prompt_version],
    ).fetchall()
    if len(rows) < min_calls:
        return None
    actual = sum(r[0] for r in rows)
    formula = sum(formula_tokens_in(provider, conf.detail, r[2], r[3], r[4] or 448, r[5] or 448, max_pixels)
                  for r in rows)
    return actual / max(1, formula), sum(r[1] for r in rows) / len(rows), len(rows)


def estimate(db: sqlite_utils.Database, settings: Settings, provider: str, model: str, prompt_version: str,
             posts: list[PostSize], mode: str, price: ModelPrice | None = None, example_tokens: int = 0) -> Estimate:
    """Tokens and dollars for `posts`; `price` defaults to the model's (Settings.price: refused when unknown)."""
    price = price or settings.price(model)
    conf = providers.settings_of(settings, provider)
    max_pixels = settings.images.max_pixels
    tokens_in = sum(formula_tokens_in(provider, conf.detail, p.subject, p.text, p.width, p.height, max_pixels,
                                      example_tokens) for p in posts)
    tokens_out = DEFAULT_TOKENS_OUT * len(posts)
    basis = "formula (no earlier calls for this model and prompt)"
    calib = calibration(db, provider, conf, model, prompt_version, max_pixels)
    if calib:
        ratio, mean_out, n = calib
        tokens_in = round(tokens_in * ratio)
        tokens_out = round(mean_out * len(posts))
        basis = f"calibrated on {n} recorded calls"
    return Estimate(provider, model, mode, len(posts), tokens_in, tokens_out,
                    price.usd(tokens_in, tokens_out, mode), basis)


def money(usd: float) -> str:
    """Dollars with enough digits to tell small amounts apart: $12.30, $0.0349, $0.00042 (3 significant)."""
    if usd == 0:
        return "$0.00"
    decimals = max(2, 2 - math.floor(math.log10(abs(usd))))
    text = f"{usd:,.{decimals}f}"
    if "." in text and decimals > 2:
        whole, frac = text.split(".")
        text = f"{whole}.{frac.rstrip('0').ljust(2, '0')}"
    return f"${text}"


def _hint(cap_key: str, posts: int | None, limit: int | None, estimate_usd: float, room_usd: float) -> str:
    """What to do about it: fewer posts when fewer would fit, else a higher cap."""
    raise_cap = f"raise labeling.{cap_key} in config.toml"
    if posts is None:
        return f"use --limit or {raise_cap}"
    if posts > 1 and (limit is None or limit > 1):
        fit = math.floor(room_usd / (estimate_usd / posts)) if estimate_usd > 0 else posts
        if fit >= 1:
            return f"use --limit {fit} (about that many fit) or {raise_cap}"
    if room_usd <= 0:
        return f"nothing more fits; {raise_cap}"
    return f"even one post does not fit; {raise_cap}"


def check_caps(db: sqlite_utils.Database, settings: Settings, estimate_usd: float, posts: int | None = None,
               limit: int | None = None) -> None:
    """Refuse to start a run whose estimate crosses the per-job or the total cap. The total counts what every
    process has spent, reserved for requests in flight, or may have paid (ledger.committed_usd)."""
    job_cap, total_cap = settings.labeling.budget_job_usd, settings.labeling.budget_total_usd
    spent = ledger.committed_usd(db)
    what = f"estimated {money(estimate_usd)}" + (f" for {posts} post(s)" if posts else "")
    if estimate_usd > job_cap:
        raise BudgetError(f"{what} exceeds the per-job cap {money(job_cap)} (labeling.budget_job_usd); "
                          + _hint("budget_job_usd", posts, limit, estimate_usd, job_cap))
    if spent + estimate_usd > total_cap:
        raise BudgetError(f"{what} plus {money(spent)} already spent or reserved exceeds the total cap"
                          f" {money(total_cap)} (labeling.budget_total_usd); "
                          + _hint("budget_total_usd", posts, limit, estimate_usd, total_cap - spent))

