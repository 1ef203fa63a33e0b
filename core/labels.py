"""The label set: the one place that says which sentiment classes exist and how they are spelled."""

from typing import Literal

Label = Literal["bearish", "neutral", "bullish"]
LABELS: tuple[Label, ...] = ("bearish", "neutral", "bullish")

# The user's scraper stored ratings as 1/2/3; keys 1/2/3 in the console follow the same order.
RATING_TO_LABEL: dict[int, Label] = {1: "bearish", 2: "neutral", 3: "bullish"}
LABEL_TO_RATING: dict[Label, int] = {v: k for k, v in RATING_TO_LABEL.items()}

SOURCES = ("human", "openai", "gemini", "compatible", "model", "pseudo")
SPLITS = ("test", "train", "val", "unassigned")


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
