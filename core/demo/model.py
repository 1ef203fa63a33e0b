"""A tiny, randomly initialised Qwen2.5-VL saved to a folder, loadable exactly like the real checkpoint.

Everything the real model path touches is real: the Qwen2.5-VL architecture, Qwen's special tokens and chat
template (the one TRL recognises, so assistant-only loss works), the Qwen2-VL image and video processors.
Only the sizes are tiny, and every quantised linear layer's input is a multiple of 64 so bitsandbytes can load
it in 4-bit on a CPU. The tests, the benches and the console's demo model (`bizsent demo-model`, Eval's `m`) all
build it here; `python -m bizsent.core.demo.model DIR` writes one to a folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bizsent.core.labels import FINETUNE_INSTRUCTION

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]
PIXELS = 56 * 56  # 4x4 patches of 14 px -> 4 image tokens after the 2x2 merge
HIDDEN = 64

# Words the byte-level BPE learns merges for; anything else still tokenizes, byte by byte. The fine-tuning
# instruction is part of the corpus so the tiny model's prompt has about the length it has for Qwen (~75 tokens).
_CORPUS = """
system user assistant you are a helpful classifier of crypto posts from the biz board reply with one word
post text image sentiment label bitcoin btc eth ethereum sol link moon pump dump rekt wagmi ngmi hodl buy sell
up down green red candle chart price market bull bear crash rally lambo poor rich going to zero the it is we
this that what why when sir gm ser anon fren top bottom in out long short stack sats
"""
# Answers start a line (after "<|im_start|>assistant\n"), so they tokenize without a leading space. Qwen2.5's
# vocabulary has "neutral" (id 59568), "bear" (67660), "bull" (42004) and "ish" (812) as tokens but, as far as a
# public dump of its frequent tokens shows, no space-less "bearish" or "bullish" (only " bullish", 89121): so an
# answer is "bear"+"ish", "neutral", "bull"+"ish". The tiny vocabulary learns exactly those pieces and no merge
# that would join them, so generating an answer takes the same number of steps as with the real model.
_ANSWER_PIECES = "\n".join(["bear", "bull", "ish", "neutral"]) + "\n"
LABEL_PIECES = {"bearish": ["bear", "ish"], "neutral": ["neutral"], "bullish": ["bull", "ish"]}
VOCAB = 1000


def build_tokenizer():
    """A byte-level BPE with Qwen's special tokens that splits the label words the way Qwen2.5's does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 20 + [FINETUNE_INSTRUCTION] * 5 + [_ANSWER_PIECES] * 50, trainer=trainer)
    for word, pieces in LABEL_PIECES.items():
        got = tok.encode("\n" + word).tokens[1:]
        if got != pieces:
            raise RuntimeError(f"tiny tokenizer splits {word!r} as {got}, not {pieces}: adjust its corpus")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = _qwen_chat_template()
    return fast


def _qwen_chat_template() -> str:
    # Byte-identical to Qwen2.5-VL-7B-Instruct's template: TRL swaps in its {% generation %} variant for it.
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    return qwen2_5_vl_chat_template


def build_processor(tokenizer):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": PIXELS, "longest_edge": PIXELS}
    image = Qwen2VLImageProcessor(size=size, patch_size=14, merge_size=2, temporal_patch_size=2)
    video = Qwen2VLVideoProcessor(size=size, patch_size=14, merge_size=2, temporal_patch_size=2)
    return Qwen2_5_VLProcessor(
        image_processor=image, tokenizer=tokenizer, video_processor=video, chat_template=tokenizer.chat_template
    )


def build_model(tokenizer, seed: int = 0):
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    vocab = ((len(tokenizer) + 63) // 64) * 64
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab, "hidden_size": HIDDEN, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2, "hidden_size": HIDDEN, "intermediate_size": 128, "num_heads": 4, "out_hidden_size": HIDDEN,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    # A trained output layer spreads logits over several units; the 0.02 init caps every logit near zero (the final
    # norm fixes the hidden state's size), so no LoRA could make the tiny model confident. Give it that scale.
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, HIDDEN**-0.5)
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    return model


# What training the tiny model needs instead of the 7B's settings (docs/training.md, section 2): its pixel budget,
# and a learning rate and batch that move it in a few steps.
DEMO_TRAIN = {"max_pixels": PIXELS, "learning_rate": 0.01, "batch_size": 8, "grad_accum": 1}
DEMO_FOLDER = "demo-model"


def demo_model_dir(data_dir: Path) -> Path:
    """Where the console's demo model lives: beside the store's other data, built once."""
    return Path(data_dir) / DEMO_FOLDER


def ensure_demo_model(folder: Path) -> Path:
    """The tiny model in `folder`, built now unless a complete one is there already."""
    folder = Path(folder)
    if not (folder / "config.json").exists() or not (folder / "preprocessor_config.json").exists():
        build_tiny_qwen(folder)
    return folder


def build_tiny_qwen(out_dir: Path, seed: int = 0) -> Path:
    """Write a complete tiny checkpoint (model, tokenizer, processor, chat template) to `out_dir`."""
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    model = build_model(tokenizer, seed)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":
    print(build_tiny_qwen(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-qwen")))
