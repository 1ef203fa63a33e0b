"""One rule for every client that sends a secret (issue 19, point 4; core.secure): https, or plain http to this
machine only. The test walks every registered provider (live and batch) and every RunPod client."""

from __future__ import annotations

import pytest
from bizsent.core.config import load_settings
from bizsent.core.errors import BizsentError
from bizsent.core.label import providers
from bizsent.core.pods import api
from bizsent.core.pods.channel import AgentChannel
from bizsent.core.serve.endpoint import EndpointClient

OTHER_HOST = "http://labels.example.com/v1"


@pytest.fixture
def keys(monkeypatch):
    for provider in providers.registered():
        monkeypatch.setenv(provider.secret_env, f"key-of-{provider.name}-123456")
    monkeypatch.setenv("RUNPOD_API_KEY", "rp-key-123456")


def _settings(tmp_path, name: str, url: str):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[data]\ndir = "data"\n', encoding="utf-8")
    return load_settings(cfg, overrides={f"labeling.{name}.base_url": url}, environ={})


@pytest.mark.parametrize("name", providers.names())
def test_every_provider_refuses_to_send_its_key_over_plain_http_to_another_host(tmp_path, keys, name):
    provider = providers.get(name)
    settings = _settings(tmp_path, name, OTHER_HOST)
    with pytest.raises(BizsentError, match=f"refusing to send {provider.secret_env} over plain http"):
        providers.make_labeler(settings, name)
    with pytest.raises(BizsentError, match="refusing to send"):
        providers.require_key(settings, name)
    if provider.supports_batch:
        with pytest.raises(BizsentError, match="refusing to send"):
            providers.batch_backend(settings, name)
    # https anywhere, and plain http to this machine, are fine.
    for url in ("https://labels.example.com/v1", "http://127.0.0.1:9/v1", "http://localhost:9/v1"):
        providers.require_key(_settings(tmp_path, name, url), name)


def test_every_runpod_client_refuses_plain_http_to_another_host(tmp_path, keys):
    settings = _settings(tmp_path, "openai", "https://api.openai.com/v1")
    with pytest.raises(BizsentError, match="refusing to send RUNPOD_API_KEY over plain http"):
        api.RunpodClient("http://rest.example.com/v2", "rp-key-123456")
    with pytest.raises(BizsentError, match="refusing to send RUNPOD_API_KEY over plain http"):
        EndpointClient("http://api.example.com", "abc123def", "rp-key-123456", settings.serverless)
    with pytest.raises(BizsentError, match="refusing to send the run token over plain http"):
        AgentChannel("http://pod-8765.example.com", "run-token")
    EndpointClient("http://127.0.0.1:9", "abc123def", "rp-key-123456", settings.serverless).close()
    AgentChannel("http://127.0.0.1:9", "run-token").close()
