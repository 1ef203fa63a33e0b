"""The run report: the model's metrics on a human split next to the baselines and the API labelers, as a Rich
table for the terminal and Markdown + JSON files next to the run.

Everyday model choice is made on the human dev split (core.model.dataset); the test split is scored only on
request (`bizsent eval RUN --test`), and every report says how large dev and test are, how the test posts were
sampled and how many times this test set has been scored, by which runs: a test set looked at after every run
stops being a test set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError
from bizsent.core.evaluate.baselines import (
    Baseline,
    api_labeler_baselines,
    cryptobert_baseline,
    published_baselines,
    vader_baseline,
)
from bizsent.core.evaluate.metrics import Metrics, evaluate
from bizsent.core.evaluate.result import Report
from bizsent.core.evaluate.tables import HEADERS, rows
from bizsent.core.labels import LABELS
from bizsent.core.model.events import MetricEvent, record
from bizsent.core.model.loading import load_for_run, run_row
from bizsent.core.model.scoring import Scored, write_predictions
from bizsent.core.store.posts import HUMAN_TEST

SPLITS = ("dev", "test")


def post_sources(db: sqlite_utils.Database, post_ids: Sequence[int]) -> dict[int, str]:
    marks = ",".join("?" * len(post_ids))
    if not post_ids:
        return {}
    return dict(db.execute(f"SELECT id, source FROM posts WHERE id IN ({marks})", list(post_ids)).fetchall())


def model_metrics(test_rows: list[dict], scored: list[Scored], sources: dict[int, str] | None = None,
                  seed: int = 0) -> Metrics:
    by_post = {s.post_id: s for s in scored}
    rows = [r for r in test_rows if r["post_id"] in by_post]
    return evaluate(
        [r["label"] for r in rows], [by_post[r["post_id"]].label for r in rows],
        probs=[by_post[r["post_id"]].probs for r in rows], sarcastic=[bool(r.get("sarcastic")) for r in rows],
        sources=[sources.get(r["post_id"], "?") for r in rows] if sources else None, seed=seed,
    )


def sampling_of(test_rows: list[dict], db: sqlite_utils.Database | None = None) -> dict[str, int]:
    """How the test posts were chosen (core.dataset.sampling_counts): from the bundle's test rows, or, for a
    bundle built before they said, from the store's human test labels."""
    from bizsent.core.model.dataset import sampling_counts

    if all("sampling" in r for r in test_rows) or db is None:
        return sampling_counts(r.get("sampling") for r in test_rows)
    ids = [r["post_id"] for r in test_rows]
    stored: dict[int, str | None] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        stored.update(db.execute(
            f"SELECT post_id, sampling FROM labels WHERE {HUMAN_TEST}"
            f" AND post_id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
    return sampling_counts(stored.get(pid) for pid in ids)


def sampling_line(counts: dict[str, int]) -> str:
    """"test set: N posts, sampled: reserved R / random A / other B", and a warning when they are not all random
    (and a note when some are random from the pool that other orders left, not from the reservation)."""
    n = sum(counts.values())
    reserved, random_ = counts.get("reserved", 0), counts.get("random", 0)
    line = (f"test set: {n} posts, sampled: " + (f"reserved {reserved} / " if reserved else "")
            + f"random {random_} / other {counts.get('other', 0)}")
    if counts.get("not recorded"):
        line += f" / not recorded {counts['not recorded']}"
    if reserved + random_ < n:
        line += (" - WARNING: not all randomly sampled (other orders pick new or hard posts), so these scores"
                 " may not hold on /biz/ at large; label test posts in the Label screen's random order")
    elif reserved and random_:
        line += (" - note: the random ones were drawn from the pool other orders left, the reserved ones from"
                 " everything collected")
    return line


def build_report(name: str, test_rows: list[dict], scored: list[Scored], *, db: sqlite_utils.Database | None = None,
                 cryptobert: Path | None = None, info: dict | None = None, split: str = "test") -> Report:
    """The report of `scored` on `test_rows`, the rows of the human `split` (dev or test)."""
    if not test_rows:
        how = ("label posts on the test split (Label screen) first" if split == "test" else
               "label more posts on the train split (part of them is drawn into dev, train.dev_fraction), or "
               "score the test split with `bizsent eval RUN --test`")
        raise BizsentError(f"the {split} set is empty; {how}")
    sources = post_sources(db, [r["post_id"] for r in test_rows]) if db is not None else None
    texts, truth = [r["text"] for r in test_rows], [r["label"] for r in test_rows]
    baselines = [vader_baseline(texts, truth), cryptobert_baseline(texts, truth, cryptobert), *published_baselines()]
    if db is not None:
        baselines += api_labeler_baselines(db, {r["post_id"]: r["label"] for r in test_rows})
    info = {"split": split, **(info or {})}
    if split == "test":
        info["test_sampling"] = sampling_of(test_rows, db)
    return Report(name, model_metrics(test_rows, scored, sources), baselines, info)


def test_scorings(db: sqlite_utils.Database, test_hash: str | None) -> dict:
    """How many times the human test split has been scored: this exact test set (`test_hash`, the bundle
    manifest's) and by which runs, and every test evaluation in this store."""
    rows = db.execute(
        "SELECT m.run_id, json_extract(r.manifest, '$.hashes.test') FROM metrics m JOIN runs r ON r.id = m.run_id"
        " WHERE m.kind = 'eval' AND json_extract(m.data, '$.split') = 'test'"
        " AND coalesce(json_extract(m.data, '$.live'), 0) = 0 ORDER BY m.id").fetchall()
    same = [run for run, h in rows if test_hash and h == test_hash]
    return {"times": len(same), "runs": list(dict.fromkeys(same)), "all_test_evaluations": len(rows)}


def splits_line(info: dict) -> str:
    """"dev N / test M posts; this test set scored K times (runs ...)": what every report of a run shows."""
    sizes = info.get("sizes", {})
    line = f"human dev {sizes.get('dev', '?')} / test {sizes.get('test', '?')} posts"
    scored = info.get("test_scored")
    if scored is not None:
        runs = ", ".join(str(r) for r in scored["runs"]) or "none"
        line += (f"; this test set has been scored {scored['times']} time{'s' * (scored['times'] != 1)} "
                 f"(runs {runs}; {scored['all_test_evaluations']} test evaluations in this store)")
    return line


def _header_lines(report: Report) -> list[str]:
    out = [splits_line(report.info)] if "sizes" in report.info else []
    if "test_sampling" in report.info:
        out.append(sampling_line(report.info["test_sampling"]))
    return out


def render_markdown(report: Report) -> str:
    split = report.info.get("split", "test")
    lines = [f"# Evaluation: {report.name}", "",
             f"Human {split} split only. Published figures come from the brief (107 posts), not this {split} set.",
             "Slice rows: macro-F1 over the classes present in the slice.", "",
             *(line for h in _header_lines(report) for line in (h, "")),
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
    lines += ["", "Confusion matrix (rows = truth, columns = prediction; " + "/".join(LABELS) + "):", ""]
    lines += ["| truth \\ pred | " + " | ".join(LABELS) + " |", "|---|---|---|---|"]
    lines += [f"| {label} | " + " | ".join(str(v) for v in row) + " |"
              for label, row in zip(LABELS, report.model.confusion, strict=True)]
    return "\n".join(lines) + "\n"


def render_table(report: Report) -> Any:
    from rich.table import Table

    table = Table(title=f"{report.name} on the human {report.info.get('split', 'test')} set",
                  caption="\n".join(_header_lines(report)) or None)
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("system", "kind") else "right")
    for row in rows(report):
        table.add_row(*row, style="bold" if row[1] == "model" else "dim" if row[1] == "published" else None)
    return table


def write_report(report: Report, out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "report" if report.info.get("split", "test") == "test" else f"report-{report.info['split']}"
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md.write_text(render_markdown(report), encoding="utf-8")
    js.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return md, js


def record_evaluation(db: sqlite_utils.Database, run_id: int, report: Report, scored: list[Scored],
                      step: int | None = None) -> None:
    """Predictions and the eval event of a run on its split (dev or test: a test event is what test_scorings
    counts), so the console shows them."""
    write_predictions(db, run_id, scored)
    m = report.model
    split = report.info.get("split", "test")
    record(db, run_id, MetricEvent("eval", step=step, accuracy=m.accuracy, macro_f1=m.macro_f1,
                                   confusion=m.confusion, data={"split": split, "n": m.n, "ece": m.ece,
                                                                "accuracy_ci": m.accuracy_ci,
                                                                "macro_f1_ci": m.macro_f1_ci}))


def split_rows(bundle: Path, split: str) -> list[dict]:
    """The bundle's rows of a human split; a bundle from before the dev split asks for a rebuild."""
    from bizsent.core.model.dataset import read_split

    if split not in SPLITS:
        raise BizsentError(f"unknown split {split!r}; evaluate on one of {', '.join(SPLITS)}")
    if split == "dev" and not (Path(bundle) / "dev.jsonl").exists():
        raise BizsentError(f"bundle {bundle} has no dev split (built before it existed); retrain on a new bundle, "
                           "or score the test split with `bizsent eval RUN --test`")
    return read_split(bundle, split)


def evaluate_run(db: sqlite_utils.Database, settings: Any, run: int | str, *, cryptobert: Path | None = None,
                 batch_size: int | None = None, split: str = "dev") -> tuple[Report, Path, Path]:
    """Score the run's bundle dev split (or, on request, its test split, which is counted), store predictions
    and the eval event, write report-dev.md/json (report.md/json for test). Live events (core.evaluate.live)
    fill the Eval screen's matrix in as the batches are scored."""
    from bizsent.core.evaluate.live import clear_live
    from bizsent.core.model.events import store_sink

    info = run_row(db, run)
    bundle = Path(info["params"].get("bundle", ""))
    test_rows = split_rows(bundle, split)
    clear_live(db, info["id"], split)
    scored = score_split(info, settings, bundle, test_rows, split, batch_size=batch_size,
                         live=store_sink(db, info["id"]))
    return finish_evaluation(db, info, bundle, test_rows, scored, split=split, cryptobert=cryptobert)


def score_split(info: dict, settings: Any, bundle: Path, test_rows: list[dict], split: str, *,
                batch_size: int | None = None, live: Any = None, target: str | None = None) -> list[Scored]:
    """The run's (`run_row`'s shape) predictions on `test_rows` of `bundle`, batch by batch; after each batch a
    live event goes to `live` (a metric event sink). The same engine here and on a pod (jobs.pod_work)."""
    from bizsent.core.evaluate.live import live_event
    from bizsent.core.model.scoring import score
    from bizsent.core.model.training import score_inputs

    model, processor = load_for_run(info, settings)
    inputs = score_inputs(bundle, test_rows)
    truth = {r["post_id"]: r["label"] for r in test_rows}
    size = max(1, batch_size or settings.train.batch_size)
    scored: list[Scored] = []
    for start in range(0, len(inputs), size):
        # an untuned model (zero-shot) answers in any spelling: score whole label sequences, see core.scoring
        scored += score(model, processor, inputs[start:start + size], batch_size=size,
                        sequences=not info["adapter_path"])
        if live is not None:
            live(live_event(truth, scored, split, len(inputs), target))
    return scored


def finish_evaluation(db: sqlite_utils.Database, info: dict, bundle: Path, test_rows: list[dict],
                      scored: list[Scored], *, split: str, cryptobert: Path | None = None
                      ) -> tuple[Report, Path, Path]:
    """The report of `scored` (scored here or on a pod) next to the baselines, a zero-shot run of the same bundle
    and split among them; predictions and the final eval event stored (live events dropped), files written."""
    from bizsent.core.evaluate.live import clear_live
    from bizsent.core.model.dataset import read_manifest

    manifest = read_manifest(bundle)
    zero_shot = not info["adapter_path"]
    masses = [s.label_mass for s in scored if s.label_mass is not None]
    report = build_report(info["name"], test_rows, scored, db=db, cryptobert=cryptobert, split=split,
                          info={"run_id": info["id"], "base_model": info["base_model"],
                                "sizes": {k: manifest.get("sizes", {}).get(k) for k in SPLITS},
                                "adapter": info["adapter_path"], "bundle": str(bundle),
                                "scoring": "label sequences, every case and leading-space variant" if zero_shot
                                else "first token of each lowercase label",
                                "label_mass": sum(masses) / len(masses) if masses else None})
    if not zero_shot:
        report.baselines[:0] = zero_shot_baselines(db, manifest, split, test_rows)
    # The final event first, then the live ones go: stored after their deletion it could get one of their ids
    # (SQLite reuses the highest rowid), and a reader going on from the last id it read would never see it.
    record_evaluation(db, info["id"], report, scored)
    clear_live(db, info["id"], split)
    report.info["test_scored"] = test_scorings(db, manifest.get("hashes", {}).get("test"))
    out_dir = Path(info["params"].get("out_dir") or bundle)
    md, js = write_report(report, out_dir)
    return report, md, js


def zero_shot_baselines(db: sqlite_utils.Database, manifest: dict, split: str, test_rows: list[dict]
                        ) -> list[Baseline]:
    """The newest zero-shot run (no adapter) scored on this bundle's `split`: its row beside the fine-tuned
    model's, on the same posts."""
    row = db.execute(
        "SELECT r.id, r.name FROM runs r WHERE r.adapter_path IS NULL AND r.kind = 'eval'"
        " AND json_extract(r.manifest, '$.hashes') = json(?) AND EXISTS (SELECT 1 FROM metrics m WHERE"
        " m.run_id = r.id AND m.kind = 'eval' AND json_extract(m.data, '$.split') = ?) ORDER BY r.id DESC LIMIT 1",
        [json.dumps(manifest.get("hashes", {})), split]).fetchone()
    if row is None:
        return []
    from bizsent.core.model.acquisition import run_predictions

    scored = list(run_predictions(db, row[0], [r["post_id"] for r in test_rows]).values())
    if not scored:
        return []
    m = model_metrics(test_rows, scored)
    return [Baseline(f"zero-shot ({row[1]})", "store", m.accuracy, m.macro_f1, m.n, m,
                     f"run {row[0]}: the base model without adapter, same posts")]


def zero_shot_run(db: sqlite_utils.Database, settings: Any, bundle: Path, name: str = "zero-shot") -> int:
    """A run without an adapter: evaluating it gives the brief's "zero-shot Qwen" row."""
    from bizsent.core.model.dataset import read_manifest
    from bizsent.core.model.events import create_run, finish_run

    run_id = create_run(db, kind="eval", name=name, base_model=settings.train.base_model,
                        manifest=read_manifest(bundle), params={"bundle": str(bundle), "out_dir": str(bundle),
                                                                "train": settings.train.model_dump(mode="json")})
    finish_run(db, run_id, "done")
    return run_id
