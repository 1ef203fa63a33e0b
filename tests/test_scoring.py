"""Label-token scoring, the generate-and-parse comparison path, evaluation reports and the zero-shot row."""

from __future__ import annotations

import json

import pytest
import torch
from bizsent.core.evaluate.report import evaluate_run, render_table, zero_shot_run
from bizsent.core.model.chat_format import render_prompt
from bizsent.core.model.dataset import read_split
from bizsent.core.model.events import run_events
from bizsent.core.model.modeling import load_model, load_processor
from bizsent.core.model.scoring import (
    ScoreInput,
    generate_and_parse,
    label_token_counts,
    label_token_ids,
    parse_answer,
    score,
)
from bizsent.core.model.training import BundleCollator, score_inputs
from bizsent.core.store import open_db


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(model_dir, load_in_4bit=False), load_processor(model_dir, 56 * 56)


def _items(run, n=5):
    return score_inputs(run["bundle"], read_split(run["bundle"], "test")[:n])


def test_probabilities_are_valid_and_batching_changes_nothing(loaded, run):
    model, processor = loaded
    items = _items(run)
    batched = score(model, processor, items, batch_size=5, embeddings=True)
    single = score(model, processor, items, batch_size=1)
    for b, s in zip(batched, single, strict=True):
        assert set(b.probs) == {"bearish", "neutral", "bullish"}
        assert sum(b.probs.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0 < p < 1 for p in b.probs.values())
        assert b.label == max(b.probs, key=b.probs.get)
        assert b.probs == pytest.approx(s.probs, abs=1e-4)  # left padding keeps the answer position right
        assert len(b.embedding) == 64


def test_label_tokens_are_distinct_and_the_prompt_is_the_training_prefix(loaded, run):
    model, processor = loaded
    ids = label_token_ids(processor.tokenizer)
    assert len(set(ids)) == 3
    row = read_split(run["bundle"], "train")[0]
    batch = BundleCollator(processor, run["bundle"])([row])
    prompt = processor.tokenizer(render_prompt(processor, row["text"], row.get("subject", "")),
                                 add_special_tokens=False)["input_ids"]
    # the image placeholder expands to image tokens in the collated batch; compare the text around it
    trained = batch["input_ids"][0].tolist()
    answer_at = next(j for j, lab in enumerate(batch["labels"][0].tolist()) if lab != -100)
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert [t for t in trained[:answer_at] if t != pad] == [t for t in prompt if t != pad]
    assert trained[answer_at] == ids[["bearish", "neutral", "bullish"].index(row["label"])]
    # the whole answer is supervised, every piece of a multi-token label word and the end of the turn
    supervised = [t for t in batch["labels"][0].tolist() if t != -100]
    tokenizer = processor.tokenizer
    assert tokenizer.decode(supervised, skip_special_tokens=True).strip() == row["label"]
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in supervised


def test_label_words_split_like_qwen_and_keep_distinct_first_tokens(loaded):
    tokenizer = loaded[1].tokenizer
    assert label_token_counts(tokenizer) == {"bearish": 2, "neutral": 1, "bullish": 2}
    assert tokenizer.convert_ids_to_tokens(label_token_ids(tokenizer)) == ["bear", "neutral", "bull"]


def test_generate_and_parse_is_only_a_comparison_path(loaded, run):
    model, processor = loaded
    labels = generate_and_parse(model, processor, _items(run, 3), batch_size=3)
    assert len(labels) == 3 and all(lab in (None, "bearish", "neutral", "bullish") for lab in labels)
    assert parse_answer("Bullish.") == "bullish" and parse_answer("I think it is bearish, ser") == "bearish"
    assert parse_answer("unbearable") is None


