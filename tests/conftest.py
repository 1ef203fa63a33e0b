"""Shared fixtures: a fresh settings object and database per test, all under tmp_path.

The session starts from a clean environment: a user who trains on RunPod or labels through an API has their
keys and BIZSENT_* overrides in the shell, and a test must never read them (or send them anywhere). Every
variable that bizsent or a provider's SDK reads is removed here, before any test module is imported; a test
that needs one sets it itself. tests/test_env_sealed.py proves it from a dirty shell.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import pytest
from bizsent.core.config import Settings, load_settings
from bizsent.core.store import open_db

# Without the training extra (`scripts/setup dev`, as CI's real-terminal run on a middle Python has) the test modules
# that import torch at the top are left out instead of failing to import; the others skip what needs torch.
collect_ignore = [] if importlib.util.find_spec("torch") else ["test_scoring.py", "test_train.py"]

# Prefixes of every variable bizsent, its providers' SDKs and the RunPod client read (keys, base URLs, orgs).
UNSEALED_PREFIXES = ("BIZSENT_", "RUNPOD_", "OPENAI_", "GEMINI_", "GOOGLE_API_KEY", "GOOGLE_GENAI_")


def _seal_environment() -> list[str]:
    gone = [name for name in os.environ if name.startswith(UNSEALED_PREFIXES)]
    for name in gone:
        del os.environ[name]
    return gone


_seal_environment()

# A suite started in the background of a script (`scripts/test &`) inherits SIGINT ignored, and so would every CLI it
# starts: the Ctrl-C tests would then wait on processes that cannot hear it. Ctrl-C works here as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--snapshot-update", action="store_true", default=False,
                     help="rewrite the console's stored screenshots (tests/snapshots/) instead of comparing with them")


@pytest.fixture
def snapshot_update(request: pytest.FixtureRequest) -> bool:
    """Whether screenshot tests store what they see (tests/screenshots.py)."""
    return bool(request.config.getoption("--snapshot-update"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    cfg = tmp_path / "config.toml"
    # The test reservation (labeling.test_reserve) is off unless a test is about it: 5% of a dozen posts is none.
    # Image text (OCR) is read only where a test asks for it: a background job per console would load the machine.
    cfg.write_text('[data]\ndir = "data"\n[labeling]\ntest_reserve = 0.0\n[images]\nread_text = false\n',
                   encoding="utf-8")
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
