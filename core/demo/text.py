"""Varied texts for the demo posts: a scenario's core line dressed with seeded fragments (openers, slang, tickers,
prices, percentages, greentext), so two demo posts rarely share a text. Real /biz/ posts repeat phrases but
seldom whole posts; near-identical demo texts would make the dataset's leakage guard drop most of the pool.

The fragments follow the post's voice: the direction its words take (for a sarcastic post, the literal one), so
dressing a text never changes what it says. Pure functions of the rng: same seed, same texts.
"""

from __future__ import annotations

import random

OPENERS: dict[str, tuple[str, ...]] = {
    "bullish": ("gm frens.", "ser,", "anons,", "not financial advice but", "ok hear me out:", "lads,",
                "reminder:", "{coin} bros,", "told you {days} days ago:", "just saying,", "comfy hodlers,"),
    "bearish": ("lads...", "anons,", "well.", "not gonna lie,", "day {days} of holding {coin}:", "fuck.",
                "bros,", "checked the chart again.", "update from the bunker:", "can't sleep,"),
    "neutral": ("quick question:", "anons,", "serious question,", "newfag here,", "been lurking {days} weeks,",
                "genuine question:", "sorry if this was asked,", "ser,", "fren,"),
}
TAILS: dict[str, tuple[str, ...]] = {
    "bullish": ("WAGMI", "lfg", "{coin} to {target}", "up {pct}% since {day}", "see you at {target}", "hodl",
                "few understand", "comfy af", "probably nothing", "bought more at {price}", "{pct}x incoming",
                "not selling below {target}", "green dildos all week"),
    "bearish": ("ngmi", "rope time", "down {pct}% since {day}", "bought at {price} btw", "rekt",
                "should have sold at {target}", "wagie cage here I come", "{coin} is going to {low}", "pink wojak irl",
                "bagholding since {day}", "my wife's bf was right", "{pct}% of my stack gone"),
    "neutral": ("thoughts?", "dyor", "asking for a fren", "{coin} at {price} rn", "any sauce?", "desu",
                "genuinely curious", "been watching since {day}", "no idea tbh", "pls respond", "inb4 dyor",
                "chart attached"),
}
GREENTEXT: dict[str, tuple[str, ...]] = {
    "bullish": (">wake up\n>{coin} up {pct}%", ">be me\n>bought {coin} at {price}", ">mfw bears btfo",
                ">checked portfolio on {day}\n>all green"),
    "bearish": (">wake up\n>{coin} down {pct}%", ">be me\n>bought {coin} at {price}", ">mfw margin call",
                ">checked portfolio on {day}\n>all red"),
    "neutral": (">be me\n>holding {coin}", ">{coin} does nothing for {days} days", ">read the whitepaper",
                ">{day} again"),
}
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "the weekend", "the halving", "last week",
        "the ETF news", "new year")
LINKS = ("finviz.com/map", "tradingview.com/chart", "earningswhispers.com", "coinglass.com", "dexscreener.com",
         "fedwatch tool", "cme gap tracker", "kitco.com", "investing.com/calendar", "etherscan.io/gastracker",
         "mempool.space", "defillama.com")
TOPICS = ("CPI week", "earnings season", "fed day", "quad witching", "ETF flows", "halving countdown",
          "bond auction", "jobs report", "options expiry", "rate cut watch")


def fill(template: str, rng: random.Random, coin: str) -> str:
    """Fill the placeholders a fragment may use with seeded values (prices, targets, percentages, days)."""
    price = rng.choice((f"{rng.uniform(0.01, 9):.3f}", f"{rng.randint(10, 990)}", f"{rng.randint(1, 99)}k"))
    return template.format(coin=coin, price=price, target=f"{rng.randint(2, 500)}k", low=rng.choice(("zero", "0.01")),
                           pct=rng.randint(3, 95), days=rng.randint(2, 400), day=rng.choice(DAYS))


def dress(core: str, voice: str, rng: random.Random, coin: str) -> str:
    """The core line with an opener, a tail and/or a greentext block of the same voice (each drawn, none forced)."""
    draws = [rng.random() for _ in range(3)]
    parts = [fill(core, rng, coin)]
    if draws[0] < 0.55 and not core.startswith(">"):
        parts.insert(0, fill(rng.choice(OPENERS[voice]), rng, coin))
    if draws[1] < 0.75:
        parts.append(fill(rng.choice(TAILS[voice]), rng, coin))
    text = " ".join(parts)
    if draws[2] < 0.3 and not core.startswith(">"):
        text = fill(rng.choice(GREENTEXT[voice]), rng, coin) + "\n" + text
    return text


def general_thread(title: str, rng: random.Random, coin: str, prev: int) -> str:
    """A general thread OP: its title, an edition line, a shuffled link list and the previous thread link."""
    links = rng.sample(LINKS, k=rng.randint(3, 5))
    edition = f">edition #{rng.randint(100, 9999)}: {rng.choice(TOPICS)}"
    extra = fill(rng.choice((">{coin} at {price}", ">rules: no shilling", ">{pct} posts till bump limit",
                             ">news: {coin} volume {pct}% above average")), rng, coin)
    return "\n".join([title, edition, ">links: " + ", ".join(links), extra, f">previous >>{prev}"])