def test_evaluate_run_writes_predictions_event_and_report(run):
    settings = run["settings"]
    db = open_db(settings.db_path)
    before = db.execute("SELECT coalesce(max(id), 0) FROM metrics").fetchone()[0]
    report, md, js = evaluate_run(db, settings, run["run_id"], split="test", batch_size=3)
    assert report.model.n == 9 and sum(map(sum, report.model.confusion)) == 9
    # Three live events (one a batch) came and went; the final event is stored after them, so a reader going on
    # from the last id it read (`bizsent pods logs`, the Eval screen) sees it: SQLite would hand a row stored
    # after their deletion one of their ids.
    final = db.execute("SELECT max(id) FROM metrics WHERE run_id = ? AND kind = 'eval'", [run["run_id"]]).fetchone()[0]
    assert final > before + 3
    assert report.model.accuracy_ci[0] <= report.model.accuracy <= report.model.accuracy_ci[1]
    assert "sarcastic" in report.model.slices
    names = {b.name: b for b in report.baselines}
    assert names["VADER (text only)"].kind == "live" and names["VADER (text only)"].n == 9
    assert names["CryptoBERT"].kind == "published" and round(100 * names["CryptoBERT"].accuracy, 1) == 39.3
    assert {"CryptoBERT+VADER ensemble", "agree/confidence rule"} <= set(names)
    assert not any(b.kind == "store" for b in report.baselines)  # the seeded API labels are not on test posts
    assert db.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [run["run_id"]]).fetchone()[0] == 9
    tests = [e for e in run_events(db, run["run_id"], "eval") if e.data.get("split") == "test"]
    assert tests and tests[-1].accuracy == report.model.accuracy
    assert "| tiny-qlora | model | 9 |" in md.read_text()
    assert json.loads(js.read_text())["model"]["confusion"] == report.model.confusion
    assert render_table(report).row_count == len(report.baselines) + 1 + len(report.model.slices)


def test_zero_shot_run_and_api_labelers_from_the_store(run):
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    settings = run["settings"]
    db = open_db(settings.db_path)
    test_ids = run["ids"]["test"]
    truth = {r["post_id"]: r["label"] for r in read_split(run["bundle"], "test")}
    for k, pid in enumerate(test_ids[:4]):  # right on three posts, wrong on one
        wrong = "neutral" if truth[pid] != "neutral" else "bullish"
        set_label(db, pid, NewLabel(label=truth[pid] if k else wrong, source="api", labeler="openai:gpt@p1"))
    run_id = zero_shot_run(db, settings, run["bundle"])
    report, _, _ = evaluate_run(db, settings, run_id, split="test")
    api = next(b for b in report.baselines if b.kind == "store")
    assert api.name == "openai:gpt@p1" and api.n == 4 and api.accuracy == pytest.approx(0.75)
    assert db.execute("SELECT adapter_path FROM runs WHERE id = ?", [run_id]).fetchone()[0] is None
    assert report.info["scoring"].startswith("label sequences")  # the untuned model: every spelling counts


def test_missing_base_model_is_a_one_line_error(tmp_path):
    from bizsent.core.errors import BizsentError

    with pytest.raises(BizsentError, match="does not exist"):
        load_model(tmp_path / "nope", load_in_4bit=False)
    with pytest.raises(BizsentError, match="no config.json"):
        load_processor(tmp_path, 56 * 56)
    assert ScoreInput(1, "x", "y").subject == ""


def _cli(settings, *args):
    from bizsent.cli import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, ["--config", str(settings.source), *args])


def test_predict_file_scores_posts_outside_the_store(run, loaded, tmp_path):
    import shutil

    from bizsent.core.model.modeling import load_model

    rows = read_split(run["bundle"], "test")[:2]
    shutil.copy(run["bundle"] / rows[0]["images"][0], tmp_path / "a.jpg")
    lines = [{"text": rows[0]["text"], "image_path": "a.jpg"},  # relative to the JSONL's folder
             {"text": rows[1]["text"], "image_path": str(run["bundle"] / rows[1]["images"][0])}]
    (tmp_path / "posts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "\n", encoding="utf-8")
    result = _cli(run["settings"], "predict", "--file", str(tmp_path / "posts.jsonl"), "--run", str(run["run_id"]))
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["image_path"] for o in out] == [str(tmp_path / "a.jpg"), lines[1]["image_path"]]
    model = load_model(run["settings"].train.base_model, load_in_4bit=True, adapter=run["result"].adapter_dir,
                       quantize_vision=False)  # the run's recipe: the vision tower stays out of 4-bit
    inputs = [ScoreInput(None, x["text"], o["image_path"]) for x, o in zip(lines, out, strict=True)]
    expected = score(model, loaded[1], inputs)
    for o, e in zip(out, expected, strict=True):
        assert o["label"] == e.label and o["probs"] == pytest.approx(e.probs, abs=1e-4)
    single = _cli(run["settings"], "predict", "--file", str(tmp_path / "a.jpg"), "--text", rows[0]["text"])
    assert single.exit_code == 0 and json.loads(single.stdout)["probs"] == pytest.approx(out[0]["probs"], abs=1e-4)


