"""Shared fixtures: a fresh settings object and database per test, all under tmp_path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from bizsent.core.config import Settings, load_settings
from bizsent.core.store import open_db

# Without the training extra (`scripts/setup dev`, as CI's real-terminal run on a middle Python has) the test modules
# that import torch at the top are left out instead of failing to import; the others skip what needs torch.
collect_ignore = [] if importlib.util.find_spec("torch") else ["test_scoring.py", "test_train.py"]


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


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The tiny Qwen2.5-VL folder, built once per session."""
    from fakes.train import tiny_model_dir

    return tiny_model_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """The one shared 4-step 4-bit training run on the tiny model (bundle, settings, result)."""
    from fakes.train import trained_run

    return trained_run(tmp_path_factory)


@pytest.fixture
def fake_openai():
    """The fake OpenAI-compatible server (tests/fakes/openai_server.py) on 127.0.0.1; `.url` is its base_url."""
    from fakes.openai_server import FakeOpenAI, Server

    fake = FakeOpenAI()
    with Server(fake) as server:
        fake.url = server.url
        yield fake
