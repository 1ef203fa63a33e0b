"""Any OpenAI-compatible server (vLLM, Ollama, LM Studio, a hosted one): chat completions at its base_url, live
only (no batch API). It never gets OPENAI_API_KEY, only its own variable, and that only over https or to this
machine (local servers accept any key, so none is needed)."""

from __future__ import annotations

from bizsent.core.label.labelers.base import Labeler
from bizsent.core.label.providers.base import Provider, register
from bizsent.core.label.providers.openai import ReasoningEffort
from bizsent.core.sections import ProviderSettings, optional_env_secret
from pydantic import Field


class CompatibleSettings(ProviderSettings):
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    base_url: str = "http://127.0.0.1:8000/v1"
    concurrency: int = Field(4, ge=1)
    reasoning_effort: ReasoningEffort = "default"  # local servers mostly ignore or reject it


class Compatible(Provider):
    name = "compatible"
    settings = CompatibleSettings
    secret_env = "BIZSENT_COMPATIBLE_API_KEY"
    mark = "C"
    # its default model on a server you run yourself: no per-token bill
    prices = {"Qwen/Qwen2.5-VL-7B-Instruct": {"input_per_mtok": 0.0, "output_per_mtok": 0.0, "batch_discount": 1.0}}

    def api_key(self, conf: ProviderSettings) -> str:
        """Its variable, if set, and only over https or to this machine; else a placeholder (no key needed)."""
        key = optional_env_secret(self.secret_env)
        if key is None:
            return "not-needed"
        self.check_url(conf)
        return key

    def labeler(self, conf: ProviderSettings, model: str, timeout_s: float) -> Labeler:
        from bizsent.core.label.labelers.openai_chat import OpenAIChatLabeler

        return OpenAIChatLabeler(conf, model, self.api_key(conf), provider=self.name, timeout_s=timeout_s)


register(Compatible())