def test_predict_file_errors_are_one_line(run, tmp_path):
    from bizsent.core.errors import BizsentError

    image = run["bundle"] / read_split(run["bundle"], "test")[0]["images"][0]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "gm", "image_path": str(image)}) + "\n{oops\n")
    (tmp_path / "gone.jsonl").write_text(json.dumps({"text": "gm", "image_path": "nope.png"}) + "\n")
    (tmp_path / "fake.png").write_text("not an image")
    cases = {
        ("--file", str(image)): "--text",
        ("--file", str(tmp_path / "bad.jsonl")): "line 2 is not JSON",
        ("--file", str(tmp_path / "gone.jsonl")): "does not exist",
        ("--file", str(tmp_path / "fake.png"), "--text", "gm"): "not a readable image",
        ("--file", str(tmp_path / "missing.jsonl")): "does not exist",
        (): "either a POST_ID or --file",
    }
    for args, message in cases.items():
        result = _cli(run["settings"], "predict", *args)
        assert isinstance(result.exception, BizsentError), (args, result.output)
        assert message in str(result.exception) and "\n" not in str(result.exception)


class _Answers(torch.nn.Module):
    """The tiny model, made to answer one token sequence: after the assistant prefix, and after each of its tokens,
    the next one gets a large logit (an untuned model that answers "Bearish" rather than "bearish")."""

    def __init__(self, model, answer: list[int], prefix_last: int):
        super().__init__()
        self.model, self.next = model, {prefix_last: answer[0], **dict(zip(answer, answer[1:], strict=False))}

    def forward(self, **kwargs):
        out = self.model(**kwargs)
        last = kwargs["input_ids"][:, -1].tolist()
        for row, tok in enumerate(last):
            if tok in self.next:
                out.logits[row, -1, self.next[tok]] += 30.0
        return out


def test_zero_shot_counts_every_spelling_of_a_label(loaded, run):
    from bizsent.core.model.scoring import ANSWER_PREFIX, label_variants

    model, processor = loaded
    tok = processor.tokenizer
    variants = label_variants(tok)
    capital = tok(ANSWER_PREFIX + "Bearish", add_special_tokens=False)["input_ids"][len(
        tok(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]):]
    assert tok.convert_ids_to_tokens(capital) == ["B", "ear", "ish"] and tuple(capital) in variants["bearish"]
    assert all(len(v) >= 4 for v in variants.values())  # lower, Capitalised, UPPER, leading space
    # "B" starts both "Bearish" and "Bullish" here: only whole sequences tell them apart
    assert any(seq[0] == capital[0] for seq in variants["bullish"])
    answering = _Answers(model, capital, tok(ANSWER_PREFIX, add_special_tokens=False)["input_ids"][-1])
    items = _items(run, 2)
    zero_shot = score(answering, processor, items, sequences=True)
    assert all(s.label == "bearish" and s.probs["bearish"] > 0.99 for s in zero_shot)
    assert all(s.label_mass > 0.9 for s in zero_shot)  # nearly all its answer is a label word
    first_token = score(answering, processor, items)  # the fine-tuned path reads lowercase first tokens only
    assert all(s.probs["bearish"] < 0.9 for s in first_token)


def test_embedding_is_the_answer_position_hidden_state(loaded, run):
    from bizsent.core.model.scoring import encode_prompts

    model, processor = loaded
    items = _items(run, 3)
    batched = score(model, processor, items, batch_size=3, embeddings=True)
    for item, s in zip(items, batched, strict=True):
        with torch.no_grad():
            out = model(**encode_prompts(processor, [item], "cpu"), output_hidden_states=True)
        assert s.embedding == pytest.approx(out.hidden_states[-1][0, -1].numpy(), abs=1e-4)


def test_store_images_get_the_bundle_preprocessing(loaded, run):
    """A post scored from the store (its original PNG) sees the pixels training saw (the bundle's JPEG)."""
    from bizsent.core.model.scoring import encode_prompts

    processor = loaded[1]
    row = read_split(run["bundle"], "test")[0]
    db = open_db(run["settings"].db_path)
    original = db.execute("SELECT i.path FROM posts p JOIN images i ON i.id = p.image_id WHERE p.id = ?",
                          [row["post_id"]]).fetchone()[0]
    assert original.endswith(".png")
    from_store = encode_prompts(processor, [ScoreInput(row["post_id"], row["text"], original)], "cpu")
    from_bundle = encode_prompts(processor, score_inputs(run["bundle"], [row]), "cpu")
    assert torch.equal(from_store["pixel_values"], from_bundle["pixel_values"])


