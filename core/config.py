"""Typed settings loaded from config.toml, then environment variables, then CLI flags.

Config composes: the section base types live in core.sections, and each label provider declares its own
[labeling.NAME] section, key variable and default prices (core.label.providers), which this module gathers.
Secrets are not settings: API keys come only from the environment (see `secret`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from bizsent.core.config_sources import coerce, env_overrides, format_error, set_dotted
from bizsent.core.errors import ConfigError
from bizsent.core.label import providers
from bizsent.core.sections import ModelPrice, ProviderSettings, Section, env_secret, optional_env_secret
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"
# The secrets that are not a label provider's; each provider declares its own (core.label.providers), and each
# key goes to its own host only.
SECRET_ENV = {"runpod": "RUNPOD_API_KEY"}


class DataSettings(Section):
    dir: Path = Path("data")
    db: str = "bizsent.db"
    images: str = "images"


class ScrapeSettings(Section):
    board: str = "biz"
    api_base: str = "https://a.4cdn.org"
    image_base: str = "https://i.4cdn.org"
    requests_per_second: float = Field(1.0, gt=0, le=1.0)
    max_threads: int = Field(150, ge=1)
    include_archive: bool = False
    download_images: bool = True
    timeout_s: float = Field(30.0, gt=0)
    max_image_mb: float = Field(8.0, gt=0)
    retry_failed_after_min: float = Field(60.0, ge=0)
    user_agent: str = "bizsent/0.1 (research; read-only)"


class ImageSettings(Section):
    thumbnail_px: int = Field(320, ge=32)
    max_pixels: int = Field(448 * 448, ge=28 * 28)
    # Read the words on new images (OCR, the optional `ocr` extra) in a background job the console, `demo` and
    # `scrape` start: jobs.read_images.
    read_text: bool = True


class LabelingSettings(Section):
    """[labeling], and one [labeling.PROVIDER] section per registered provider (core.label.providers): each
    section may set any subset of keys, the rest keep that provider's defaults."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    provider: str = "openai"
    budget_total_usd: float = Field(10.0, ge=0)
    budget_job_usd: float = Field(5.0, ge=0)
    few_shot: int = Field(0, ge=0, le=20)
    max_retries: int = Field(4, ge=0)
    request_timeout_s: float = Field(60.0, gt=0)  # one live request; past it its fate is unknown (maybe paid)
    max_consecutive_failures: int = Field(5, ge=1)  # unreachable server this many times in a row: the run stops
    # Share of all candidate posts reserved for the human test set, drawn up front (core.labels.reserved_for_test):
    # the Label screen's test session walks only these, every other session never shows them. 0 turns it off.
    test_reserve: float = Field(0.05, ge=0, le=1)
    # The Label screen shows a post answered earlier again, blind, after every this many answers (0: never):
    # core.label.repeats.
    repeat_every: int = Field(20, ge=0)

    @model_validator(mode="wrap")
    @classmethod
    def _provider_sections(cls, data: Any, handler: Any) -> Any:
        """The registry, not this class, knows the providers: their sections are validated by their own models
        (errors keep their place, labeling.NAME.KEY); any other unknown key is refused as usual."""
        if not isinstance(data, dict):
            return handler(data)
        data = dict(data)
        sections: dict[str, ProviderSettings] = {}
        problems: list[InitErrorDetails] = []
        for provider in providers.registered():
            try:
                sections[provider.name] = provider.settings.model_validate(data.pop(provider.name, None) or {})
            except ValidationError as err:
                problems += [InitErrorDetails(type=e["type"], loc=(provider.name, *e["loc"]), input=e["input"],
                                              ctx=e.get("ctx", {})) for e in err.errors()]
        problems += [InitErrorDetails(type="extra_forbidden", loc=(key,), input=data[key])
                     for key in data if key not in cls.model_fields]
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        model = handler(data)
        model.__pydantic_extra__.update(sections)
        return model

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in providers.names():
            raise PydanticCustomError("unknown_provider", "input should be {expected}",
                                      {"expected": ", ".join(repr(n) for n in providers.names())})
        return value

    def section(self, provider: str) -> ProviderSettings:
        """The [labeling.PROVIDER] settings of a registered provider."""
        declared = providers.get(provider)  # an unknown name fails with one line
        known = (self.__pydantic_extra__ or {}).get(provider)
        return known if known is not None else declared.settings()


CloudType = Literal["COMMUNITY", "SECURE"]
TorchCuda = Literal["12.6", "12.8", "13.0"]  # the CUDA builds PyTorch publishes for the pinned torch


