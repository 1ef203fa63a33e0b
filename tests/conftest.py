"""Shared fixtures: a fresh settings object and database per test, all under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings, load_settings
from core.store import open_db


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[data]\ndir = "data"\n', encoding="utf-8")
    return load_settings(cfg, environ={})


@pytest.fixture
def db(settings: Settings):
    database = open_db(settings.db_path)
    yield database
    database.close()
