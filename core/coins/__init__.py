"""The coins bizsent recognises (floor 4, beside collect; may import floors 0-3, the
store): the list that ships with the package (coins.toml) plus config.toml's
[[coins.extra]] entries, as one `Catalog` the extractor reads (core.coins.extract)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from bizsent.core.config import CoinEntry, CoinsSettings
from bizsent.core.errors import ConfigError

LIST_FILE = Path(__file__).resolve().parent / "coins.toml"
# Bump when the rules of core.coins.extract change, so stored mentions are re-extracted (core.coins.tags).
RULES_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Catalog:
    """Lookups from a lower-case word or phrase to the coin symbol it may mean."""

    names: dict[str, str]  # phrase (one to three words) -> symbol: always this coin
    tickers: dict[str, str]  # word -> symbol: always this coin
    ambiguous: dict[str, str]  # word -> symbol: this coin only with evidence
    strict: frozenset[str]  # symbols whose ambiguous words never count by case or context
    symbols: frozenset[str]
    display: dict[str, str] = field(default_factory=dict)  # symbol -> name
    unlisted_cashtags: bool = True
    version: str = ""

    def cashtag(self, word: str) -> str | None:
        """The symbol a $cashtag means: a listed coin by any of its words, else (if allowed) the tag itself."""
        low = word.lower()
        for table in (self.tickers, self.ambiguous, self.names):
            if low in table:
                return table[low]
        if word.upper() in self.symbols:
            return word.upper()
        return word.upper() if self.unlisted_cashtags else None


@cache
def shipped() -> tuple[CoinEntry, ...]:
    """The maintained list (coins.toml beside this module)."""
    data = tomllib.loads(LIST_FILE.read_text(encoding="utf-8"))
    return tuple(CoinEntry.model_validate(entry) for entry in data["coin"])


def build(entries: list[CoinEntry] | tuple[CoinEntry, ...], *, unlisted_cashtags: bool = True) -> Catalog:
    """One catalog from entries; a later entry with the same symbol replaces an earlier one, and a word two
    coins claim is refused (it would make every later mention a guess)."""
    by_symbol = {e.symbol.upper(): e for e in entries}
    names: dict[str, str] = {}
    tickers: dict[str, str] = {}
    ambiguous: dict[str, str] = {}
    for symbol, entry in by_symbol.items():
        for table, words in ((names, entry.names), (tickers, entry.tickers), (ambiguous, entry.ambiguous)):
            for word in words:
                key = " ".join(word.lower().split())
                owner = names.get(key) or tickers.get(key) or ambiguous.get(key)
                if owner and owner != symbol:
                    raise ConfigError(f"coin word '{key}' is listed for both {owner} and {symbol}; "
                                      "keep it under one coin in [[coins.extra]]")
                table[key] = symbol
    stamp = json.dumps([RULES_VERSION, unlisted_cashtags, [e.model_dump() for e in by_symbol.values()]],
                       sort_keys=True)
    return Catalog(
        names=names, tickers=tickers, ambiguous=ambiguous,
        strict=frozenset(s for s, e in by_symbol.items() if e.strict), symbols=frozenset(by_symbol),
        display={s: e.name for s, e in by_symbol.items()}, unlisted_cashtags=unlisted_cashtags,
        version=hashlib.sha256(stamp.encode()).hexdigest()[:12],
    )


def catalog(settings: CoinsSettings) -> Catalog:
    """The shipped list extended (or overridden, symbol by symbol) by config.toml's [[coins.extra]]."""
    return build([*shipped(), *settings.extra], unlisted_cashtags=settings.unlisted_cashtags)