class RunpodSettings(Section):
    api_base: str = "https://api.runpod.io"  # REST v2 lives under {api_base}/v2
    # Tried in this order for each cloud type in `cloud_types` (all GPU types of the first cloud type first):
    # "There are no longer any instances available" is the usual answer to a create, so one type is not enough.
    gpu_types: list[str] = Field(default_factory=lambda: [
        "NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090", "NVIDIA RTX A5000"], min_length=1)
    cloud_types: list[CloudType] = Field(default_factory=lambda: ["COMMUNITY", "SECURE"], min_length=1)
    image: str = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
    max_usd_per_hour: float = Field(0.80, gt=0)
    # Kill switches, enforced twice (RunPod's stop-after settings never held): the laptop's brake (core.pods.brake)
    # terminates the pod it watches past max_hours, max_dollars or idle_timeout_min; the pod's own watchdog STOPS
    # the pod (GPU released, volume with the adapter kept) at the same caps even when the laptop is gone, and
    # grace_min after training ended with the adapter not collected; it terminates the pod once the laptop has
    # collected the adapter. `bizsent pods reap` terminates stopped leftovers.
    max_hours: float = Field(5.0, gt=0)
    max_dollars: float = Field(5.0, gt=0)
    idle_timeout_min: float = Field(20.0, gt=0)
    grace_min: float = Field(30.0, gt=0)
    boot_timeout_min: float = Field(15.0, gt=0)  # a pod not RUNNING by then is terminated
    # While a run trains, the laptop asks the agent this often (metrics, health, cost) ...
    poll_s: float = Field(5.0, gt=0)
    # ... and gives up on an agent that has not answered for this long (the pod crashed): it terminates the pod.
    agent_lost_min: float = Field(5.0, gt=0)
    # The longest one call to RunPod's API waits for an answer, retries included; then it fails in one line.
    timeout_s: float = Field(30.0, gt=0, allow_inf_nan=False)
    volume_gb: int = Field(40, ge=10)
    disk_gb: int = Field(30, ge=1)
    name_prefix: str = Field("bizsent-", min_length=1)
    # Where the laptop reaches the pod's agent: RunPod's HTTP proxy (tests point it at the fake server's proxy).
    proxy_url: str = "https://{pod_id}-{port}.proxy.runpod.net"
    agent_port: int = Field(8765, ge=1, le=65535)
    install_deps: bool = True  # a real pod pip-installs the training extra; tests run without
    # The pod's torch build (PyTorch's per-CUDA index, the same torch version as constraints.txt) and the least
    # CUDA version a host's driver must support, asked of RunPod at create (gpu.minCudaVersion) and checked by the
    # agent with nvidia-smi before training. 12.8 (driver 570+): PyPI's CUDA 13.0 build needs driver 580+, which
    # RunPod's hosts mostly lack (docs/pods.md "Inside the pod").
    torch_cuda: TorchCuda = "12.8"
    # The agent refuses to train unless torch uses the GPU and it fits the recipe; false only for tests on machines
    # without a GPU (the driver-versus-build check runs either way).
    require_gpu: bool = True
    serverless_base: str = "https://api.runpod.ai"
    # Training speed per GPU type relative to an RTX 4090, for the plan's time and cost per GPU (core.pods.estimate);
    # a type not listed counts as the slowest listed. Planning figures, not measured here: the 3090 and A5000 train
    # 1.5-2x slower than a 4090 (public fp16 training benchmarks, e.g. lambdalabs.com/gpu-benchmarks).
    gpu_speed: dict[str, float] = Field(default_factory=lambda: {
        "NVIDIA GeForce RTX 4090": 1.0, "NVIDIA GeForce RTX 3090": 0.6, "NVIDIA RTX A5000": 0.5})
    # Storage (docs.runpod.io pods/pricing): a pod's volume bills while it runs and, at twice the rate, while it
    # is stopped (RunPod then shows the pod's cost as $0.00/h).
    volume_usd_per_gb_month_running: float = Field(0.10, ge=0)
    volume_usd_per_gb_month_stopped: float = Field(0.20, ge=0)
    # An optional network volume (its id from the RunPod console; Secure Cloud only) holds the Hugging Face cache
    # and pip's wheel cache across runs, so the model is downloaded once; it bills per GB-month, used or not.
    network_volume_id: str = ""
    network_volume_gb: int = Field(50, ge=1)
    network_volume_usd_per_gb_month: float = Field(0.07, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _single_type(cls, value: Any) -> Any:
        """The one-GPU settings of older configs (gpu_type, cloud_type) become one-item fallback lists."""
        if not isinstance(value, dict):
            return value
        value = dict(value)
        for old, new in (("gpu_type", "gpu_types"), ("cloud_type", "cloud_types")):
            if old in value:
                if new in value:
                    raise ValueError(f"set {new} only ({old} is its older one-value form)")
                one = value.pop(old)
                value[new] = ["COMMUNITY", "SECURE"] if one == "ALL" else [one]
        return value


class ServerlessSettings(Section):
    """Calling a deployed endpoint (`bizsent predict --endpoint`): its price, for the estimate shown before
    sending, and how long to wait for an answer."""
    usd_per_s: float = Field(0.00031, gt=0)
    s_per_post: float = Field(0.5, gt=0)
    cold_start_s: float = Field(60.0, ge=0)
    wait_s: float = Field(90.0, ge=1, le=300)
    max_wait_s: float = Field(300.0, gt=0)
    poll_s: float = Field(2.0, gt=0)


class TrainSettings(Section):
    base_model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    load_in_4bit: bool = True
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "v_proj"]
    # The vision recipe (docs/pods.md "The 7B recipe"): the tower stays out of 4-bit (bf16, frozen) and learns through
    # LoRA on its attention and on the merger that projects it into the language model. Names are peft suffixes
    # that match only the tower (Qwen2.5-VL's language model has no qkv, attn.proj or merger).
    quantize_vision: bool = False
    vision_target_modules: list[str] = ["attn.qkv", "attn.proj", "merger.mlp.0", "merger.mlp.2"]
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(2.0, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(4, ge=1)
    max_pixels: int = Field(448 * 448, ge=28 * 28)
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    # Human labels drawn once (by a fixed hash of the post's repost group) into the dev split: everyday model
    # choice (`train --local` reports on it); the test split is scored only on request.
    dev_fraction: float = Field(0.2, ge=0, lt=0.5)
    min_label_confidence: float = Field(0.6, ge=0, le=1)
    seed: int = 42
    # Checkpoints (adapter + optimizer + scheduler) every save_steps optimiser steps, the newest save_total_limit
    # kept; a rerun of the same run folder resumes from the newest (a preempted or crashed pod loses < save_steps).
    save_steps: int = Field(50, ge=1)
    save_total_limit: int = Field(2, ge=1)
    # Refuse to train when torch sees no GPU, instead of training in fp32 on the CPU. A pod's agent sets it (with
    # runpod.require_gpu); `train --local` leaves it off, so the tiny model trains on a laptop.
    require_cuda: bool = False


class ArchiveSettings(Section):
    """[archive]: the /biz/ archive mirror `bizsent backfill` reads (warosu's page shape, core.collect.archive)."""

    base_url: str = "https://warosu.org"
    board: str = "biz"
    requests_per_second: float = Field(1.0, gt=0, le=1.0)
    timeout_s: float = Field(30.0, gt=0)
    download_images: bool = True
    # For the estimate shown before a backfill starts: what one day of /biz/ usually holds (the archive's own
    # counts are unknown until its pages are read).
    threads_per_day: int = Field(700, ge=1)
    images_per_thread: float = Field(6.0, ge=0)
    mb_per_image: float = Field(0.25, ge=0)


class LiveSettings(Section):
    """[live]: scoring new posts as they arrive (jobs.live_predict), after every collection round."""

    endpoint: str = ""  # a deployed RunPod serverless endpoint ID; empty: no live predictions
    daily_budget_usd: float = Field(1.0, ge=0)  # serverless spend per UTC day, counted from the ledger
    max_posts_per_round: int = Field(500, ge=1)
    # What one post of the 7B costs on a CPU (fp32, no GPU), for the refusal that says why it is not done there:
    # an estimate (7B parameters, about 1,000 tokens a post, a laptop's few hundred GFLOP/s), not a measurement.
    cpu_s_per_post_7b: float = Field(60.0, gt=0)


class CoinEntry(Section):
    """One coin of the list (core/coins/coins.toml explains each key)."""

    symbol: str = Field(min_length=1, max_length=12, pattern=r"^[A-Za-z0-9]+$")
    name: str = Field(min_length=1)
    names: list[str] = []
    tickers: list[str] = []
    ambiguous: list[str] = []
    strict: bool = False


class CoinsSettings(Section):
    """[coins]: which coins a post mentions (core.coins). `extra` adds coins to the shipped list, or replaces
    one with the same symbol."""

    extra: list[CoinEntry] = []
    unlisted_cashtags: bool = True  # a $TAG not on the list still counts, under its own symbol


class TuiSettings(Section):
    image_renderer: Literal["auto", "kitty", "sixel", "halfcell", "unicode"] = "auto"
    refresh_s: float = Field(1.0, gt=0)
    theme: Literal["dark", "light"] = "dark"  # ctrl+p "theme" tries others for the session
    # [tui.keymap]: binding id -> keys, e.g. "nav.down" = "down,j,n"; the ids are listed by `?` on each screen
    keymap: dict[str, str] = Field(default_factory=dict)


class Settings(Section):
    data: DataSettings = Field(default_factory=DataSettings)
    scrape: ScrapeSettings = Field(default_factory=ScrapeSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    labeling: LabelingSettings = Field(default_factory=LabelingSettings)
    runpod: RunpodSettings = Field(default_factory=RunpodSettings)
    serverless: ServerlessSettings = Field(default_factory=ServerlessSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    tui: TuiSettings = Field(default_factory=TuiSettings)
    coins: CoinsSettings = Field(default_factory=CoinsSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: {
        m: ModelPrice.model_validate(p) for m, p in default_prices().items()})
    # Where the settings came from; relative data paths resolve against its folder.
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("prices", mode="before")
    @classmethod
    def _add_default_prices(cls, value: Any) -> Any:
        """A [prices."MODEL"] table adds a model or changes keys of a built-in one; the other defaults stay."""
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {m: dict(p) for m, p in default_prices().items()}
        for model, price in value.items():
            merged[model] = {**merged[model], **price} if model in merged and isinstance(price, dict) else price
        return merged

    def price(self, model: str) -> ModelPrice:
        """The price of `model`: the one lookup every estimate, dialog, ledger row and cost view uses."""
        known = self.prices.get(model)
        if known is None:
            where = self.source.name if self.source else "config.toml"
            raise ConfigError(f'no price known for model {model}; add [prices."{model}"] input_per_mtok = … '
                              f"output_per_mtok = … (USD per million tokens, from the provider's price page) to "
                              f"{where}")
        return known

    @property
    def data_dir(self) -> Path:
        base = self.source.parent if self.source else Path.cwd()
        return (base / self.data.dir.expanduser()).resolve()

    @property
    def db_path(self) -> Path:
        return self.data_dir / self.data.db

    @property
    def image_dir(self) -> Path:
        return self.data_dir / self.data.images


def load_settings(
    path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Read config.toml (or `path`), apply BIZSENT_* environment variables, then `overrides` (dotted keys)."""
    path = Path(path) if path else Path(os.environ.get("BIZSENT_CONFIG", DEFAULT_CONFIG))
    tree: dict[str, Any] = {}
    if path.exists():
        try:
            tree = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not a text file (byte {exc.start} is not UTF-8); pass a TOML config file"
                              " to --config") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path} ({exc.strerror or exc}); make it readable") from None
    elif path != DEFAULT_CONFIG:
        raise ConfigError(f"config file {path} does not exist; pass an existing file to --config")
    origins: dict[str, str] = {}
    for dotted, (value, name) in env_overrides(dict(os.environ if environ is None else environ)).items():
        origins[dotted] = f"environment variable {name}"
        set_dotted(tree, dotted, coerce(value), origins[dotted])
    for dotted, value in (overrides or {}).items():
        origins[dotted] = f"command-line option for {dotted}"
        set_dotted(tree, dotted, value, origins[dotted])
    try:
        settings = Settings.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(format_error(err, str(path), origins)) from None
    settings.source = path.resolve()
    return settings


def default_prices() -> dict[str, dict[str, float]]:
    """Prices belong to models, not providers: the registered providers' default models' prices, which
    config.toml's [prices."MODEL"] tables add to or replace."""
    return {model: price for p in providers.registered() for model, price in p.prices.items()}


def secret_variable(name: str) -> str:
    """The environment variable that holds the key of `name`: a label provider or another service (runpod)."""
    if name in SECRET_ENV:
        return SECRET_ENV[name]
    return providers.get(name).secret_env


def secret_variables() -> set[str]:
    """Every variable a bizsent key is read from (what logs and notifications must never show)."""
    return set(SECRET_ENV.values()) | {p.secret_env for p in providers.registered()}


def secret(name: str) -> str:
    """The API key for `name`, from its environment variable only."""
    return env_secret(secret_variable(name), name)


def optional_secret(name: str) -> str | None:
    """The key for `name` if its variable is set (local OpenAI-compatible servers usually need none)."""
    return optional_env_secret(secret_variable(name))
