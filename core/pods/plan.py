"""What a training pod will cost before it is asked for: the GPU candidates in fallback order with their prices,
the ones refused (above runpod.max_usd_per_hour, not offered), the expected hours and dollars, and the kill
switches, rendered for the user to confirm."""

from __future__ import annotations

from dataclasses import dataclass, field

from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.pods.api import GpuOffer, RunpodClient

# The expected-time model. Planning figure: 7B QLoRA on an RTX 4090 takes 3-4 h for ~10k posts at the default
# 2 epochs, i.e. about 0.6 s per example per epoch, plus a fixed start (boot, pip install, ~16 GB model
# download). Faster GPUs finish sooner, so for them this errs on the expensive side, which is the safe side.
SECONDS_PER_EXAMPLE_EPOCH = 0.6
STARTUP_HOURS = 0.3


def estimate_hours(train_examples: int, epochs: float) -> float:
    """Expected wall-clock hours of a pod training `train_examples` for `epochs` (see the constants above)."""
    return STARTUP_HOURS + max(train_examples, 0) * epochs * SECONDS_PER_EXAMPLE_EPOCH / 3600


@dataclass(frozen=True, slots=True)
class Candidate:
    gpu: str
    cloud: str
    usd_per_hour: float
    availability: str | None

    def label(self) -> str:
        stock = f", stock {self.availability.lower()}" if self.availability else ""
        return f"{self.gpu} ({self.cloud}, ${self.usd_per_hour:.2f}/h{stock})"


@dataclass(frozen=True, slots=True)
class PodPlan:
    run_name: str
    pod_name: str
    candidates: list[Candidate]  # tried in this order
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (gpu, cloud, why)
    train_examples: int = 0
    epochs: float = 0.0
    hours: float = 0.0  # expected
    max_hours: float = 0.0
    max_dollars: float = 0.0
    idle_min: float = 0.0
    grace_min: float = 0.0

    @property
    def first(self) -> Candidate:
        return self.candidates[0]

    @property
    def expected_usd(self) -> float:
        """At the first candidate's price, for the expected hours, but never past the kill switches."""
        return min(self.first.usd_per_hour * min(self.hours, self.max_hours), self.max_dollars)

    @property
    def worst_usd(self) -> float:
        """What the pod can cost at most: the kill switches stop it at max_hours or max_dollars."""
        worst_rate = max(c.usd_per_hour for c in self.candidates)
        return min(worst_rate * self.max_hours, self.max_dollars)

    def render(self) -> str:
        lines = [f"pod {self.pod_name}: {self.train_examples:,} training examples x {self.epochs:g} epochs,"
                 f" about {self.hours:.1f} h"]
        lines.append("GPUs, tried in order until one is available:")
        lines += [f"  {i}. {c.label()}" for i, c in enumerate(self.candidates, 1)]
        lines += [f"  skipped: {gpu} ({cloud}): {why}" for gpu, cloud, why in self.refused]
        lines.append(f"expected cost: about ${self.expected_usd:.2f} on {self.first.gpu} ({self.first.cloud});"
                     f" at most ${self.worst_usd:.2f}")
        if self.hours > self.max_hours:
            lines.append(f"warning: the estimate ({self.hours:.1f} h) is past max_hours ({self.max_hours:g} h): the"
                         " pod will stop before training ends; raise runpod.max_hours or train on fewer examples")
        lines.append(f"kill switches (the pod's own watchdog, even if this machine goes away): it stops the pod"
                     f" after {self.max_hours:g} h, at ${self.max_dollars:.2f}, after {self.idle_min:g} min without"
                     f" progress, and {self.grace_min:g} min after training ends if the adapter is not collected;"
                     " it terminates the pod once the adapter is collected")
        return "\n".join(lines)


def candidates(offers: dict[str, dict[str, GpuOffer]], settings: Settings
               ) -> tuple[list[Candidate], list[tuple[str, str, str]]]:
    """The configured (GPU type, cloud type) pairs in fallback order, and the refused ones with the reason.

    `offers` maps cloud type -> GPU id -> its catalog entry (with that cloud's stock). Order: every GPU type of
    the first cloud type, then of the next; within a cloud, configured order, but types the catalog reports out
    of stock go last (the catalog orders candidates, it reserves nothing, so they are still tried).
    """
    conf = settings.runpod
    chosen: list[Candidate] = []
    refused: list[tuple[str, str, str]] = []
    for cloud in conf.cloud_types:
        in_cloud: list[Candidate] = []
        for gpu in conf.gpu_types:
            offer = offers.get(cloud, {}).get(gpu)
            if offer is None:
                refused.append((gpu, cloud, "not in RunPod's GPU catalog (check the exact id with `bizsent pods"
                                            " gpus`)"))
            elif not offer.offered.get(cloud):
                refused.append((gpu, cloud, "not offered in this cloud"))
            elif offer.usd_per_hour[cloud] > conf.max_usd_per_hour:
                refused.append((gpu, cloud, f"${offer.usd_per_hour[cloud]:.2f}/h is above runpod.max_usd_per_hour"
                                            f" (${conf.max_usd_per_hour:.2f})"))
            else:
                in_cloud.append(Candidate(gpu, cloud, offer.usd_per_hour[cloud], offer.availability))
        in_cloud.sort(key=lambda c: c.availability == "NONE")  # stable: configured order otherwise
        chosen += in_cloud
    return chosen, refused


def read_offers(client: RunpodClient, settings: Settings) -> dict[str, dict[str, GpuOffer]]:
    """The catalog once per configured cloud type (stock is per cloud)."""
    return {cloud: {o.id: o for o in client.gpu_types(cloud)} for cloud in settings.runpod.cloud_types}


def plan_pod(client: RunpodClient, settings: Settings, run_name: str, train_examples: int,
             epochs: float | None = None) -> PodPlan:
    """Price the configured GPUs and estimate the run; BizsentError (one line) if no GPU may be used."""
    conf = settings.runpod
    chosen, refused = candidates(read_offers(client, settings), settings)
    if not chosen:
        reasons = "; ".join(f"{g} ({c}): {why}" for g, c, why in refused)
        raise BizsentError(f"no configured GPU can be used: {reasons}; change runpod.gpu_types or"
                           " runpod.max_usd_per_hour")
    epochs = settings.train.epochs if epochs is None else epochs
    return PodPlan(run_name=run_name, pod_name=pod_name(settings, run_name), candidates=chosen, refused=refused,
                   train_examples=train_examples, epochs=epochs, hours=estimate_hours(train_examples, epochs),
                   max_hours=conf.max_hours, max_dollars=conf.max_dollars, idle_min=conf.idle_timeout_min,
                   grace_min=conf.grace_min)


def pod_name(settings: Settings, run_name: str) -> str:
    if not run_name or any(ch.isspace() for ch in run_name):
        raise BizsentError(f"run name {run_name!r} cannot name a pod; use letters, digits, '-' or '_'")
    return f"{settings.runpod.name_prefix}{run_name}"
