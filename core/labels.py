"""The label set and the labeling contract: which sentiment classes exist and how they are spelled, the versioned
prompt every model reads (API labelers and the fine-tuned model alike) and the API answer schema."""

import base64
import hashlib
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Label = Literal["bearish", "neutral", "bullish"]
LABELS: tuple[Label, ...] = ("bearish", "neutral", "bullish")

# The user's scraper stored ratings as 1/2/3; keys 1/2/3 in the console follow the same order.
RATING_TO_LABEL: dict[int, Label] = {1: "bearish", 2: "neutral", 3: "bullish"}
LABEL_TO_RATING: dict[Label, int] = {v: k for k, v in RATING_TO_LABEL.items()}

SOURCES = ("human", "api", "model", "pseudo")
# The vision LLM labelers' source. Which provider answered is data, not schema: the labeler name says it,
# "openai:gpt-5-mini@p3" (api_labeler), so a new provider (core.label.providers) needs no table change.
API_SOURCE = "api"
SPLITS = ("test", "train", "val", "unassigned")

# Combined labels (`bizsent agreement --combine`: Dawid-Skene or majority over all API labelers) are nobody's
# single answer. The schema has no source for them, so they are stored as source "pseudo" with labeler
# "combined:<method>"; is_combined is the one test every reader uses to tell them from self-training's pseudo
# labels (labeler "selftrain:runN").
COMBINED_SOURCE = "pseudo"
COMBINED_PREFIX = "combined:"


def combined_labeler(method: str) -> str:
    return f"{COMBINED_PREFIX}{method}"


def is_combined(source: str, labeler: str | None) -> bool:
    """Is this label row a combined label (written by core.agreement.combine_labels)?"""
    return source == COMBINED_SOURCE and (labeler or "").startswith(COMBINED_PREFIX)


def api_labeler(provider: str, model: str, prompt_version: str) -> str:
    """The labeler name of an API label: which provider, which model, which prompt ("openai:gpt-5-mini@p3")."""
    return f"{provider}:{model}@{prompt_version}"


def provider_of(source: str, labeler: str | None) -> str | None:
    """The provider that gave an API label (the labeler name up to its first colon); None for other sources."""
    if source != API_SOURCE:
        return None
    return (labeler or "").partition(":")[0] or None


def origin(source: str, labeler: str | None) -> str:
    """Who a label is from, as users name it: the provider for API labels ("openai"), else the source ("human")."""
    return provider_of(source, labeler) or source


def origin_sql(alias: str = "") -> str:
    """`origin` as an SQL expression over the labels table (`alias`: its alias in the query, if any)."""
    a = f"{alias}." if alias else ""
    return (f"(CASE WHEN {a}source = '{API_SOURCE}' THEN substr({a}labeler, 1, instr({a}labeler, ':') - 1)"
            f" ELSE {a}source END)")


def labeler_name(source: str, labeler: str | None) -> str:
    """A labeler as tables show it, "openai:gpt-5-mini@p3" or "model:run4": API labeler names already start with
    their provider."""
    return labeler or source if source == API_SOURCE else f"{source}:{labeler or ''}"


# How a human test label's post was chosen (labels.sampling). Only "random" makes the test set a sample of the
# pool; other orders (newest, filter, active learning, disagreements first) pick what is new or hard.
RANDOM_SAMPLING = "random"
# A test post from the test reservation (reserved_for_test): a random sample of every candidate collected, drawn up
# front, so the orders that ran before (active learning takes the hard posts) cannot thin it.
RESERVED_SAMPLING = "reserved"
TEST_RESERVE_SALT = "bizsent-test-reserve-1"  # the draw itself: changing it redraws the reservation


def reserved_for_test(post_id: int, fraction: float) -> bool:
    """Is the post in the test reservation? A fixed hash of its id against `fraction` (labeling.test_reserve): the
    same draw for every post, collected before or after, whatever was labelled first, so the reservation is a
    random sample of everything collected and can be recomputed anywhere without a table."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{TEST_RESERVE_SALT}:{post_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def parse_label(value: object) -> Label:
    """Accept a label word or its 1/2/3 rating; raise ValueError for anything else."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in LABELS:
            return word  # type: ignore[return-value]
        if word.isdigit():
            value = int(word)
    if isinstance(value, int) and not isinstance(value, bool) and value in RATING_TO_LABEL:
        return RATING_TO_LABEL[value]
    raise ValueError(f"{value!r} is not a label (use bearish/neutral/bullish or 1/2/3)")


# ---- The labeling contract: one rules text, two answer formats, one version ----
# Every model that rates posts reads the same rules: the API labelers all of them (PROMPT_RULES, answering JSON
# that follows LabelAnswer); the fine-tuned model their task statement (FINETUNE_INSTRUCTION, answering one label
# word, which is what training teaches and what label-token scoring reads). It learns the label definitions, cues
# and slang from its training labels, which follow the full rules; spelling them out in its prompt too would add
# ~300 tokens to every training and scoring sequence (about 1.5x the compute of a 7B step) and teach it nothing.
# Both prompts are built from the pieces below, so one PROMPT_VERSION covers both: bump it whenever a piece, an
# answer tail or the answer schema changes. API labels, ledger keys, agreement tables, dataset manifests and
# adapters are all keyed by it, so old and new prompts never mix silently.

