"""Reproducible installs on every supported Python: constraints.txt pins what each was green with, and
scripts/merge_constraints.py (what scripts/lock writes it with) gives each Python its own pins where they differ."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pins_for(text: str, python: str) -> dict[str, str]:
    """Package -> pinned version for one Python, as pip reads a constraints file."""
    pins = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"python_version": python}):
            assert req.name not in pins, f"{req.name} is pinned twice for Python {python}"
            pins[req.name] = str(req.specifier).removeprefix("==")
    return pins


def test_textual_image_is_pinned_per_python():
    text = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    assert pins_for(text, "3.11")["textual-image"] == "0.12.0"  # the newest that installs on 3.11
    for python in ("3.12", "3.13", "3.14"):
        assert pins_for(text, python)["textual-image"].startswith("0.14.")  # draws through tmux; needs 3.12
    assert pins_for(text, "3.11")["textual"] == pins_for(text, "3.13")["textual"]


def test_this_python_has_what_constraints_txt_pins():
    """The environment the suite runs in was installed from constraints.txt (scripts/setup)."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    pins = pins_for((ROOT / "constraints.txt").read_text(encoding="utf-8"), python)
    for name in ("textual", "textual-image", "httpx", "pydantic", "openai"):
        assert version(name) == pins[name], name


def test_merge_gives_neighbouring_pythons_with_the_same_pin_one_range(tmp_path):
    freezes = {
        "3.11": "textual==8.2.8\ntextual-image==0.12.0\npip==26.2\nbackports.zstd==1.8.0\n",
        "3.12": "textual==8.2.8\ntextual-image==0.14.2\npip==26.2\n",
        "3.13": "textual==8.2.8\ntextual-image==0.14.2\nsetuptools==84.2.1\n",
    }
    args = []
    for python, text in freezes.items():
        (tmp_path / python).write_text(text, encoding="utf-8")
        args.append(f"{python}={tmp_path / python}")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "merge_constraints.py"), *reversed(args)],
                         check=True, capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    assert lines == [
        'backports.zstd==1.8.0; python_version < "3.12"',
        "textual==8.2.8",
        'textual-image==0.12.0; python_version < "3.12"',
        'textual-image==0.14.2; python_version >= "3.12"',
    ]
    assert all(Marker(line.split("; ")[1]) for line in lines if "; " in line)  # markers pip can read
    assert pins_for(out, "3.14")["textual-image"] == "0.14.2"  # a newer Python takes the newest pins
