"""The human dev split serves everyday model choice; the test split is scored on request, and every report says
how large dev and test are, how the test posts were sampled and how many times this test set has been scored."""

from __future__ import annotations

import pytest
from bizsent.core.errors import BizsentError
from bizsent.core.evaluate.report import evaluate_run
from bizsent.core.model.dataset import build_dataset, export_bundle
from bizsent.core.model.events import create_run, finish_run, run_events
from bizsent.core.store import open_db
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel
from fakes.train import seed_store, tiny_settings


@pytest.fixture
def dev_run(run, model_dir, tmp_path):
    """A store with human train labels (so dev has posts), its bundle, and a run row holding the shared adapter."""
    settings = tiny_settings(tmp_path, model_dir)
    db = open_db(settings.db_path)
    ids = seed_store(db, settings.image_dir, n_train=30, n_test=6, n_unlabeled=0)
    for pid in ids["train"]:
        label = db.execute("SELECT label FROM labels WHERE post_id = ? LIMIT 1", [pid]).fetchone()[0]
        set_label(db, pid, NewLabel(label=label, source="human", split="train", labeler="human:t"))
    bundle = export_bundle(build_dataset(db, settings.image_dir, settings.train), tmp_path / "bundle",
                           max_pixels=settings.train.max_pixels)
    from bizsent.core.model.dataset import read_manifest

    run_id = create_run(db, kind="train", name="dev-run", base_model=str(model_dir), manifest=read_manifest(bundle),
                        params={"bundle": str(bundle), "out_dir": str(tmp_path / "out"),
                                "train": settings.train.model_dump(mode="json")})
    finish_run(db, run_id, "done", str(run["result"].adapter_dir))
    yield db, settings, run_id, read_manifest(bundle)
    db.close()


def test_dev_by_default_and_the_test_split_counted_on_request(dev_run):
    db, settings, run_id, manifest = dev_run
    assert manifest["sizes"]["dev"] > 0
    report, md, _ = evaluate_run(db, settings, run_id)
    assert report.info["split"] == "dev" and report.model.n == manifest["sizes"]["dev"]
    assert report.info["sizes"] == {"dev": manifest["sizes"]["dev"], "test": 6}
    assert report.info["test_scored"]["times"] == 0 and "test_sampling" not in report.info
    assert md.name == "report-dev.md" and "scored 0 times" in md.read_text()
    for times in (1, 2):
        report, md, _ = evaluate_run(db, settings, run_id, split="test")
        assert report.info["test_scored"] == {"times": times, "runs": [run_id], "all_test_evaluations": times}
    text = md.read_text()
    assert md.name == "report.md" and f"this test set has been scored 2 times (runs {run_id};" in text
    assert "human dev" in text and "test set: 6 posts, sampled:" in text
    splits = [e.data["split"] for e in run_events(db, run_id, "eval")]
    assert splits == ["dev", "test", "test"]


def test_a_bundle_without_a_dev_split_asks_for_a_rebuild(dev_run):
    db, settings, run_id, _ = dev_run
    bundle = db.execute("SELECT json_extract(params, '$.bundle') FROM runs WHERE id = ?", [run_id]).fetchone()[0]
    from pathlib import Path

    (Path(bundle) / "dev.jsonl").unlink()
    with pytest.raises(BizsentError, match="no dev split"):
        evaluate_run(db, settings, run_id)
