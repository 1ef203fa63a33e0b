"""Built-in demo data (floor 4, beside collect; may import floors 0-4): a few
hundred synthetic /biz/-style posts with generated images and labels, so every
screen has something real to show without keys or network.

Deterministic (the seed fixes post numbers, texts, labels and image bytes) and idempotent (posts dedupe on
their numbers, labels upsert, images already cached are not redrawn). The class mix follows the user's hand
labels (about 35% bearish, 45% neutral, 20% bullish); some posts are sarcastic pairs whose text says one
thing and whose image says the other, labelled by the image as the labeling guide asks.
"""

from __future__ import annotations

import html
import random
import time as clock
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils
from bizsent.core.collect.images import cache_image, record
from bizsent.core.demo.images import ImageSpec, render
from bizsent.core.demo.text import dress, fill, general_thread
from bizsent.core.labels import API_SOURCE, LABELS, RANDOM_SAMPLING, Label, api_labeler, origin
from bizsent.core.store import chunks, transaction
from bizsent.core.store.posts import CANDIDATE_SQL, add_note, add_skip, post_id, save_posts, set_label
from bizsent.core.store.records import ImageRef, NewLabel, NewPost

BOARD = "biz"
SOURCE = "demo"
HUMAN = "human:demo"
API_LABELERS = (("openai", api_labeler("openai", "gpt-5-mini", "demo-v1")),
                ("gemini", api_labeler("gemini", "gemini-2.5-flash", "demo-v1")))
START_TIME = 1_736_899_200  # 2025-01-15 00:00 UTC: fixed, so the same seed gives the same posts
REPOST_RATE = 0.03
COINS = ("BTC", "ETH", "SOL", "LINK", "XMR", "PEPE", "DOGE", "ADA")


@dataclass(frozen=True, slots=True)
class Scenario:
    truth: Label
    weight: float
    images: tuple[tuple[str, tuple[str, ...]], ...]  # (image kind, captions or chart titles that fit it)
    texts: tuple[str, ...]
    cue: str  # the rationale a careful labeler gives
    literal: Label | None = None  # sarcastic pairs: what the words alone say (what a fooled labeler answers)
    ambiguous: bool = False  # a human marks some of these unsure
    spam: bool = False  # a human skips these
    subjects: tuple[str, ...] = ("",)
    tone: Label | None = None  # the direction of the words when it is neither the truth nor a sarcastic literal

    @property
    def voice(self) -> Label:
        """The direction the words take (the fragments that dress a text follow it)."""
        return self.tone or self.literal or self.truth

    @property
    def sarcastic(self) -> bool:
        return self.literal is not None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("bullish", 7, (("chart_up", ("{coin}/USDT 4H", "{coin}/USD 1D")),),
             ("{coin} just broke out, up only from here", "told you to ape in anon. WAGMI",
              "LFG {coin} sending it to the moon",
              ">be me\n>bought {coin} at the bottom\n>up {pct}% this week\nfeels good",
              "green candles all day, hodl frens"), "green candles and euphoric text"),
    Scenario("bullish", 6, (("wojak_green", ("WAGMI", "WE'RE SO BACK", "UP ONLY", "SEND IT")),),
             ("we're so back bros", "ape in while you still can, {coin} to {target}",
              ">wake up\n>portfolio green\n>buy more {coin}", "gm frens, wagmi"), "green wojak, bullish caption"),
    Scenario("bullish", 4, (("screenshot", ("Order filled",)),),
             ("aped in, see you on the moon", "loaded my bags with {coin} before the pump ser",
              "just bought more, dyor but this is the easiest money of your life"), "buy order and moon talk"),
    Scenario("bearish", 9, (("chart_down", ("{coin}/USDT 1H", "{coin}/USD 15m")),),
             ("it's over", "{coin} rugged again, I'm ngmi", "rekt. sold everything at the bottom",
              ">be me\n>ape into {coin} at ATH\n>it dumps {pct}%\n>mfw", "more red candles, bagholders btfo"),
             "red candles and despair"),
    Scenario("bearish", 8, (("wojak_pink", ("IT'S OVER", "NGMI", "REKT", "I'M DONE")),),
             ("lost my whole stack on {coin}", "it's over for crypto, exit liquidity all of us",
              "ngmi. back to wagie life", ">check portfolio\n>down {pct}%\n>rope"), "pink wojak, doom caption"),
    Scenario("bearish", 5, (("fine", ("THIS IS FINE",)),),
             ("how is everyone's portfolio doing today", "{coin} holders checking in",
              "just a healthy correction, nothing to see"), "'this is fine' over a burning room", tone="neutral"),
    Scenario("bearish", 4, (("screenshot", ("Position liquidated",)),),
             ("100x long on {coin}, liquidated in {days} seconds", "exchange froze withdrawals, we're fucked"),
             "liquidation and panic"),
    Scenario("bearish", 6, (("chart_down", ("{coin}/USDT 1H",)),),
             ("WAGMI bros", "surely this is the bottom", "up only lmao",
              "healthy correction, buying the dip unironically", "{coin} to the moon any day now"),
             "ironic bullish words over a red crash chart", literal="bullish"),
    Scenario("bearish", 3, (("wojak_pink", ("UP ONLY", "WAGMI")),),
             ("feeling great about my bags", "never been more bullish on {coin}"),
             "crying pink wojak under a bullish caption: irony", literal="bullish"),
    Scenario("bullish", 3, (("chart_up", ("{coin}/USDT 1D",)),),
             ("yeah it's so over, totally ngmi", "bears told me {coin} was dead lmao", "cope harder bears, it's over"),
             "mock despair over a strong green chart", literal="bearish"),
    Scenario("neutral", 14, (("screenshot", ("/smg/ links", "Market overview")), ("chart_flat", ("{coin}/USDT 1D",))),
             (),  # general threads: a title, link list and previous thread (core.demo_text.general_thread)
             "recurring general thread, link list", subjects=("/smg/ - Stock Market General",
                                                              "/cmg/ - Crypto Market General",
                                                              "/pmg/ - Precious Metals General")),
    Scenario("neutral", 10, (("wojak_plain", ("DYOR", "?")), ("screenshot", ("Wallet settings",))),
             ("which hardware wallet ser? ledger or trezor", "how do I bridge {coin} to L2 fren",
              "is {coin} a good first buy or should I dyor more", "what's everyone's DCA plan"),
             "question without a direction"),
    Scenario("neutral", 10, (("screenshot", ("Breaking news", "Reuters")),),
             ("SEC delays decision on {coin} ETF again", "fed minutes out on {day}, {coin} at {price}",
              "{coin} mainnet upgrade scheduled for next week"), "news without an opinion"),
    Scenario("neutral", 8, (("chart_flat", ("{coin}/USDT 1D",)), ("wojak_plain", ("CRAB MARKET", "MEH"))),
             ("crab market. thoughts?", "could go either way desu", ">{coin} pumps\n>{coin} dumps\n>repeat",
              "bogdanoff called, he says maybe"), "mixed signals", ambiguous=True),
    Scenario("neutral", 1, (("screenshot", ("FREE AIRDROP",)),),
             ("FREE {coin} AIRDROP claim {pct}k now at t.me/totallylegit",
              "send 1 {coin} get 2 back, {days} spots left"),
             "spam", spam=True),
)


