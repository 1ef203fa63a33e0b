"""The one message builder for fine-tuning and scoring: system instruction, user = image + post text,
assistant = the label word. Training examples and scoring prompts come from the same function, so the
tokens the model sees at prediction time are exactly the prefix it was trained on. The instruction itself and
its version live in core.labels, next to the API labelers' prompt built from the same rules.
"""

from __future__ import annotations

from typing import Any

from bizsent.core.collect.html_text import clean_text
from bizsent.core.errors import BizsentError
from bizsent.core.labels import FINETUNE_INSTRUCTION, Label, post_text

NO_TEXT = ("the post has no text; bizsent's model is trained and scored on posts with an image and text (image-only "
           "posts are left out of training, evaluation and the pool alike)")


def input_text(raw: str) -> str:
    """A post's text as the model gets it, from the store or from outside (`predict --file`, the serverless
    worker): cleaned as the store cleans a 4chan comment (HTML tags out, entities decoded, core.collect.html_text),
    and never empty, as training's candidates never are (core.store.posts.CANDIDATE_SQL)."""
    text = clean_text(raw)
    if not text:
        raise BizsentError(NO_TEXT)
    return text


def prompt_messages(text: str, subject: str = "") -> list[dict[str, Any]]:
    """System and user turns in TRL's plain form (string contents); the image is inserted before the text."""
    return [
        {"role": "system", "content": FINETUNE_INSTRUCTION},
        {"role": "user", "content": post_text(subject, text)},
    ]


def training_messages(text: str, label: Label, subject: str = "") -> list[dict[str, Any]]:
    return [*prompt_messages(text, subject), {"role": "assistant", "content": label}]


def with_image(messages: list[dict[str, Any]], image: Any = None) -> list[dict[str, Any]]:
    """Structured contents as the processor's chat template wants them: one image block before the user text.

    Same placement as TRL's prepare_multimodal_messages, which builds the training batches.
    """
    out = []
    for message in messages:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": message["content"]}]
        if message["role"] == "user":
            blocks.insert(0, {"type": "image", "image": image} if image is not None else {"type": "image"})
        out.append({"role": message["role"], "content": blocks})
    return out


def render_prompt(processor: Any, text: str, subject: str = "") -> str:
    """The scoring prompt as a string, ending at the answer position (after the assistant prefix)."""
    return processor.apply_chat_template(with_image(prompt_messages(text, subject)), add_generation_prompt=True,
                                         tokenize=False)