# p3: no base rate ("expect roughly half of /biz/ to be bearish" biased labels towards bearish; the user's own
# hand labels are 34% bearish) and the labeling guide's remaining rules (consistency, no class balance, skips).
PROMPT_VERSION = "p3"

TASK_RULES = """You rate the market sentiment of posts from 4chan's /biz/ board (crypto and markets).
Every post is an image plus its text. Judge the image and the text together, including any text written
on the image, and rate the post's overall intended sentiment about markets or coins, not single words."""

LABEL_DEFINITIONS = """Labels:
- bearish: "it's over", despair, panic, capitulation, crash predictions, pink wojak, doom memes, red candles.
- neutral: questions, news without an opinion, off-topic posts, mixed or unclear signals, memes without a
  clear direction. Recurring general threads (/smg/, /pmg/, /xsg/ and the like, mostly link lists) are
  neutral unless the post itself takes a side.
- bullish: WAGMI, "to the moon", green wojak or happy pepe, green candles, euphoria, optimism."""

GUIDANCE = """Sarcasm and irony: rate the intended sentiment. An ironic "WAGMI" during a crash is bearish;
"this is fine" over a burning room is bearish. Greentext is often ironic: read all of it. When the image
contradicts the text, the image usually carries the real meaning.
Image cues: pink wojak = bearish, green wojak = bullish; bogdanoff memes = manipulation (direction from
context).
Slang: wagmi, moon, hodl, ape in, send it, lfg, up only lean bullish; ngmi, rekt, rugged, rope, it's over,
bagholder, exit liquidity lean bearish; cope, fud, dyor, ser, fren, anon depend on context. Irony markers:
"unironically", "surely", "any day now".
Genuinely mixed or unsure: neutral, with a low confidence. When torn between two labels, settle it the same
way every time.
Rate each post on its own and never aim for a class balance.
Posts with a broken or missing image, unreadable text, spam or corrupt data are skipped, not rated; if one
reaches you, answer neutral with confidence 0 and say why in the rationale."""

LABEL_RULES = f"{TASK_RULES}\n\n{LABEL_DEFINITIONS}\n\n{GUIDANCE}"

# The API tail: the structured answer (LabelAnswer) with the fields only an API labeler fills in.
API_ANSWER_RULES = """Set sarcastic=true when the literal words say the opposite of the intended sentiment. Give a low
confidence when the post is genuinely mixed or you are unsure.
Answer only with JSON: {"label": "bearish"|"neutral"|"bullish", "confidence": 0..1, "sarcastic": true|false,
"rationale": one short sentence}."""

# The fine-tuned tail: the model answers with the bare label word (its first token is what scoring reads).
FINETUNE_ANSWER_RULES = "Answer with exactly one word: " + ", ".join(LABELS[:-1]) + " or " + LABELS[-1] + "."

PROMPT_RULES = f"{LABEL_RULES}\n\n{API_ANSWER_RULES}"
FINETUNE_INSTRUCTION = f"{TASK_RULES}\n{FINETUNE_ANSWER_RULES}"


class LabelAnswer(BaseModel):
    """The structured answer every API labeler must return (also the JSON schema sent to the APIs)."""

    model_config = ConfigDict(extra="forbid")

    label: Label
    confidence: float = Field(ge=0, le=1)
    sarcastic: bool
    rationale: str


@dataclass(frozen=True, slots=True)
class Example:
    """One few-shot example: a human TRAIN-split label with its post (never a test-split post)."""

    text: str
    image_url: str  # data URL of the downscaled image
    answer: LabelAnswer
    post_id: int = 0


def prompt_version(examples: tuple[Example, ...] | list[Example]) -> str:
    """The version of what is sent: PROMPT_VERSION, plus, with few-shot examples, how many were actually sent
    and a short hash of which posts with which labels ("p3-fs3.1a2b3c4d"). Labels, ledger keys and agreement
    tables are keyed by it, so two prompts that differ in their examples never share a labeler name."""
    if not examples:
        return PROMPT_VERSION
    import hashlib

    shown = ";".join(f"{e.post_id}:{e.answer.label}:{int(e.answer.sarcastic)}" for e in examples)
    return f"{PROMPT_VERSION}-fs{len(examples)}.{hashlib.sha256(shown.encode()).hexdigest()[:8]}"


def post_text(subject: str, text: str) -> str:
    """The text part of a request: the subject (when there is one) and the clean post text."""
    body = text.strip()
    return f"Subject: {subject.strip()}\n\n{body}" if subject.strip() else body


def user_prompt(subject: str, text: str) -> str:
    return f"Post text:\n{post_text(subject, text)}\n\nRate this post (image above)."


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
