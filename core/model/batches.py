"""The sequence lengths of a bundle's training posts, and the batches they make: what core.model.memory estimates
the typical and the longest training batch (and a scoring batch) from, instead of one assumed post length.

Nothing is truncated (train.max_length is None), so a batch is as long as its longest post: its text tokens
(the chat template's system prompt, the post, the answer) plus its image's tokens. The image tokens follow the
processor's own resize (Qwen2-VL's smart_resize: sides rounded to 28 px within the pixel budget, one token per
28 x 28 after the 2x2 merge) from the bundle image's size. Text tokens come from the base model's tokenizer when
it is on this machine, else from a characters-per-token rule, and the estimate says which.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bizsent.core.model.memory import BatchShape, ModelShape
from PIL import Image

# Qwen2.5's BPE on /biz/ English with its slang and tickers: about 3.5 characters a token (an estimate, used only
# when the tokenizer is not on this machine; the dry run says so).
CHARS_PER_TOKEN = 3.5
TEMPLATE_TOKENS = 20  # <|im_start|>system ... <|vision_start|><|vision_end|> ... markup around the contents
MIN_PIXELS = 56 * 56


@dataclass(frozen=True, slots=True)
class PostLength:
    text: int  # text tokens of the whole training example
    image: int  # image tokens after the 2x2 merge
    patches: int  # vision-tower patches (4 per image token)


def resized(width: int, height: int, max_pixels: int, min_pixels: int = MIN_PIXELS, factor: int = 28
            ) -> tuple[int, int]:
    """The size Qwen2-VL's image processor resizes an image to (transformers' smart_resize)."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return w, h


def text_counter(base_model: str) -> tuple[Callable[[list[dict]], int], str]:
    """(count the text tokens of an example's messages, how): the base model's tokenizer and chat template when
    they load from disk, else characters / CHARS_PER_TOKEN plus the template's markup."""
    from bizsent.core.model.modeling import model_here

    if model_here(base_model):
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(base_model)

            def count(messages: list[dict]) -> int:
                return len(tok.apply_chat_template(messages, tokenize=True, return_dict=False))

            count([{"role": "user", "content": "gm"}])
            return count, f"text tokens counted with {base_model}'s tokenizer"
        except Exception:  # no tokenizer files, or no transformers here: the rule below still gives an estimate
            pass

    def approx(messages: list[dict]) -> int:
        return TEMPLATE_TOKENS + math.ceil(sum(len(str(m["content"])) for m in messages) / CHARS_PER_TOKEN)

    return approx, f"text tokens approximated at {CHARS_PER_TOKEN} characters a token (tokenizer not on disk)"


def bundle_lengths(bundle: Path, max_pixels: int, count_text: Callable[[list[dict]], int],
                   shape: ModelShape, split: str = "train") -> list[PostLength]:
    from bizsent.core.model.dataset import read_split

    out = []
    unit = shape.patch * shape.merge
    for row in read_split(bundle, split):
        with Image.open(Path(bundle) / row["images"][0]) as img:
            w, h = resized(img.width, img.height, max_pixels, factor=unit)
        image = (w // unit) * (h // unit)
        out.append(PostLength(count_text(row["messages"]), image, image * shape.merge**2))
    return out


def _batch(what: str, group: list[PostLength]) -> BatchShape:
    longest = max(group, key=lambda p: p.text + p.image)
    return BatchShape(what, len(group), longest.text + longest.image, sum(p.patches for p in group), longest.text)


def typical_and_longest_posts(lengths: list[PostLength], rows: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Positions in `lengths` of the posts of the median batch of a shuffled epoch (by padded length) and of the
    `rows` longest posts (bench/gpu.py trains on exactly these batches)."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    groups = [order[k:k + rows] for k in range(0, len(order), rows)]
    full = [g for g in groups if len(g) == rows] or groups

    def padded(group: list[int]) -> tuple[int, int]:
        shape = _batch("", [lengths[k] for k in group])
        return shape.seq, shape.patches

    typical = sorted(full, key=padded)[len(full) // 2]
    longest = sorted(range(len(lengths)), key=lambda k: lengths[k].text + lengths[k].image)[-rows:]
    return typical, longest


def typical_and_longest(lengths: list[PostLength], rows: int, seed: int = 0) -> tuple[BatchShape, BatchShape]:
    """The median batch of a shuffled epoch (by padded length) and the `rows` longest posts in one batch."""
    typical, longest = typical_and_longest_posts(lengths, rows, seed)
    return (_batch("typical batch", [lengths[k] for k in typical]),
            _batch("longest batch", [lengths[k] for k in longest]))


def length_summary(lengths: list[PostLength]) -> str:
    totals = [p.text + p.image for p in lengths]
    return (f"{len(lengths)} training posts: median {statistics.median(totals):.0f} tokens, longest {max(totals)} "
            f"(text {statistics.median(p.text for p in lengths):.0f} / image "
            f"{statistics.median(p.image for p in lengths):.0f} median)")


def dry_run(cfg, *, bundle: Path | None = None, text_tokens: int = 256) -> str:
    """What `bizsent train --dry-run` prints: training at the typical and the longest batch and a pool-scoring
    batch at train.batch_size, from the bundle's real token counts (without one: `text_tokens` posts at the full
    pixel budget)."""
    from bizsent.core.model.memory import (
        estimate_scoring_memory,
        estimate_training_memory,
        full_budget_batch,
        render_columns,
        shape_for,
    )

    shape, source = shape_for(cfg.base_model)
    notes: list[str] = []
    if bundle is not None:
        count, how = text_counter(cfg.base_model)
        lengths = bundle_lengths(Path(bundle), cfg.max_pixels, count, shape)
        typical, longest = typical_and_longest(lengths, cfg.batch_size, cfg.seed)
        notes += [length_summary(lengths), how]
    else:
        typical = longest = full_budget_batch(cfg, shape, text_tokens)
        notes.append(f"no --bundle: every post taken as {text_tokens} text tokens with an image at the full budget;"
                     " pass --bundle DIR for the typical and longest batch of real posts")
    # pool posts are originals downscaled to the same budget: the longest batch's text with a full-budget image
    scoring = full_budget_batch(cfg, shape, longest.text, what="scoring batch")
    batches = [typical, longest] if bundle is not None else [typical]
    columns = [(f"train, {b.what} ({b.seq} tok)", estimate_training_memory(cfg, shape, batch=b)) for b in batches]
    columns.append((f"pool scoring ({scoring.seq} tok)", estimate_scoring_memory(cfg, shape, batch=scoring)))
    return render_columns(columns, source, tuple(notes))