@dataclass
class DemoReport:
    posts: int = 0
    posts_new: int = 0
    candidates: int = 0
    images_ok: int = 0
    images_corrupt: int = 0
    no_image: int = 0
    empty_text: int = 0
    sarcastic: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    unlabeled: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        labels = ", ".join(f"{source} {n}" for source, n in sorted(self.labels.items()))
        return (
            f"demo data: {self.posts} posts ({self.posts_new} new), {self.candidates} labeling candidates, "
            f"{self.sarcastic} sarcastic pairs; images: {self.images_ok} ok, {self.images_corrupt} corrupt, "
            f"{self.no_image} posts without an image, {self.empty_text} without text; labels: {labels}; "
            f"{self.unlabeled} candidates unlabeled; {self.seconds:.1f}s"
        )


@dataclass(frozen=True, slots=True)
class DemoPost:
    post: NewPost
    scenario: Scenario
    image: ImageSpec | None
    corrupt: bool = False


def to_html(text: str) -> str:
    """4chan-style markup for a clean text (quote links, greentext, line breaks)."""
    parts = []
    for line in text.split("\n"):
        if line.startswith(">>") and line[2:].isdigit():
            parts.append(f'<a href="#p{line[2:]}" class="quotelink">&gt;&gt;{line[2:]}</a>')
        elif line.startswith(">"):
            parts.append(f'<span class="quote">{html.escape(line)}</span>')
        else:
            parts.append(html.escape(line))
    return "<br>".join(parts)


