"""Benchmark: live labeling against the fake OpenAI server (300 ms latency, limit 600 requests/minute).

Measures (1) the sustained request rate the server sees as a ratio of the configured limit (target >= 0.90,
never above 1.0), and (2) the dry-run cost estimate against the ledger total after the run (target within
10%): the estimate is calibrated on a 20-post run first, as `bizsent label --dry-run` does once the ledger
holds calls for the model; the uncalibrated formula's error is shown too.
Run: .venv/bin/python bench/labeling.py   (about 70 s). Last line: JSON with rate_ratio and estimate_error.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bizsent.core.config import load_settings  # noqa: E402
from bizsent.core.label import budget, ledger, planning  # noqa: E402
from bizsent.core.store import open_db  # noqa: E402
from bizsent.jobs import labeling  # noqa: E402
from fakes.label_posts import FAKE_CONFIG, make_posts  # noqa: E402
from fakes.openai_server import FakeOpenAI, Server  # noqa: E402

LIMIT_RPM = 600
LATENCY_S = 0.3
CALIBRATION_POSTS = 20
MAIN_POSTS = int(os.environ.get("BENCH_POSTS", "600"))


def main() -> None:
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    fake = FakeOpenAI(latency_s=LATENCY_S)
    with tempfile.TemporaryDirectory() as tmp, Server(fake) as server:
        cfg = Path(tmp) / "config.toml"
        cfg.write_text(
            FAKE_CONFIG + f'[labeling]\nbudget_job_usd = 100.0\nbudget_total_usd = 100.0\n'
            f'[labeling.openai]\nbase_url = "{server.url}"\nmodel = "gpt-fake"\nconcurrency = 8\n'
            f"requests_per_minute = {LIMIT_RPM}\n", encoding="utf-8")
        settings = load_settings(cfg, environ={})
        db = open_db(settings.db_path)
        make_posts(db, settings.image_dir, CALIBRATION_POSTS + MAIN_POSTS)
        params = planning.resolve(settings, "openai", None, None, False)

        all_items = planning.plan(db, settings, params).items
        main_sizes = [budget.PostSize(i.subject, i.text, i.width, i.height) for i in all_items[CALIBRATION_POSTS:]]
        formula = budget.estimate(db, settings, "openai", params.model, params.prompt_version, main_sizes, "live")

        calib_plan = planning.plan(db, settings, planning.resolve(settings, "openai", None, CALIBRATION_POSTS, False))
        labeling.run_live(db, settings, calib_plan)

        main_plan = planning.plan(db, settings, params)
        calibrated = main_plan.chosen
        first_call = len(fake.calls)
        started = time.monotonic()
        report = labeling.run_live(db, settings, main_plan)
        wall = time.monotonic() - started
        arrivals = [c.at for c in fake.calls[first_call:]]
        actual = ledger.job_usd(db, report.job_id)

    span = arrivals[-1] - arrivals[0]
    sustained_rpm = (len(arrivals) - 1) / span * 60
    # Requests in the busiest 60-second window: must never exceed the per-minute limit.
    window = max(sum(1 for t in arrivals if a <= t < a + 60) for a in arrivals)
    rate_ratio = sustained_rpm / LIMIT_RPM
    estimate_error = abs(calibrated.usd - actual) / actual
    formula_error = abs(formula.usd - actual) / actual
    rows = [
        ("posts labeled (main run)", f"{report.snapshot.done} of {MAIN_POSTS}"),
        ("wall time", f"{wall:.1f} s"),
        ("server latency", f"{LATENCY_S * 1000:.0f} ms"),
        ("configured limit", f"{LIMIT_RPM} req/min"),
        ("sustained rate", f"{sustained_rpm:.1f} req/min"),
        ("rate ratio (target >= 0.90, <= 1.0)", f"{rate_ratio:.3f}"),
        ("requests in busiest 60 s window", f"{window} (limit {LIMIT_RPM})"),
        ("ledger total (main run)", f"${actual:.5f}"),
        ("estimate, calibrated on 20 calls", f"${calibrated.usd:.5f} (error {estimate_error:.1%})"),
        ("estimate, formula only", f"${formula.usd:.5f} (error {formula_error:.1%})"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(json.dumps({"rate_ratio": round(rate_ratio, 4), "estimate_error": round(estimate_error, 4)}))


if __name__ == "__main__":
    main()
