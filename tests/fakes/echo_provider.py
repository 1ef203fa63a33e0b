"""A provider that is not built in, in one module: an OpenAI-compatible flavour called "echo" with its own
[labeling.echo] section, its own key variable (ECHO_API_KEY, required), its own model price and image-token rule.

This is all a new provider needs; a real one lives in core/label/providers/ and ends with `register(Echo())`
(and one import line in that package's __init__, which sets the order providers are listed in). The tests
register it only while they run, so every other test sees the built-ins alone.
"""

from __future__ import annotations

from bizsent.core.label.labelers.base import Labeler
from bizsent.core.label.providers import Provider
from bizsent.core.sections import ProviderSettings
from pydantic import Field


class EchoSettings(ProviderSettings):
    model: str = "echo-vl-1"
    base_url: str = "https://api.echo.invalid/v1"
    concurrency: int = Field(2, ge=1)


class Echo(Provider):
    name = "echo"
    settings = EchoSettings
    secret_env = "ECHO_API_KEY"
    mark = "E"
    prices = {"echo-vl-1": {"input_per_mtok": 0.05, "output_per_mtok": 0.20, "batch_discount": 1.0}}

    def labeler(self, conf: ProviderSettings, model: str, timeout_s: float) -> Labeler:
        from bizsent.core.label.labelers.openai_chat import OpenAIChatLabeler

        return OpenAIChatLabeler(conf, model, self.api_key(conf), provider=self.name, timeout_s=timeout_s)

    def image_tokens(self, detail: str, width: int, height: int) -> int:
        return 100  # a flat rate per image
