"""How long a training pod runs and what its storage costs, before it is asked for: the one place for the planning
figures (the plan, the Pods screen and `pods list` read them).

Time: a fixed start (boot, the CUDA stack's pip install, the ~16 GB model download) plus 0.6 s per training
example per epoch on an RTX 4090 (7B QLoRA, about 3-4 h for 10k posts at 2 epochs), divided by the GPU type's
relative speed (runpod.gpu_speed). With a network volume (runpod.network_volume_id) the model and the wheels
are on it after the first run, so the start is shorter.

Storage (docs.runpod.io pods/pricing, read 2026-12): a pod's volume bills $0.10/GB/month while it runs and
$0.20/GB/month while it is stopped, though RunPod then reports the pod's `cost` as 0.0; a network volume bills
$0.07/GB/month whether a pod uses it or not. The rates are settings (runpod.volume_usd_per_gb_month_*).
"""

from __future__ import annotations

from bizsent.core.config import Settings

SECONDS_PER_EXAMPLE_EPOCH = 0.6  # on an RTX 4090 (speed 1.0)
# A guess, not measured: scoring is one prefill (core.model.scoring), about a third of a training step's forward
# and backward pass, so a third of the training figure.
SECONDS_PER_SCORED_POST = 0.2
STARTUP_HOURS = 0.3  # boot, pip install of the CUDA stack (~3 GB of wheels), the 7B download (~16 GB)
STARTUP_HOURS_CACHED = 0.1  # the same with wheels and model on a network volume: boot, a local install, loading
HOURS_PER_MONTH = 730  # RunPod's monthly storage rates are billed by the hour


def speed(settings: Settings, gpu: str) -> float:
    """The GPU type's training speed relative to an RTX 4090; an unknown type counts as the slowest configured."""
    table = settings.runpod.gpu_speed
    return table.get(gpu, min(table.values(), default=0.5))


def startup_hours(settings: Settings, cached: bool | None = None) -> float:
    """The fixed start of a run; `cached` defaults to whether a network volume is configured."""
    if cached is None:
        cached = bool(settings.runpod.network_volume_id)
    return STARTUP_HOURS_CACHED if cached else STARTUP_HOURS


def training_hours(train_examples: int, epochs: float, gpu_speed: float = 1.0) -> float:
    return max(train_examples, 0) * epochs * SECONDS_PER_EXAMPLE_EPOCH / 3600 / gpu_speed


def scoring_hours(posts: int, gpu_speed: float = 1.0) -> float:
    return max(posts, 0) * SECONDS_PER_SCORED_POST / 3600 / gpu_speed


def estimate_hours(settings: Settings, gpu: str, train_examples: int, epochs: float, scored_posts: int = 0) -> float:
    """Expected wall-clock hours of a pod on `gpu` training `train_examples` for `epochs` and scoring
    `scored_posts` posts (evaluation, the pool)."""
    rate = speed(settings, gpu)
    return startup_hours(settings) + training_hours(train_examples, epochs, rate) + scoring_hours(scored_posts, rate)


def stopped_usd_per_month(settings: Settings, volume_gb: float | None = None) -> float:
    """What a stopped pod's volume costs a month (RunPod shows it at $0.00/h)."""
    gb = settings.runpod.volume_gb if volume_gb is None else volume_gb
    return gb * settings.runpod.volume_usd_per_gb_month_stopped


def stopped_usd_per_hour(settings: Settings, volume_gb: float | None = None) -> float:
    return stopped_usd_per_month(settings, volume_gb) / HOURS_PER_MONTH


def network_volume_usd_per_month(settings: Settings) -> float:
    conf = settings.runpod
    return conf.network_volume_gb * conf.network_volume_usd_per_gb_month


def startup_lines(settings: Settings, usd_per_hour: float) -> list[str]:
    """The plan's lines on the start-up, with and without a network volume, at the first GPU's price."""
    slow, fast = STARTUP_HOURS, STARTUP_HOURS_CACHED
    monthly = network_volume_usd_per_month(settings)
    conf = settings.runpod
    without = (f"start-up without a network volume: about {slow * 60:.0f} min (${slow * usd_per_hour:.2f}): the CUDA"
               " stack and the 16 GB model are downloaded again on every run")
    with_it = (f"start-up with a network volume: about {fast * 60:.0f} min (${fast * usd_per_hour:.2f}) once it holds"
               f" the model and the wheels; {conf.network_volume_gb} GB bill ${monthly:.2f} a month, used or not")
    if conf.network_volume_id:
        return [f"network volume {conf.network_volume_id} (runpod.network_volume_id) holds the Hugging Face and"
                " wheel caches (Secure Cloud only)", with_it, without]
    return [without, with_it + " (set runpod.network_volume_id)"]
