"""Merge `pip freeze` outputs from several Pythons into one constraints file (used by scripts/lock).

Usage: python merge_constraints.py 3.11=freeze-3.11.txt 3.12=freeze-3.12.txt 3.13=freeze-3.13.txt > constraints.txt

A package pinned to the same version on every Python gets one plain line. Otherwise the Pythons are taken in
order and those next to each other with the same pin share a line whose environment marker covers their range
(`; python_version >= "3.12"`), which pip honours in a constraints file: the newest range is open-ended, so a
newer Python takes the newest pins. pip, setuptools and wheel are the installer's own and are left out.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from platform import machine

TOOLING = {"pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_freeze(path: Path) -> dict[str, str]:
    """Canonical package name -> its `name==version` line."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "==" in line and canonical(line.split("==", 1)[0]) not in TOOLING:
            pins[canonical(line.split("==", 1)[0])] = line
    return pins


def marker(start: str | None, end: str | None) -> str:
    parts = [f'python_version >= "{start}"'] if start else []
    parts += [f'python_version < "{end}"'] if end else []
    return " and ".join(parts)


def merge(freezes: dict[str, dict[str, str]]) -> list[str]:
    """`freezes` maps each Python ("3.11") to its pins, in ascending order."""
    versions = list(freezes)
    lines = []
    for name in sorted({name for pins in freezes.values() for name in pins}):
        pins = [freezes[version].get(name) for version in versions]
        if len(set(pins)) == 1:
            lines.append(pins[0])
            continue
        first = 0
        for i in range(1, len(versions) + 1):
            if i < len(versions) and pins[i] == pins[first]:
                continue
            if pins[first] is not None:
                start = versions[first] if first > 0 else None
                end = versions[i] if i < len(versions) else None
                lines.append(f"{pins[first]}; {marker(start, end)}")
            first = i
    return lines


def main(args: list[str]) -> None:
    pairs = sorted((tuple(int(p) for p in arg.split("=", 1)[0].split(".")), arg) for arg in args)
    freezes = {arg.split("=", 1)[0]: read_freeze(Path(arg.split("=", 1)[1])) for _, arg in pairs}
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    print(f"# The versions the suite was green with ({day}, Python {', '.join(freezes)}, {machine()}). Used by")
    print("# scripts/setup; refresh with scripts/lock. A package pinned differently per Python carries a")
    print("# python_version marker (the newest range is open-ended). Packages not installed on a platform are ignored.")
    print("\n".join(merge(freezes)))


if __name__ == "__main__":
    main(sys.argv[1:])
