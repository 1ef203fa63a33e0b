"""Where a setting comes from, and how a bad one is reported: the dotted keys that environment variables and
command-line flags set over config.toml, their values read as TOML, and the one line that blames the variable or
flag that set a bad value rather than the file (core.config.load_settings puts them together).
"""

from __future__ import annotations

import tomllib
from typing import Any

from bizsent.core.errors import ConfigError
from pydantic import ValidationError

ENV_PREFIX = "BIZSENT_"


def set_dotted(tree: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{origin}: {part} is not a section, so {dotted} is not a setting; fix or unset it")
    node[leaf] = value


def env_overrides(environ: dict[str, str]) -> dict[str, tuple[str, str]]:
    """BIZSENT_SCRAPE__BOARD=g overrides scrape.board (double underscore separates sections).

    Returns dotted key -> (value, variable name), so a bad value is blamed on the variable that set it."""
    out = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            out[name[len(ENV_PREFIX) :].lower().replace("__", ".")] = (value, name)
    return out


def coerce(text: str) -> Any:
    """Environment and flag values are strings; read them as TOML scalars or lists when they parse."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def format_error(err: ValidationError, origin: str, origins: dict[str, str] | None = None) -> str:
    # An unknown key explains a missing or mistyped one more often than the reverse: report it first.
    first = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    key = ".".join(str(p) for p in first["loc"])
    # A key set (or a section made up) by an environment variable or a flag is that variable's fault.
    parent = key.rpartition(".")[0]
    for dotted, source in (origins or {}).items():
        if (dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + ".")
                or (first["type"] == "missing" and dotted.rpartition(".")[0] == parent)):
            origin = source
            break
    if first["type"] == "extra_forbidden":
        if ".usd_per_mtok_" in key or key.endswith(".batch_discount"):
            return (f"{origin}: '{key}' is gone: prices belong to models now; move them to "
                    '[prices."MODEL"] input_per_mtok = … output_per_mtok = … batch_discount = …')
        hint = " (API keys belong in environment variables)" if "key" in key.lower() else ""
        return f"{origin}: unknown setting '{key}'{hint}; remove it or check the spelling"
    given = first.get("input")
    return f"{origin}: setting '{key}' {first['msg'].lower()} (got {given!r}); fix it and try again"
