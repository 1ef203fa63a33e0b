"""The provider registry: every vision LLM API bizsent labels with is a `Provider` registered by name.

A provider declares its config section ([labeling.NAME], a ProviderSettings subclass with its defaults), the
environment variable its key comes from, its default models' prices, whether it has a Batch API, how it counts
image tokens, and how to build its labeler (and batch backend). Everything that lists or tells providers apart
(settings, keys, estimates, batch submission, the console's choices, label origins) asks this registry, and the
database stores a provider as data (labels.source 'api', the provider in the labeler name), so a new provider is
one module: subclass Provider, call `register`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from bizsent.core.errors import BizsentError
from bizsent.core.sections import ProviderSettings, env_secret

if TYPE_CHECKING:
    from bizsent.core.label.batching import Backend
    from bizsent.core.label.labelers.base import Labeler, Outcome


class LabelingView(Protocol):
    """What a provider reads of the loaded [labeling] settings. core.config.LabelingSettings composes the
    providers' sections, so this module names its shape instead of importing it (which would be a circle)."""

    request_timeout_s: float

    def section(self, provider: str) -> ProviderSettings: ...


class SettingsView(Protocol):
    """The loaded settings (core.config.Settings), as far as a provider reads them."""

    @property
    def labeling(self) -> LabelingView: ...


class Provider:
    name: ClassVar[str]  # the config section, the CLI's --provider, the labeler names' prefix; no colon
    settings: ClassVar[type[ProviderSettings]]  # its [labeling.NAME] section, with this provider's defaults
    secret_env: ClassVar[str]  # the environment variable its key comes from (and goes to this host only)
    mark: ClassVar[str]  # one letter for its labels in the console's post lists
    prices: ClassVar[dict[str, dict[str, float]]] = {}  # default [prices."MODEL"] of its models (USD / Mtok)
    supports_batch: ClassVar[bool] = False

    def api_key(self, conf: ProviderSettings) -> str:
        """The key to send; a missing one, or a base_url it may not travel to (core.secure), fails with one line
        before anything is spent."""
        key = env_secret(self.secret_env, self.name)
        self.check_url(conf)
        return key

    def check_url(self, conf: ProviderSettings) -> None:
        from bizsent.core.secure import check_secret_url

        check_secret_url(conf.base_url, self.secret_env, f"labeling.{self.name}.base_url")

    def check_key(self, conf: ProviderSettings) -> None:
        self.api_key(conf)

    def labeler(self, conf: ProviderSettings, model: str, timeout_s: float) -> Labeler:
        raise NotImplementedError

    def outcome_of_raw(self, body: Any) -> Outcome:
        """Judge a saved raw answer (responses/, core.label.recover) as its labeler judged it when it came; by
        default an OpenAI chat-completion body."""
        from bizsent.core.label.labelers.openai_chat import outcome_of_body

        return outcome_of_body(body if isinstance(body, dict) else {})

    def batches(self, conf: ProviderSettings) -> Backend:
        raise BizsentError(f"{self.name} has no batch API; run it live (without --batch)")

    def image_tokens(self, detail: str, width: int, height: int) -> int:
        """Input tokens of one image; by default Qwen2.5-VL-style servers' one token per 28x28 patch."""
        return max(1, round(width / 28)) * max(1, round(height / 28))


_REGISTRY: dict[str, Provider] = {}


def register(provider: Provider) -> Provider:
    if ":" in provider.name or not provider.name:
        raise ValueError(f"provider name {provider.name!r} must be non-empty and without ':' (labeler names)")
    if provider.name in _REGISTRY and type(_REGISTRY[provider.name]) is not type(provider):
        raise ValueError(f"provider {provider.name!r} is already registered")
    _REGISTRY[provider.name] = provider
    return provider


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered() -> tuple[Provider, ...]:
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Provider:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BizsentError(f"unknown provider {name!r}; use {_choices()}") from None


def _choices() -> str:
    known = list(_REGISTRY)
    return " or ".join(known) if len(known) < 3 else ", ".join(known[:-1]) + " or " + known[-1]


def origins() -> tuple[str, ...]:
    """Who labels can be from, as users name them (core.labels.origin): the sources, with every provider in
    place of 'api' ("human", "openai", "gemini", "compatible", "model", "pseudo")."""
    from bizsent.core.labels import API_SOURCE, SOURCES

    return tuple(n for source in SOURCES for n in (names() if source == API_SOURCE else (source,)))


def settings_of(settings: SettingsView, name: str) -> ProviderSettings:
    """The [labeling.NAME] settings of provider `name` (unknown names fail with one line)."""
    return settings.labeling.section(name)


def make_labeler(settings: SettingsView, name: str, model: str | None = None) -> Labeler:
    """The labeler for provider `name` with its own key from the environment; each key goes to its own host."""
    conf = settings_of(settings, name)
    return get(name).labeler(conf, model or conf.model, settings.labeling.request_timeout_s)


def require_key(settings: SettingsView, name: str) -> None:
    """Fail with one line before anything is spent when the provider's key is missing (or may not be sent)."""
    get(name).check_key(settings_of(settings, name))


def batch_backend(settings: SettingsView, name: str) -> Backend:
    return get(name).batches(settings_of(settings, name))
