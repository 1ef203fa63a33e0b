"""What a stopped pod bills is shown: RunPod reports `cost` 0.0 for it, but its volume bills $0.20/GB/month
(docs pods/pricing; runpod.volume_usd_per_gb_month_stopped). `pods list`, the Pods screen's rows, the status bar
and `pods reap` (which offers stopped bizsent pods whose adapter is stored here) all say so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bizsent.core.config import load_settings
from bizsent.core.pods import records, views
from bizsent.core.store import now, open_db
from bizsent.tui.app import StatusInfo
from bizsent.tui.screens.pod_format import pod_cells, stop_question
from bizsent.tui.widgets.status_bar import status_text
from fakes.runpod_server import USER_KEY, FakeRunpod


@pytest.fixture
def fake(tmp_path):
    with FakeRunpod(USER_KEY, root=tmp_path / "pods", boot_delay_s=0.05) as server:
        yield server


@pytest.fixture
def config(tmp_path, fake) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[data]\ndir = "data"\n[runpod]\napi_base = "{fake.url}"\nproxy_url = "{fake.proxy_url}"\n',
                    encoding="utf-8")
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BIZSENT_")}, "RUNPOD_API_KEY": USER_KEY}
    return subprocess.run([sys.executable, "-m", "bizsent", "--config", str(config), *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _stopped_pod_with_its_adapter_stored(db, fake, name: str) -> str:
    """A bizsent pod its watchdog stopped after training; the adapter was collected later (the run is done) and the
    row, whose job is gone from the database, still says stopped: not an orphan, yet nothing on it is needed."""
    pod_id = fake.add_pod(f"bizsent-{name}", status="EXITED", volume_gb=40)
    db.execute("INSERT INTO pods (pod_id, name, run_name, state, usd_per_hour, created_at) VALUES"
               " (?, ?, ?, 'stopped', 0.34, ?)", [pod_id, f"bizsent-{name}", name, now()])
    db.execute("INSERT INTO runs (kind, name, state, adapter_path, created_at) VALUES ('train', ?, 'done', ?, ?)",
               [name, f"data/runs/{name}/adapter", now()])
    return pod_id


def test_pods_list_shows_a_stopped_pods_volume_and_reap_offers_it_once_its_adapter_is_stored(config, fake):
    settings = load_settings(config, environ={})
    db = open_db(settings.db_path)
    done = _stopped_pod_with_its_adapter_stored(db, fake, "done1")
    kept = fake.add_pod("bizsent-kept", status="EXITED", volume_gb=100)  # an orphan, stopped: bills $20/month
    db.execute("INSERT INTO pods (pod_id, name, run_name, state, created_at) VALUES (?, 'bizsent-kept', 'kept',"
               " 'terminated', ?)", [kept, now()])
    listed = cli(config, "pods", "list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line[:1].isalnum()}
    assert "stopped, its adapter is stored here: only its volume bills; its volume bills $8.00/month" in lines[done]
    assert re.search(r"RTX 4090 +0\.01 ", lines[done])  # $/h: the volume's, where RunPod says 0.00
    assert "its volume bills $20.00/month while stopped" in lines[kept]
    assert ("2 stopped pod(s) whose volumes bill $28.00 a month ($0.20/GB/month stopped, docs.runpod.io"
            " pods/pricing), though RunPod shows $0.00/h") in listed.stdout
    assert "1 stopped pod(s) whose adapter is stored here, their volumes billing $8.00/month" in listed.stdout

    reaped = cli(config, "pods", "reap", "--yes")
    assert reaped.returncode == 0, reaped.stderr
    assert f"stopped {done} bizsent-done1 (EXITED, $0.00/h, $0.00 so far): stopped, its adapter is stored here" \
        in reaped.stdout
    assert f"pod {done} terminated" in reaped.stdout and f"pod {kept} terminated" in reaped.stdout
    assert fake.storage_billing_now() == [] and {done, kept} <= set(fake.gone)
    assert records.row_of(db, done).state == "terminated"


def test_the_console_shows_stopped_pods_and_their_monthly_bill(settings, db):
    for i, state in enumerate(("stopped", "stopped", "running", "terminated")):
        db.execute("INSERT INTO pods (pod_id, name, run_name, state, usd_per_hour, created_at) VALUES"
                   " (?, ?, ?, ?, 0.34, ?)", [f"pod{i}", f"bizsent-r{i}", f"r{i}", state, now()])
    assert views.stored(db, settings) == (2, pytest.approx(16.0))  # 2 x 40 GB x $0.20
    shown = {p.pod_id: p for p in views.stored_pods(db, settings=settings)}
    assert shown["pod0"].storage_usd_month == pytest.approx(8.0) and shown["pod2"].storage_usd_month == 0
    cells = pod_cells(shown["pod0"])
    assert cells[-1].plain == " volume $8.00/mo"
    assert "its volume is kept, and bills by the month" in stop_question(shown["pod2"])
    info = StatusInfo("x.db", 0, 0.0, *views.billing(db), *views.stored(db, settings))
    bar = status_text(info, [("posts", "Posts")], "posts", 160).plain
    assert " pods 1 $0.34/h " in bar and " stopped 2 $16.00/mo " in bar
