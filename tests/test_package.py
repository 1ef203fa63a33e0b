"""One import name: bizsent.core, bizsent.jobs, bizsent.tui and bizsent.cli, and engine code that needs no console."""

from __future__ import annotations

import subprocess
import sys

ENGINE = ["bizsent.core.model.training", "bizsent.core.model.scoring", "bizsent.core.model.pool",
          "bizsent.core.model.selftrain", "bizsent.core.label.planning", "bizsent.core.label.providers",
          "bizsent.jobs.launch", "bizsent.jobs.labeling", "bizsent.cli",
          "bizsent.core.serve.handler", "bizsent.core.serve.endpoint", "runpod.serverless"]


def test_engine_and_cli_import_with_textual_blocked():
    """Code that runs in a pod or a serverless worker must not need Textual (nor any bizsent.tui module)."""
    code = (
        "import sys\n"
        "sys.modules['textual'] = None\n"  # `import textual` now raises ImportError
        f"for name in {ENGINE!r}:\n"
        "    __import__(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('bizsent.tui')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_python_dash_m_bizsent_is_the_command():
    out = subprocess.run([sys.executable, "-m", "bizsent", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Usage:" in out.stdout and "score-pool" in out.stdout


def test_no_top_level_core_jobs_or_tui_is_importable_from_elsewhere(tmp_path):
    """Installed, bizsent adds one name: `core`, `jobs` and `tui` are not importable outside the checkout."""
    code = "import importlib.util as u; print([n for n in ('core', 'jobs', 'tui') if u.find_spec(n)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]"
