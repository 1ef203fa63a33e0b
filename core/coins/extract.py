"""Which coins one post mentions, by rules that can be explained one at a time.

1. `$tag` (a cashtag) always counts: a listed coin by any of its words, else the tag itself (coins.unlisted_cashtags).
   `$100` is a price, not a tag: a tag starts with a letter.
2. A listed name or nickname (one to three words, any case, longest first, so "bitcoin cash" is BCH and not BTC)
   always counts; so does a listed ticker that is not an English word (btc, eth, xmr, any case).
3. A misspelt name counts: a word of 7+ letters one edit (or one swap of neighbours) away from a one-word name
   of 7+ letters ("etherium", "chianlink"); shorter names are too close to ordinary words for this.
   A trailing "s" or "'s" is dropped first ("linkies" is listed, "bitcoins" and "link's" are found this way).
4. An ambiguous word ("link", "sol", "ada", "dot", "corn": an English word or a first name) counts only with
   evidence, and the evidence is recorded:
   - upper:    written in capitals ("LINK"), unless the post shouts (most of its letters are capitals);
   - named:    the same post names the same coin by rule 1-3 ("chainlink ... my link");
   - quantity: right after an amount ("10k link", "500 sol", "1.5k ada");
   - trading:  a trading word within two words before ("sell your link", "aped into sol") or right after
               ("link bags", "sol price", "ada holders");
   - list:     a word away from another coin ("eth and link", "btc, sol, ada").
   Coins marked `strict` ("one", "op", "near": too common to guess) count only by rules 1 and 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bizsent.core.coins import Catalog

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{1,9})\b")
WORD = re.compile(r"[A-Za-z0-9]+(?:[.'’][A-Za-z0-9]+)*")
QUANTITY = re.compile(r"^\d{1,6}(?:[.,]\d+)?[km]?$|^\d+(?:[.,]\d+)?[km]$", re.IGNORECASE)
_BEFORE = (
    "buy buying bought sell selling sold hold holding hodl hodling stack stacking stacked accumulate accumulating "
    "stake staking staked long longing longed short shorting shorted ape aped aping dump dumped dumping swap "
    "swapped bags bag into more muh rebuy rebought fomo fomoed")
_AFTER = (
    "bags bag bagholders holders holder marines stakers staking price pump pumps pumping pumped dump dumps dumping "
    "dumped moon mooning ath chart etf bull bulls bear bears gains rally breakout flippening flipping flip "
    "maxis maxi nodes staked")
TRADING_BEFORE = frozenset(_BEFORE.split())  # trading words up to two words before an ambiguous one
TRADING_AFTER = frozenset(_AFTER.split())  # ... and right after it
MIN_FUZZY = 7  # letters: below this, one edit away from a coin name is mostly an ordinary word
SHOUT_SHARE = 0.6  # share of capitals among the letters above which capitals are not evidence
SHOUT_MIN_LETTERS = 12
MAX_PHRASE = 3


@dataclass(frozen=True, slots=True)
class Mention:
    coin: str  # symbol
    how: str  # cashtag | name | ticker | typo | upper | named | quantity | trading | list


@dataclass(slots=True)
class _Token:
    text: str  # as written
    low: str  # lower case, possessive and plural dropped where that makes a listed word
    coin: str | None = None
    how: str = ""
    maybe: str | None = None  # an ambiguous word's coin, awaiting evidence


def mentions(text: str, catalog: Catalog) -> list[Mention]:
    """The coins `text` mentions, each once, with the first rule that found it (rules in the module doc)."""
    found: dict[str, str] = {}
    for match in CASHTAG.finditer(text):
        symbol = catalog.cashtag(match.group(1))
        if symbol:
            found.setdefault(symbol, "cashtag")
    tokens = _tokens(CASHTAG.sub(" ", text), catalog)
    _match_words(tokens, catalog)
    for tok in tokens:
        if tok.coin:
            found.setdefault(tok.coin, tok.how)
    _resolve_ambiguous(tokens, catalog, found, shouting=_shouting(text))
    return [Mention(coin, how) for coin, how in found.items()]


def _tokens(text: str, catalog: Catalog) -> list[_Token]:
    out = []
    for raw in WORD.findall(text):
        low = raw.lower().replace("’", "'")
        if low.endswith("'s"):
            low = low[:-2]
        if low not in _known(catalog) and len(low) > 4 and low.endswith("s") and low[:-1] in _known(catalog):
            low = low[:-1]
        out.append(_Token(raw, low))
    return out


def _known(catalog: Catalog) -> set[str]:
    return catalog.names.keys() | catalog.tickers.keys() | catalog.ambiguous.keys()


def _match_words(tokens: list[_Token], catalog: Catalog) -> None:
    """Rules 2 and 3, and marking the ambiguous words (rule 4 decides them)."""
    i = 0
    while i < len(tokens):
        width = _phrase_at(tokens, i, catalog)
        if width:
            symbol = catalog.names[" ".join(t.low for t in tokens[i:i + width])]
            for tok in tokens[i:i + width]:
                tok.coin, tok.how = symbol, "name"
            i += width
            continue
        tok = tokens[i]
        if tok.low in catalog.tickers:
            tok.coin, tok.how = catalog.tickers[tok.low], "ticker"
        elif tok.low in catalog.ambiguous:
            tok.maybe = catalog.ambiguous[tok.low]
        else:
            typo = _typo_of(tok.low, catalog)
            if typo:
                tok.coin, tok.how = typo, "typo"
        i += 1


def _phrase_at(tokens: list[_Token], i: int, catalog: Catalog) -> int:
    for width in range(min(MAX_PHRASE, len(tokens) - i), 0, -1):
        if " ".join(t.low for t in tokens[i:i + width]) in catalog.names:
            return width
    return 0


def _typo_of(word: str, catalog: Catalog) -> str | None:
    if len(word) < MIN_FUZZY or not word.isalpha():
        return None
    for name, symbol in catalog.names.items():
        if len(name) >= MIN_FUZZY and " " not in name and _one_edit(word, name):
            return symbol
    return None


def _one_edit(a: str, b: str) -> bool:
    """True when a and b differ by exactly one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [k for k in range(len(a)) if a[k] != b[k]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    k = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[k:] == long_[k + 1:]


def _shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= SHOUT_MIN_LETTERS and sum(c.isupper() for c in letters) / len(letters) > SHOUT_SHARE


def _resolve_ambiguous(tokens: list[_Token], catalog: Catalog, found: dict[str, str], *, shouting: bool) -> None:
    """Rule 4, repeated until nothing changes: a word resolved by one rule is a neighbour for the list rule."""
    changed = True
    while changed:
        changed = False
        for i, tok in enumerate(tokens):
            if tok.maybe is None or tok.coin or tok.maybe in catalog.strict:
                continue
            how = _evidence(tokens, i, found, shouting)
            if how:
                tok.coin, tok.how = tok.maybe, how
                found.setdefault(tok.coin, how)
                changed = True


def _evidence(tokens: list[_Token], i: int, found: dict[str, str], shouting: bool) -> str | None:
    tok = tokens[i]
    if tok.maybe in found:
        return "named"
    if not shouting and tok.text.isupper() and len(tok.text) > 1:
        return "upper"
    before = [t.low for t in tokens[max(0, i - 2):i]]
    after = tokens[i + 1].low if i + 1 < len(tokens) else ""
    if before and QUANTITY.match(before[-1]):
        return "quantity"
    if any(w in TRADING_BEFORE for w in before) or after in TRADING_AFTER:
        return "trading"
    neighbours = [tokens[k] for k in (i - 2, i - 1, i + 1, i + 2) if 0 <= k < len(tokens)]
    if any(n.coin and n.coin != tok.maybe for n in neighbours):
        return "list"
    return None
