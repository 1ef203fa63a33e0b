"""The house keeps its shape: no import circle between bizsent's modules, and no import from a lower floor to a
higher one, as the floor table in bizsent's own docstring (the repository's __init__.py) draws them.

Imports are read from the source (ast), every one of them: at the top, inside functions (a lazy import is still
an arrow) and under TYPE_CHECKING. `from package import name` points at the submodule when `name` is one, else at
the package. tests/ and bench/ are outside the house.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import bizsent

ROOT = Path(bizsent.__file__).resolve().parent
OUTSIDE = {"tests", "bench", "scripts", "docs", ".venv", ".git", "site", "data"}
FLOOR_LINE = re.compile(r"^\s{4}(\d+) ([a-z/]+)\s+((?:[\w.]+ ?)+)$")


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] in OUTSIDE or rel.parts[0].startswith(".venv"):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(["bizsent", *parts])] = path
    return out


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The bizsent modules `name` imports, each named by the deepest module that exists."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            named |= {f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names}
    out = set()
    for target in named:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted: every import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def floor_table() -> dict[str, tuple[int, str]]:
    """bizsent's docstring, read as `    N name  prefix prefix ...` lines: prefix -> (floor, floor's name)."""
    table = {}
    for line in (bizsent.__doc__ or "").splitlines():
        if m := FLOOR_LINE.match(line):
            for prefix in m.group(3).split():
                table[prefix if prefix == "bizsent" else f"bizsent.{prefix}"] = (int(m.group(1)), m.group(2))
    return table


def floor_of(module: str, table: dict[str, tuple[int, str]]) -> tuple[int, str]:
    """The floor of the longest prefix in the table that names `module` or a package above it."""
    name = module
    while name not in table:
        if "." not in name:
            raise AssertionError(f"{module} is on no floor: add it to the table in bizsent/__init__.py")
        name = name.rpartition(".")[0]
    return table[name]


def upward(edges: dict[str, set[str]], table: dict[str, tuple[int, str]]) -> list[str]:
    out = []
    for source, targets in sorted(edges.items()):
        here = floor_of(source, table)
        for target in sorted(targets):
            there = floor_of(target, table)
            if there[0] > here[0]:
                out.append(f"{source} (floor {here[0]} {here[1]}) imports {target} (floor {there[0]} {there[1]})")
    return out


def test_no_import_circle_between_modules():
    found = circles(graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_import_from_a_lower_floor_to_a_higher_one():
    table = floor_table()
    assert len({floor for floor, _ in table.values()}) >= 8, "the floor table in bizsent/__init__.py is missing"
    assert upward(graph(), table) == []


def test_every_package_says_what_it_is_for_and_its_floor():
    """Each package's docstring is the map: what it is for, and (by floor) what it may import."""
    table = floor_table()
    for name, path in modules().items():
        if path.name != "__init__.py" or name == "bizsent":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        floor, floor_name = floor_of(name, table)
        assert f"floor {floor}" in doc.lower(), f"{path}: its docstring should name its floor ({floor} {floor_name})"


def test_the_checks_catch_a_circle_and_an_upward_import(tmp_path):
    """The walker on a small made-up package: a lazy import inside a function closes a circle, and a floor-0
    module importing a floor-1 one is reported."""
    pkg = tmp_path / "house"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from bizsent.high import b\n")
    (pkg / "high.py").write_text("from bizsent.low import a\nb = 1\n")
    edges = graph(pkg)
    assert circles(edges) == [["bizsent.high", "bizsent.low.a"]]
    table = {"bizsent": (9, "top"), "bizsent.low": (0, "ground"), "bizsent.high": (1, "up")}
    assert upward(edges, table) == ["bizsent.low.a (floor 0 ground) imports bizsent.high (floor 1 up)"]
