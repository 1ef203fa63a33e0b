"""What `docker build` sends as the build context, computed without docker: the files under the context folder
that its `.dockerignore` lets through, and the Dockerfile's instructions, so a test can check that every COPY
finds its source.

The .dockerignore rules are Docker's (docs.docker.com/build/concepts/context/#dockerignore-files): one pattern a
line, `#` comments, leading and trailing slashes dropped; Go's filepath.Match syntax (`*` and `?` stay within a
path segment) plus `**` for any number of segments; a pattern that matches a folder excludes everything under
it; `!` makes an exception; the last pattern that matches a path decides. With BuildKit, a Dockerfile given
with -f may have its own `<Dockerfile>.dockerignore` beside it, which then replaces the context's.
"""

from __future__ import annotations

import re
from pathlib import Path


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            if pattern.startswith("/", i):
                out, i = out + "/?", i + 1
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def read_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per line of a .dockerignore."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        line = line.lstrip("!").strip().strip("/")
        if line:
            rules.append((exception, _regex(line)))
    return rules


def ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parents = rel.split("/")
    candidates = ["/".join(parents[:n]) for n in range(1, len(parents) + 1)]
    verdict = False
    for exception, regex in rules:
        if any(regex.match(path) for path in candidates):
            verdict = not exception
    return verdict


def context_files(context: Path, dockerfile: Path | None = None) -> set[str]:
    """The files (paths relative to `context`, with /) that docker would send for `docker build [-f dockerfile]
    context`."""
    context = Path(context)
    own = dockerfile.with_name(dockerfile.name + ".dockerignore") if dockerfile is not None else None
    source = own if own is not None and own.exists() else context / ".dockerignore"
    rules = read_patterns(source.read_text(encoding="utf-8")) if source.exists() else []
    return {p.relative_to(context).as_posix() for p in context.rglob("*")
            if p.is_file() and not ignored(p.relative_to(context).as_posix(), rules)}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = Path(dockerfile).read_text(encoding="utf-8")
    lines = [x for x in text.replace("\\\n", " ").splitlines() if x.strip() and not x.lstrip().startswith("#")]
    return [(x.split(None, 1)[0].upper(), x.split(None, 1)[1].strip() if " " in x.strip() else "") for x in lines]


def copied(dockerfile: Path, files: set[str]) -> dict[str, set[str]]:
    """For each COPY/ADD from the context (not --from another stage): its destination and the context files it
    takes; a source that matches nothing in the context is an empty set (docker fails the build on it)."""
    out: dict[str, set[str]] = {}
    for op, args in instructions(dockerfile):
        if op not in ("COPY", "ADD"):
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        if any(w.startswith("--from") for w in args.split()):
            continue
        *sources, dest = words
        for source in sources:
            src = source.strip("/").removeprefix("./")
            taken = files if src in ("", ".") else {f for f in files if f == src or f.startswith(src + "/")}
            out[f"{source} -> {dest}"] = taken
    return out