def test_an_adapter_from_another_prompt_version_is_refused_at_load(run, tmp_path):
    import shutil

    from bizsent.core.errors import BizsentError
    from bizsent.core.labels import PROMPT_VERSION
    from bizsent.core.model.loading import load_for_run, run_row

    settings = run["settings"]
    db = open_db(settings.db_path)
    info = run_row(db, run["run_id"])
    adapter = tmp_path / "adapter"
    shutil.copytree(info["adapter_path"], adapter)
    meta = json.loads((adapter / "bizsent.json").read_text())
    (adapter / "bizsent.json").write_text(json.dumps({**meta, "prompt_version": "p0"}))
    with pytest.raises(BizsentError) as err:
        load_for_run({**info, "adapter_path": str(adapter)}, settings)
    message = str(err.value)
    assert "p0" in message and PROMPT_VERSION in message and "retrain" in message and "\n" not in message
    (adapter / "bizsent.json").write_text(json.dumps({**meta, "label_token_ids": [1, 2, 3]}))
    with pytest.raises(BizsentError, match="label tokens"):
        load_for_run({**info, "adapter_path": str(adapter)}, settings)
    (adapter / "bizsent.json").write_text(json.dumps(meta))
    assert load_for_run({**info, "adapter_path": str(adapter)}, settings)[0] is not None


def _full_pass_probs(model, processor, items):
    """The reference: every variant prefix forwarded with the whole prompt and image again (no cache)."""
    from bizsent.core.labels import LABELS
    from bizsent.core.model.modeling import model_device
    from bizsent.core.model.scoring import encode_prompts, label_variants

    variants = label_variants(processor.tokenizer)
    batch = encode_prompts(processor, items, model_device(model))
    with torch.no_grad():
        def logp(pre):
            out = dict(batch)
            if pre:
                extra = torch.tensor(pre).expand(len(items), len(pre))
                out["input_ids"] = torch.cat([batch["input_ids"], extra], dim=1)
                out["attention_mask"] = torch.cat([batch["attention_mask"], torch.ones_like(extra)], dim=1)
                if "mm_token_type_ids" in batch:
                    out["mm_token_type_ids"] = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
            return torch.log_softmax(model(**out, logits_to_keep=1).logits[:, -1].float(), dim=-1)

        table = {seq[:k]: logp(seq[:k]) for seqs in variants.values() for seq in seqs for k in range(len(seq))}
        joint = torch.stack([torch.logsumexp(torch.stack([sum(table[seq[:k]][:, t] for k, t in enumerate(seq))
                                                           for seq in variants[w]], dim=-1), dim=-1)
                             for w in LABELS], dim=-1)
    return torch.softmax(joint, dim=-1)


def test_zero_shot_sequences_share_the_prompts_kv_cache(loaded, run):
    from bizsent.core.model.scoring import label_variants

    model, processor = loaded
    items = _items(run, 3)
    prompt_len = []
    real = model.forward

    def counting(*args, **kwargs):
        prompt_len.append(kwargs["input_ids"].shape[1])
        return real(*args, **kwargs)

    model.forward = counting
    try:
        scored = score(model, processor, items, batch_size=3, sequences=True)
    finally:
        del model.forward
    full = max(prompt_len)
    assert prompt_len.count(full) == 1 and len(prompt_len) > 5  # the prompt once; each prefix its own few tokens
    longest = max(len(seq) for seqs in label_variants(processor.tokenizer).values() for seq in seqs)
    assert max(n for n in prompt_len if n != full) < longest < full / 4
    reference = _full_pass_probs(model, processor, items)
    for row, s in enumerate(scored):
        assert [s.probs[k] for k in ("bearish", "neutral", "bullish")] == pytest.approx(reference[row].tolist(),
                                                                                        abs=1e-4)


def test_a_bf16_model_readied_for_4bit_training_scores_outside_autocast(model_dir, tmp_path):
    """On CUDA the 7B trains in bf16 and prepare_kbit puts its norms in fp32; scoring that model outside the
    trainer's autocast (validation during training, self-training) failed with "self and mat2 must have the same
    dtype". A bf16 model on the CPU takes the same path."""
    from bizsent.core.config import TrainSettings
    from bizsent.core.model.training import prepare_lora
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.bfloat16)
    model = prepare_lora(model, TrainSettings(base_model=str(model_dir), max_pixels=56 * 56), quantized=True)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16, torch.float32}  # the mix prepare_kbit leaves
    image = tmp_path / "post.jpg"
    Image.new("RGB", (56, 56), (200, 30, 30)).save(image)
    items = [ScoreInput(None, "wagmi to the moon", str(image), prepared=True)] * 2
    for scored in score(model, load_processor(model_dir, 56 * 56), items, batch_size=2, embeddings=True):
        assert sum(scored.probs.values()) == pytest.approx(1.0, abs=1e-3)
        assert len(scored.embedding) == 64
