"""Merge `pip freeze` outputs from several Pythons into one constraints file (used by scripts/lock).

Usage: python merge_constraints.py 3.11=freeze-3.11.txt 3.13=freeze-3.13.txt ... > constraints.txt

A package pinned to the same version on every Python gets one plain line; otherwise each Python that has it gets
its own line with an environment marker (`; python_version == "3.13"`), which pip honours in a constraints file.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from platform import machine


def read_freeze(path: Path) -> dict[str, str]:
    """Canonical package name -> its `name==version` line."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "==" in line:
            name = line.split("==", 1)[0]
            pins[re.sub(r"[-_.]+", "-", name).lower()] = line
    return pins


def merge(freezes: dict[str, dict[str, str]]) -> list[str]:
    names = sorted({name for pins in freezes.values() for name in pins})
    lines = []
    for name in names:
        pins = {version: pins[name] for version, pins in freezes.items() if name in pins}
        if len(pins) == len(freezes) and len(set(pins.values())) == 1:
            lines.append(next(iter(pins.values())))
        else:
            lines.extend(f'{pin}; python_version == "{version}"' for version, pin in pins.items())
    return lines


def main(args: list[str]) -> None:
    freezes = {}
    for arg in args:
        version, _, path = arg.partition("=")
        freezes[version] = read_freeze(Path(path))
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    print(f"# The versions the suite was green with ({day}, Python {', '.join(freezes)}, {machine()}). Used by")
    print("# scripts/setup; refresh with scripts/lock. A package pinned differently per Python carries a")
    print("# python_version marker; a Python not listed above takes the unmarked lines. Packages not installed on a")
    print("# platform are ignored.")
    print("\n".join(merge(freezes)))


if __name__ == "__main__":
    main(sys.argv[1:])
