"""One source for the prompt: the API labelers and the fine-tuned model read the same rules, under one version."""

from __future__ import annotations

from bizsent.core.labels import (
    FINETUNE_INSTRUCTION,
    GUIDANCE,
    LABEL_DEFINITIONS,
    LABEL_RULES,
    PROMPT_RULES,
    TASK_RULES,
    LabelAnswer,
)
from bizsent.core.model.chat_format import prompt_messages, training_messages


def test_both_prompts_share_the_rules_and_differ_only_in_the_answer_tail():
    assert LABEL_RULES.startswith(TASK_RULES) and PROMPT_RULES.startswith(LABEL_RULES + "\n\n")
    assert FINETUNE_INSTRUCTION.startswith(TASK_RULES + "\n")
    api_tail = PROMPT_RULES.removeprefix(LABEL_RULES)
    finetune_tail = FINETUNE_INSTRUCTION.removeprefix(TASK_RULES)
    assert all(f'"{name}"' in api_tail for name in LabelAnswer.model_fields)  # the JSON the schema checks
    assert "JSON" not in finetune_tail and "confidence" not in finetune_tail
    assert finetune_tail.strip() == "Answer with exactly one word: bearish, neutral or bullish."
    # the API prompt holds every piece of the rules, the definitions the fine-tuned model learns from labels too
    assert all(piece in PROMPT_RULES for piece in (TASK_RULES, LABEL_DEFINITIONS, GUIDANCE))


def test_the_finetuning_format_uses_the_shared_instruction():
    system, user = prompt_messages("wagmi", subject="gm")
    assert system == {"role": "system", "content": FINETUNE_INSTRUCTION}
    assert user["content"] == "Subject: gm\n\nwagmi"
    assert training_messages("wagmi", "bullish")[-1] == {"role": "assistant", "content": "bullish"}


def test_the_prompt_has_no_base_rate_and_follows_the_labeling_guide():
    """Issue 10.3: "Expect roughly half of /biz/ to be bearish" biased the labelers (the user's own hand labels
    are 34% bearish). The rules text carries no base rate, under a new prompt version, and every rule of the
    labeling guide (tui/labeling_rules.md)."""
    import re

    from bizsent.core.labels import PROMPT_VERSION

    assert PROMPT_VERSION not in ("p1", "p2")
    for prompt in (PROMPT_RULES, FINETUNE_INSTRUCTION):
        lowered = prompt.lower()
        assert "expect" not in lowered and "half" not in lowered and "%" not in prompt
        assert not re.search(r"\b(most|majority|percent|base rate|usually bearish|roughly)\b", lowered)
        assert not re.search(r"\d+\s*(%|percent|of /biz/)", lowered)
    rules = " ".join(PROMPT_RULES.lower().split())
    for rule in (
        "judge the image and the text together, including any text written on the image",
        "not single words",
        "pink wojak", "green wojak", "bogdanoff",
        "/smg/, /pmg/, /xsg/", "neutral unless the post itself takes a side",
        "an ironic \"wagmi\" during a crash is bearish", "greentext is often ironic",
        "when the image contradicts the text, the image usually carries the real meaning",
        "genuinely mixed or unsure: neutral",
        "the same way every time",  # between two ratings, always lean the same way
        "never aim for a class balance",
        "broken or missing image, unreadable text, spam or corrupt data",  # the skip rules
        "ngmi", "exit liquidity", "lfg", "up only", "unironically", "any day now",
    ):
        assert rule in rules, rule


def test_the_guides_carry_no_base_rate_either():
    from pathlib import Path

    # the Label screen's help (`?`) shows the user's guide
    text = (Path(__file__).resolve().parents[1] / "tui" / "labeling_rules.md").read_text(encoding="utf-8").lower()
    assert "expect roughly half" not in text and "never aim for a class balance" in text
