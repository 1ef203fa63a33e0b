"""One source for the prompt: the API labelers and the fine-tuned model read the same rules, under one version."""

from __future__ import annotations

from core.chat_format import prompt_messages, training_messages
from core.labels import (
    FINETUNE_INSTRUCTION,
    GUIDANCE,
    LABEL_DEFINITIONS,
    LABEL_RULES,
    PROMPT_RULES,
    TASK_RULES,
    LabelAnswer,
)


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
