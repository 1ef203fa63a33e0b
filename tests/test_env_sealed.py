"""The test session is sealed from the user's shell (tests/conftest.py): no BIZSENT_* and no provider key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bizsent.core.config import secret_variables

HERE = Path(__file__).resolve().parent
INNER = "SEALED_CHECK_INNER"  # not a BIZSENT_ name, so the seal leaves it for the inner run


def test_the_session_sees_no_bizsent_variable_and_no_provider_key():
    leaked = sorted(n for n in os.environ if n.startswith("BIZSENT_") or n in secret_variables())
    assert secret_variables() >= {"RUNPOD_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"}
    assert leaked == []
    if os.environ.get(INNER):
        print("SEALED", sorted(secret_variables()))


def test_a_session_started_from_a_dirty_shell_is_sealed(tmp_path):
    """What a user who trains on RunPod has in their shell: keys and overrides that point elsewhere."""
    dirty = {**os.environ, INNER: "1", "RUNPOD_API_KEY": "rp-user-real-key", "OPENAI_API_KEY": "sk-user-real",
             "GEMINI_API_KEY": "gm-user-real", "BIZSENT_COMPATIBLE_API_KEY": "cp-user-real",
             "BIZSENT_RUNPOD__API_BASE": "https://rest.runpod.io/v2", "BIZSENT_DATA__DIR": str(tmp_path / "no")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         f"{HERE / 'test_env_sealed.py'}::test_the_session_sees_no_bizsent_variable_and_no_provider_key"],
        cwd=HERE.parent, env=dirty, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "SEALED" in result.stdout and "1 passed" in result.stdout