def build_posts(n_posts: int, seed: int) -> list[DemoPost]:
    """The demo posts for a seed, without touching the store (so determinism is easy to check)."""
    rng = random.Random(seed)
    weights = [s.weight for s in SCENARIOS]
    post_no = 59_000_000 + (seed % 1000) * 10_000
    when = START_TIME
    ops: list[int] = []
    specials = rng.sample(range(n_posts), k=min(n_posts, max(3, n_posts // 10)))
    corrupt_at = specials[0]
    no_image = set(specials[1: 1 + len(specials) // 2])
    empty_text = set(specials[1 + len(specials) // 2:])
    posts = []
    lines = {scenario: _lines(scenario) for scenario in SCENARIOS}
    said: dict[Scenario, list[str]] = {}  # texts so far, per scenario: copypasta draws from them
    for index in range(n_posts):
        post_no += rng.randint(1, 40)
        when += rng.randint(20, 400)
        scenario = rng.choices(SCENARIOS, weights)[0]
        coin = rng.choice(COINS)
        general = bool(scenario.subjects[0])  # general threads (/smg/ ...) are always an OP with a subject
        is_op = not ops or rng.random() < 0.35 or general
        thread_no = post_no if is_op else rng.choice(ops[-5:])
        if is_op:
            ops.append(post_no)
        subject = rng.choice(scenario.subjects) if is_op else ""
        if general:
            text = general_thread(subject, rng, coin, post_no - rng.randint(5_000, 90_000))
        elif scenario.spam:
            text = fill(rng.choice(scenario.texts), rng, coin)
        else:
            text = dress(rng.choice(lines[scenario]), scenario.voice, rng, coin)
        if said.get(scenario) and rng.random() < REPOST_RATE:
            text = rng.choice(said[scenario])  # anons repost pasta: the leakage guard has a few copies to find
        said.setdefault(scenario, []).append(text)
        if not is_op and rng.random() < 0.5:
            text = f">>{thread_no}\n{text}"
        if index in empty_text:
            text = ""
        kind, captions = rng.choice(scenario.images)
        caption = rng.choice(captions).format(coin=coin)
        image_seed = rng.randrange(2**31)
        spec = None if index in no_image else ImageSpec(kind, image_seed, caption, _screen_lines(rng, caption, coin))
        image = ImageRef(url=f"demo://{BOARD}/{post_no}.png") if spec else None
        post = NewPost(board=BOARD, thread_no=thread_no, post_no=post_no, text=text, html=to_html(text),
                       subject=subject, time=when, is_op=is_op,
                       source=SOURCE, image=image)
        posts.append(DemoPost(post=post, scenario=scenario, image=spec, corrupt=index == corrupt_at))
    return posts


def _lines(scenario: Scenario) -> tuple[str, ...]:
    """The core lines a scenario's posts say. A sarcastic post may also say any sincere line of its literal direction,
    so its words alone cannot tell it from a sincere post: only the image can (as on the real board)."""
    if not scenario.sarcastic:
        return scenario.texts
    sincere = [s.texts for s in SCENARIOS if s.truth == scenario.literal and not s.sarcastic and s.tone is None]
    return scenario.texts + tuple(line for texts in sincere for line in texts)


def _screen_lines(rng: random.Random, title: str, coin: str) -> tuple[str, ...]:
    amount = f"{rng.uniform(0.5, 50):.2f}"
    price = f"{rng.uniform(0.1, 90_000):,.2f}"
    return {
        "Order filled": (f"BUY {amount} {coin}", f"Price: {price} USDT", "Status: FILLED"),
        "Position liquidated": (f"{coin}-PERP LONG 100x", f"Entry {price}", "Position has been LIQUIDATED"),
        "FREE AIRDROP": (f"Claim 5,000 {coin} now!", "Connect wallet to continue", "t.me/totallylegit"),
        "Breaking news": (f"{coin} regulators comment on markets", "Analysts divided", "More at 11"),
        "Reuters": (f"{coin} volumes steady ahead of fed minutes", f"Last {price}", "Markets wait for data"),
        "/smg/ links": ("finviz.com/map", "tradingview.com/chart", "earningswhispers.com", "old thread archived"),
        "Market overview": tuple(f"{c:<5} {rng.uniform(-2, 2):+.2f}%" for c in COINS[:5]),
        "Wallet settings": ("Network: Ethereum mainnet", f"Balance: {amount} {coin}", "Seed phrase: ********"),
    }.get(title, (f"{coin} {price}", f"24h vol {amount}M", "Settings | Help"))


def seed_demo(db: sqlite_utils.Database, image_dir: Path, *, n_posts: int = 300, seed: int = 7) -> DemoReport:
    """Write the demo posts, images and labels for `seed`; running it again changes nothing."""
    started = clock.perf_counter()
    demo = build_posts(n_posts, seed)
    report = DemoReport(posts=len(demo))
    for chunk in chunks(demo):
        report.posts_new += save_posts(db, [d.post for d in chunk]).new
    # Rendering and caching take seconds: no transaction around them (each record commits on its own), so a
    # job writing to the same database never waits behind the demo.
    for item in demo:
        if item.image:
            _cache(db, image_dir, item)
    rng = random.Random(seed * 7919 + 1)
    for chunk in chunks(demo):  # short write transactions: a job's heartbeat never waits long
        with transaction(db):
            for item in chunk:
                _label(db, rng, item, report)
    candidates = {
        row[0] for row in db.execute(
            f"SELECT p.post_no FROM posts p JOIN images i ON i.id = p.image_id WHERE p.source = ? AND {CANDIDATE_SQL}",
            [SOURCE],
        )
    }
    report.candidates = sum(d.post.post_no in candidates for d in demo)
    report.images_ok = sum(d.image is not None and not d.corrupt for d in demo)
    report.images_corrupt = sum(d.corrupt for d in demo)
    report.no_image = sum(d.image is None for d in demo)
    report.empty_text = sum(not d.post.text for d in demo)
    report.sarcastic = sum(d.scenario.sarcastic and d.post.post_no in candidates for d in demo)
    report.seconds = clock.perf_counter() - started
    return report


def _cache(db: sqlite_utils.Database, image_dir: Path, item: DemoPost) -> None:
    image_id, status, path = db.execute(
        "SELECT id, status, path FROM images WHERE url = ?", [item.post.image.url]
    ).fetchone()
    if status == ("corrupt" if item.corrupt else "ok") and (item.corrupt or Path(path or "").exists()):
        return
    data = render(item.image)
    if item.corrupt:
        data = data[: len(data) // 3]  # a download cut off mid-file: the cache must refuse it
    record(db, image_id, cache_image(image_dir, data))


def _label(db: sqlite_utils.Database, rng: random.Random, item: DemoPost, report: DemoReport) -> None:
    """Human labels on ~30% of candidates (test split), API labels from two labelers on ~80%, none on ~20%.

    Every candidate draws the same random numbers whatever it gets, so one post's fate never shifts another's.
    """
    draws = [rng.random() for _ in range(8)]
    if item.image is None or item.corrupt or not item.post.text:
        return
    scenario = item.scenario
    pid = post_id(db, item.post.board, item.post.post_no)
    human, unlabeled = draws[0] < 0.30, 0.30 <= draws[0] < 0.50
    if unlabeled:
        report.unlabeled += 1
        return
    if human:
        if scenario.spam:
            add_skip(db, pid, "spam")
        else:
            unsure = scenario.ambiguous and draws[1] < 0.4
            _put(db, pid, NewLabel(label=scenario.truth, source="human", split="test", labeler=HUMAN,
                                   sarcastic=scenario.sarcastic, unsure=unsure, sampling=RANDOM_SAMPLING), report)
            if scenario.sarcastic and draws[2] < 0.5:
                _note(db, pid, f"ironic: {scenario.cue}")
    for index, (provider, labeler) in enumerate(API_LABELERS):
        if provider == "gemini" and draws[3] < 0.1:
            continue  # some posts only went through one provider
        label, confidence, rationale = _api_answer(scenario, draws[4 + index * 2], draws[5 + index * 2])
        _put(db, pid, NewLabel(label=label, source=API_SOURCE, labeler=labeler, confidence=confidence,
                               sarcastic=scenario.sarcastic and label == scenario.truth, rationale=rationale), report)


def _api_answer(scenario: Scenario, hit: float, spread: float) -> tuple[Label, float, str]:
    """Mostly right; sarcastic pairs fool a model about half the time (it reads the words, not the image)."""
    if scenario.sarcastic:
        if hit < 0.5:
            return scenario.truth, round(0.6 + spread * 0.3, 2), scenario.cue
        return scenario.literal, round(0.55 + spread * 0.4, 2), "text reads " + scenario.literal
    if hit < 0.82:
        return scenario.truth, round(0.7 + spread * 0.29, 2), scenario.cue
    wrong = [label for label in LABELS if label != scenario.truth]
    label = wrong[0 if spread < 0.5 else 1]
    return label, round(0.5 + spread * 0.3, 2), "unclear signals, leaning " + label


def _put(db: sqlite_utils.Database, pid: int, label: NewLabel, report: DemoReport) -> None:
    set_label(db, pid, label)
    who = origin(label.source, label.labeler)
    report.labels[who] = report.labels.get(who, 0) + 1


def _note(db: sqlite_utils.Database, pid: int, text: str) -> None:
    if not db.execute("SELECT 1 FROM notes WHERE post_id = ? AND text = ?", [pid, text]).fetchone():
        add_note(db, pid, text)
