from pathlib import Path

import pytest
from bizsent.core.config import load_settings, secret
from bizsent.core.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_repo_config_matches_the_defaults_and_the_brief():
    settings = load_settings(Path(__file__).parent.parent / "config.toml", environ={})
    assert settings.train.lora_r == 16 and settings.train.lora_alpha == 32
    assert settings.train.target_modules == ["q_proj", "v_proj"]
    assert settings.scrape.requests_per_second <= 1.0
    assert settings.labeling.openai.model and settings.labeling.gemini.model


def test_relative_data_dir_resolves_next_to_the_config_file(tmp_path):
    settings = load_settings(write(tmp_path, '[data]\ndir = "store"\n'), environ={})
    assert settings.db_path == tmp_path / "store" / "bizsent.db"
    assert settings.image_dir == tmp_path / "store" / "images"


def test_unknown_key_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "[scrape]\nbord = 'g'\n"), environ={})
    assert "scrape.bord" in str(err.value) and "\n" not in str(err.value)


def test_api_key_in_the_file_is_refused_with_a_hint(tmp_path):
    with pytest.raises(ConfigError, match="environment variables"):
        load_settings(write(tmp_path, "[labeling.openai]\napi_key = 'sk-x'\n"), environ={})


def test_wrong_type_names_the_key_and_value(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "[train]\nlora_r = 'sixteen'\n"), environ={})
    assert "train.lora_r" in str(err.value) and "sixteen" in str(err.value)


def test_rate_above_the_4chan_rule_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="scrape.requests_per_second"):
        load_settings(write(tmp_path, "[scrape]\nrequests_per_second = 5\n"), environ={})


def test_environment_then_flags_override_the_file(tmp_path):
    path = write(tmp_path, "[scrape]\nboard = 'biz'\nmax_threads = 10\n")
    env = {"BIZSENT_SCRAPE__BOARD": "g", "BIZSENT_TRAIN__TARGET_MODULES": '["q_proj", "k_proj"]'}
    settings = load_settings(path, overrides={"scrape.max_threads": 3}, environ=env)
    assert settings.scrape.board == "g"
    assert settings.scrape.max_threads == 3
    assert settings.train.target_modules == ["q_proj", "k_proj"]


def test_invalid_toml_and_missing_file_are_user_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[scrape\n"), environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_secrets_come_from_the_environment_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        secret("openai")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    assert secret("openai") == "test-key"
