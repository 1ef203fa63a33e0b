"""Coin mentions: the rules of core.coins.extract on /biz/-style text, the list in config, the store pass."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bizsent.core.coins import build, catalog, shipped
from bizsent.core.coins.extract import mentions
from bizsent.core.coins.tags import coins_of, tag_posts, top_coins
from bizsent.core.config import CoinEntry, CoinsSettings, Settings, load_settings
from bizsent.core.errors import ConfigError
from bizsent.core.store.posts import save_posts
from bizsent.core.store.records import NewPost

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import coins as coin_bench  # noqa: E402  (bench/coins.py: the labelled set and its scoring)

CAT = catalog(CoinsSettings())


def found(text: str) -> dict[str, str]:
    return {m.coin: m.how for m in mentions(text, CAT)}


@pytest.mark.parametrize(("text", "expected"), [
    ("$LINK to the moon, also $FOOBAR", {"LINK": "cashtag", "FOOBAR": "cashtag"}),
    ("bitcoin cash is a scam", {"BCH": "name"}),  # the longest phrase wins: not BTC as well
    ("etheruem is dead", {"ETH": "typo"}),  # not a listed misspelling: one swap away
    ("chianlink is the future", {"LINK": "typo"}),  # two neighbours swapped
    ("bitcoins will be worth millions", {"BTC": "name"}),  # plural of a listed name
    ("xmr delisted again", {"XMR": "ticker"}),
    ("LINK 1000 EOY", {"LINK": "upper"}),
    ("10k link and chill", {"LINK": "quantity"}),
    ("1.5k ada staked since 2021", {"ADA": "quantity"}),
    ("sell your link before it's too late", {"LINK": "trading"}),
    ("sol price is manipulated", {"SOL": "trading"}),
    ("chainlink staking is live, my link is staked", {"LINK": "name"}),
    ("btc, sol, ada. that's the portfolio", {"BTC": "ticker", "SOL": "list", "ADA": "list"}),
    ("$OP airdrop season", {"OP": "cashtag"}),
])
def test_each_rule_finds_what_it_should(text: str, expected: dict[str, str]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    "click the link in my bio",
    ">>51234567\nthanks anon, here's the link to the article",
    "i love ada, my daughter",
    "hola, el sol está muy fuerte hoy",
    "one day I'll make it",
    "OP here, I was right",  # OP is strict: not even in capitals
    "near the bottom now, time to accumulate",
    "ONE MORE TIME I SAY NO WAY",
    "THIS IS THE LINK YOU WANTED, CLICK IT",  # capitals in a shouting post are no evidence
    "$100 in my account, what do I buy",  # a price, not a cashtag
    "took my dog to the vet, $400",
    "that is an apt comparison",
    "dropped out of uni to trade crypto",
])
def test_ambiguous_words_without_evidence_are_not_coins(text: str) -> None:
    assert found(text) == {}


def test_the_labelled_set_has_200_posts_and_the_rules_keep_their_measured_quality() -> None:
    result = coin_bench.score(coin_bench.labelled())
    assert result["posts"] >= 200
    # bench/coins.py prints the figures; these floors catch a rule change that breaks many posts at once.
    assert result["precision"] >= 0.9 and result["recall"] >= 0.85, result["errors"]


def test_config_adds_a_coin_and_refuses_a_word_two_coins_claim(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[coins.extra]]\nsymbol = "BIZ"\nname = "Bizcoin"\nnames = ["bizcoin"]\n'
                   'ambiguous = ["biz"]\n', encoding="utf-8")
    cat = catalog(load_settings(cfg, environ={}).coins)
    assert {m.coin for m in mentions("bizcoin and 10k biz, also eth", cat)} == {"BIZ", "ETH"}
    assert cat.version != CAT.version  # a changed list re-reads the stored posts
    clash = CoinEntry(symbol="CHAIN", name="Chain", names=["chainlink"])
    with pytest.raises(ConfigError, match="'chainlink' is listed for both LINK and CHAIN"):
        build([*shipped(), clash])


def test_tagging_stores_mentions_per_post_and_rereads_after_a_list_change(db, settings: Settings) -> None:
    save_posts(db, [NewPost("biz", 1, 1, "sell your link now"), NewPost("biz", 1, 2, "btc and eth only"),
                    NewPost("biz", 1, 3, "wagmi", subject="Solana general")])
    first = tag_posts(db, catalog(settings.coins))
    assert (first.posts, first.mentions) == (3, 4)
    assert coins_of(db, 1) == {"LINK": "trading"} and coins_of(db, 3) == {"SOL": "name"}
    assert tag_posts(db, catalog(settings.coins)).posts == 0  # nothing new: nothing read again
    save_posts(db, [NewPost("biz", 1, 4, "wagmi bizcoin")])
    settings.coins.extra = [CoinEntry(symbol="BIZ", name="Bizcoin", names=["bizcoin"])]
    again = tag_posts(db, catalog(settings.coins))
    assert again.posts == 4 and coins_of(db, 4) == {"BIZ": "name"}
    assert dict(top_coins(db)) == {"BIZ": 1, "BTC": 1, "ETH": 1, "LINK": 1, "SOL": 1}
