"""The docs site's generated pages, made from the code at every build so they cannot drift from it (an mkdocs hook,
named in mkdocs.yml): the CLI reference from the typer app, the configuration reference from the settings models
with config.toml's comments, and the console's keys from the screens' bindings.

tests/test_docs.py builds the site in strict mode and checks that every command, setting and key is documented.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GENERATED = {"reference/cli.md": "cli_reference", "reference/configuration.md": "config_reference",
             "reference/keys.md": "keys_reference"}


def cli_reference() -> str:
    """Typer's own Markdown for the app (`typer ... utils docs`), every command and option with its help."""
    import typer
    from bizsent.cli import app
    from typer.cli import get_docs_for_click

    command = typer.main.get_command(app)
    text = get_docs_for_click(obj=command, ctx=typer.Context(command), name="bizsent", title="CLI reference")
    return _generated_note("the typer app (bizsent.cli)") + text


@dataclass
class Commented:
    """What config.toml says about its keys: section -> key -> comment, and section -> the note under its header."""

    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of a TOML line: the first `#` outside a string starts the comment."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def config_comments(text: str) -> Commented:
    """Read config.toml's comments: a key's own comment with its indented continuation lines, the unindented
    comment lines just above it, and the comment lines right under a section header (that section's note)."""
    out = Commented()
    section, last_key, pending = "", "", []
    for line in text.splitlines():
        code, comment = _split_comment(line)
        if header := re.fullmatch(r"\[([^\[\]]+)\]", code.strip()):
            section, last_key, pending = header.group(1).replace('"', ""), "", []
            out.keys.setdefault(section, {})
            out.notes[section] = comment
        elif key := re.match(r"(\w+)\s*=", code):
            last_key = key.group(1)
            out.keys.setdefault(section, {})[last_key] = " ".join([*pending, comment]).strip()
            pending = []
        elif comment and line.startswith((" ", "\t")) and last_key:
            out.keys[section][last_key] += " " + comment
        elif comment and section and not last_key:
            out.notes[section] = f"{out.notes[section]} {comment}".strip()
        elif comment:
            pending.append(comment)
        else:
            pending = []
    return out


def _toml(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _allowed(info: Any) -> str:
    """A field's bounds and choices, as config validation enforces them."""
    import typing

    parts = [f"one of {', '.join(map(repr, typing.get_args(info.annotation)))}"
             if typing.get_origin(info.annotation) is typing.Literal else ""]
    for rule in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >=")):
            if getattr(rule, attr, None) is not None:
                parts.append(f"{sign} {getattr(rule, attr)}")
    return ", ".join(p for p in parts if p)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def section_table(name: str, model: Any, comments: Commented) -> list[str]:
    said = comments.keys.get(name, {})
    lines = [f"### `[{name}]`", ""]
    if note := comments.notes.get(name):
        lines += [_cell(note), ""]
    lines += ["| key | default | allowed | what it does |", "| --- | --- | --- | --- |"]
    for key, info in type(model).model_fields.items():
        if info.exclude:
            continue
        default = getattr(model, key)
        shown = "none" if isinstance(default, list) and default and hasattr(default[0], "model_fields") else \
            _toml(default)
        lines.append(f"| `{key}` | `{_cell(shown)}` | {_cell(_allowed(info))} | {_cell(said.get(key, ''))} |")
    return [*lines, ""]


def config_reference() -> str:
    """Every setting of config.toml's sections, with its default, its bounds and config.toml's comment on it."""
    from bizsent.core.config import Settings, default_prices
    from bizsent.core.config_sources import ENV_PREFIX
    from bizsent.core.label import providers

    comments = config_comments((ROOT / "config.toml").read_text(encoding="utf-8"))
    defaults = Settings()
    lines = [_generated_note("the settings models (bizsent.core.config, core.label.providers) and config.toml's "
                             "comments"), "# Configuration reference", "",
             "Every key is optional: the defaults below apply. A key is overridden by an environment variable "
             f"`{ENV_PREFIX}<SECTION>__<KEY>` (e.g. `{ENV_PREFIX}SCRAPE__BOARD=g`), then by a command's flags. "
             "API keys are not settings: each comes from its own environment variable only.", ""]
    for name, info in Settings.model_fields.items():
        if info.exclude or name == "prices":
            continue
        lines += section_table(name, getattr(defaults, name), comments)
        if name == "labeling":
            for provider in providers.registered():
                lines += section_table(f"labeling.{provider.name}", provider.settings(), comments)
                lines[-1:] = [f"Its key: `{provider.secret_env}` in the environment.", ""]
    lines += ["### `[prices.\"MODEL\"]`", "", "Prices belong to models: USD per million tokens in and out, and the "
              "Batch API's factor. A table adds a model or changes keys of a built-in one; a model with no price is "
              "refused. The built-in prices, with their sources, are on [Costs](../costs.md).", "",
        "| model | input_per_mtok | output_per_mtok | batch_discount |", "| --- | --- | --- | --- |"]
    lines += [f"| `{model}` | {p['input_per_mtok']} | {p['output_per_mtok']} | {p.get('batch_discount', 0.5)} |"
              for model, p in default_prices().items()]
    return "\n".join(lines) + "\n"


def keys_reference() -> str:
    """Each screen's keys as its `?` help lists them, in the order of the number keys, then the app's own."""
    from bizsent.tui.app import BizsentApp
    from bizsent.tui.screens import SCREENS
    from bizsent.tui.screens.help import keys_list

    lines = [_generated_note("the console's bindings (bizsent.tui)"), "# Console keys", "",
             "What `?` shows on each screen; `ctrl+p` lists every action of every screen.", ""]
    for number, spec in enumerate(SCREENS, start=1):
        lines += [f"## {number} {spec.title}", "", *keys_list(list(spec.load().BINDINGS)), ""]
    lines += ["## Everywhere", "", *keys_list(list(BizsentApp.BINDINGS)), ""]
    return "\n".join(lines)


def _generated_note(source: str) -> str:
    return f"<!-- generated at build from {source} by docs/hooks.py: edit the code, not this page -->\n"


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: add the generated pages to the site's files."""
    from mkdocs.structure.files import File

    for path, maker in GENERATED.items():
        files.append(File.generated(config, path, content=globals()[maker]()))
    return files
