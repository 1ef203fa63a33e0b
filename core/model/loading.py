"""A run as the store records it, and its model loaded here: what evaluation, pool scoring and `bizsent
predict` start from. The heavy stack (torch, transformers) loads inside `load_for_run`, not with this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.errors import BizsentError


def run_row(db: sqlite_utils.Database, run: int | str) -> dict:
    """A run by id or name (the newest of that name)."""
    cols = ("id", "kind", "name", "base_model", "adapter_path", "params", "state")
    row = db.execute(f"SELECT {', '.join(cols)} FROM runs WHERE id = ? OR name = ? ORDER BY id DESC LIMIT 1",
                     [run, str(run)]).fetchone()
    if row is None:
        raise BizsentError(f"run {run} does not exist; `bizsent train --local` creates one")
    out = dict(zip(cols, row, strict=True))
    out["params"] = json.loads(out["params"] or "{}")
    return out


def load_for_run(run: dict, settings: Any) -> tuple[Any, Any]:
    """The run's base model (4-bit on CUDA when configured, quantised as it was trained) with its adapter, and the
    processor. The adapter's bizsent.json must match what scoring uses (prompt version, label tokens, base model):
    checked before the model is loaded."""
    from bizsent.core.model.modeling import cuda_available, load_model, load_processor
    from bizsent.core.model.run_info import check_run_info, read_run_info, run_pixel_budget

    train_cfg = run["params"].get("train", {})
    max_pixels = (run_pixel_budget(read_run_info(Path(run["adapter_path"]))) if run["adapter_path"]
                  else train_cfg.get("max_pixels", settings.train.max_pixels))
    four_bit = run["params"].get("load_in_4bit")
    if four_bit is None:
        four_bit = settings.train.load_in_4bit and cuda_available()
    processor = load_processor(run["base_model"], max_pixels)
    if run["adapter_path"]:
        check_run_info(Path(run["adapter_path"]), processor, run["base_model"])
    # runs from before train.quantize_vision existed had their vision tower quantised with the rest
    quantize_vision = train_cfg.get("quantize_vision", True)
    model = load_model(run["base_model"], load_in_4bit=four_bit, adapter=run["adapter_path"],
                       quantize_vision=quantize_vision)
    return model, processor
