"""The in-pod agent as the pod gets it: a zipapp of core/pods/agent/ in BIZSENT_AGENT_B64. A pod has no bizsent
and no site-packages of ours when the agent starts, so every module must import the standard library only; and
the env value must be the same bytes for the same sources."""

from __future__ import annotations

import ast
import base64
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from bizsent.core.pods import agent
from bizsent.core.pods.payload import AGENT_PACKAGE, agent_b64, agent_zipapp

PACKAGE = Path(agent.__file__).parent


def absolute_imports(source: bytes) -> set[str]:
    """Top-level names of the module's absolute imports (relative ones stay inside the agent package)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_agent_ships_as_a_deterministic_stdlib_only_zipapp(tmp_path):
    built = agent_zipapp(PACKAGE)
    copy = tmp_path / "agent"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in copy.iterdir():
        os.utime(path, (1e9, 1e9))
    assert agent_zipapp(copy) == built  # other file times, same bytes
    env_value = agent_b64()
    assert base64.b64decode(env_value) == built and len(env_value) < 100_000

    with zipfile.ZipFile(io.BytesIO(built)) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert set(names) == {"__main__.py"} | {f"{AGENT_PACKAGE}/{p.name}" for p in PACKAGE.glob("*.py")}
        foreign = {name: absolute_imports(zf.read(name)) - sys.stdlib_module_names for name in names}
    assert not any(foreign.values()), foreign

    # An interpreter that sees neither site-packages nor PYTHONPATH (no bizsent) imports every module of the zipapp
    zipapp = tmp_path / "bizsent_agent.pyz"
    zipapp.write_bytes(built)
    modules = [f"{AGENT_PACKAGE}.{p.stem}" for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"]
    code = "import importlib, sys; sys.path.insert(0, sys.argv[1]); [importlib.import_module(m) for m in sys.argv[2:]]"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(zipapp), *modules], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    # ... and runs it as the start command does, up to the agent's own refusal to serve without a run token
    done = subprocess.run([sys.executable, "-I", "-S", str(zipapp)], capture_output=True, text=True, timeout=60,
                          env={}, check=False)
    assert done.returncode == 1 and "BIZSENT_TOKEN is missing" in done.stderr, done.stderr
