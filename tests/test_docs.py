"""The docs site builds in strict mode (broken links and anchors, pages missing from the nav, and nav entries
without a page all fail), its generated references cover every command, setting and console key, each of those
is documented where it is defined (help texts, config.toml, binding descriptions), and the README stays a front
door: about two screens, the two commands exactly as the scripts are named, and links that resolve."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _build(config: Path, out: Path) -> subprocess.CompletedProcess:
    # Not -q: a quiet mkdocs does not count warnings, so a strict build with a broken link would pass.
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("mkdocs is not installed: run scripts/setup train (the docs extra)")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d",
                           str(out)], capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
                          timeout=240)


def _commands() -> list[tuple[str, object]]:
    """Every command of the typer app as its full name ("bizsent pods reap"), with its click command."""
    import typer
    from bizsent.cli import app

    out = []

    def walk(command, path: str) -> None:
        ctx = typer.Context(command)
        subs = command.list_commands(ctx) if hasattr(command, "list_commands") else []
        if not subs:
            out.append((path, command))
        for name in subs:
            walk(command.get_command(ctx, name), f"{path} {name}")

    walk(typer.main.get_command(app), "bizsent")
    return out


def _settings() -> list[tuple[str, str, object]]:
    """(section, key, default) of every setting: config's sections and each provider's [labeling.NAME]."""
    from bizsent.core.config import Settings
    from bizsent.core.label import providers

    defaults = Settings()
    sections = [(name, getattr(defaults, name)) for name, info in Settings.model_fields.items()
                if not info.exclude and name != "prices"]
    sections += [(f"labeling.{p.name}", p.settings()) for p in providers.registered()]
    return [(section, key, getattr(model, key)) for section, model in sections for key in type(model).model_fields]


def _bindings() -> list[tuple[str, object]]:
    from bizsent.tui.app import BizsentApp
    from bizsent.tui.screens import SCREENS

    out = [(spec.title, b) for spec in SCREENS for b in spec.load().BINDINGS]
    return out + [("everywhere", b) for b in BizsentApp.BINDINGS]


def test_the_site_builds_strictly_with_every_command_setting_and_key(tmp_path):
    done = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert [name for name, _ in _commands() if f"<code>{name}</code>" not in cli] == []
    config = (site / "reference" / "configuration" / "index.html").read_text(encoding="utf-8")
    for section, key, _ in _settings():
        table = config[config.index(f"<code>[{section}]</code>"):]
        assert f"<code>{key}</code>" in table.split("<h3", 1)[0], f"{section}.{key} is not in the reference"
    keys = (site / "reference" / "keys" / "index.html").read_text(encoding="utf-8")
    assert [title for title, b in _bindings() if b.description not in keys] == []


def test_a_broken_link_fails_the_build(tmp_path):
    """The strict build is what catches a dead link: the same site with one bad link does not build."""
    for part in ("mkdocs.yml", "config.toml"):
        shutil.copy(ROOT / part, tmp_path / part)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "jobs.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [the missing page](missing.md).\n", encoding="utf-8")
    done = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "missing.md" in done.stdout + done.stderr


def test_every_command_and_option_has_help():
    missing = [name for name, command in _commands() if not (command.help or "").strip()]
    missing += [f"{name} {p.opts[0]}" for name, command in _commands() for p in command.params
                if p.param_type_name == "option" and not (getattr(p, "help", "") or "").strip()]
    assert missing == []


def test_every_setting_is_in_config_toml_with_its_default():
    """config.toml is where a user reads the settings: every key is there (a list of tables as its commented
    example), set to the default the code uses."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    written = tomllib.loads(text)
    wrong = []
    for section, key, default in _settings():
        node = written
        for part in section.split("."):
            node = node.get(part, {})
        if key not in node:
            if not re.search(rf"^# \[\[{re.escape(section)}\.{key}\]\]$", text, re.M):
                wrong.append(f"{section}.{key} is missing")
        elif node[key] != (str(default) if isinstance(default, Path) else default):
            wrong.append(f"{section}.{key} = {node[key]!r} in config.toml, {default!r} in the code")
    assert wrong == []


def test_every_console_key_says_what_it_does():
    assert [f"{title}: {b.key}" for title, b in _bindings() if not (b.description or "").strip()] == []


def test_the_costs_page_quotes_the_current_defaults():
    """docs/costs.md's tables name a setting and its default; a price changed in the code changes the page."""
    from bizsent.core.config import Settings

    defaults = Settings().model_dump()
    quoted = re.findall(r"^\| [^|]+ \| `([\w.\"/-]+)` \| ([\d.]+) \|",
                        (ROOT / "docs" / "costs.md").read_text(encoding="utf-8"), re.M)
    assert len(quoted) >= 15
    stale = []
    for setting, shown in quoted:
        node = defaults
        for part in re.findall(r'"[^"]+"|[^.]+', setting):
            node = node[part.strip('"')] if part != '"MODEL"' else next(iter(node.values()))
        if float(shown) != float(node):
            stale.append(f"{setting}: page {shown}, code {node}")
    assert stale == []


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 60, "the README should fit on about two screens: move detail to docs/"
    for script in ("scripts/demo", "scripts/test"):
        assert (ROOT / script).is_file() and re.search(rf"^{script}\s+#", readme, re.M), script
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links and [link for link in links if not (ROOT / link).exists()] == []
