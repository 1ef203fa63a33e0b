"""The base types of config.toml's sections, and reading a key from its environment variable.

They sit below core.config so that the label providers (core.label.providers) can declare their own
[labeling.NAME] sections and prices without importing config: config composes the providers' sections, so an
import of config from a provider would be a circle.
"""

from __future__ import annotations

import os
from typing import Literal

from bizsent.core.errors import ConfigError
from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    # No setting is infinite or NaN: `inf` (or 1e309, which TOML reads as inf) as a budget cap would be no cap.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelPrice(Section):
    """What one model costs, USD per million tokens; the Batch API bills `batch_discount` times that."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    batch_discount: float = Field(0.5, ge=0, le=1)

    def usd(self, tokens_in: int, tokens_out: int, mode: str = "live") -> float:
        usd = (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1_000_000
        return usd * (self.batch_discount if mode == "batch" else 1.0)


class ProviderSettings(Section):
    """The keys every [labeling.PROVIDER] section has; each provider's own subclass (core.label.providers) adds
    its keys and defaults."""

    model: str
    base_url: str
    concurrency: int = Field(8, ge=1)
    requests_per_minute: int = Field(500, ge=1)
    tokens_per_minute: int = Field(2_000_000, ge=1)
    detail: Literal["low", "high", "auto"] = "low"


def env_secret(variable: str, what: str) -> str:
    """The key in `variable` (secrets come from the environment only), or one line saying to export it."""
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ConfigError(f"{variable} is not set; export it in your shell to use {what}")
    return value


def optional_env_secret(variable: str) -> str | None:
    """The key in `variable` if it is set (local OpenAI-compatible servers usually need none)."""
    return os.environ.get(variable, "").strip() or None
