"""What a training pod will cost before it is asked for: the GPU candidates in fallback order with their prices
and the hours and dollars expected on each (core.pods.estimate), the ones refused (above
runpod.max_usd_per_hour, not offered, estimated past runpod.max_hours: the run would be stopped before it ends),
the start-up with and without a network volume, and the kill switches, rendered for the user to confirm."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.pods import estimate
from bizsent.core.pods.api import GpuOffer, RunpodClient


@dataclass(frozen=True, slots=True)
class Candidate:
    gpu: str
    cloud: str
    usd_per_hour: float
    availability: str | None
    hours: float = 0.0  # expected on this GPU (0: not estimated, as in `pods gpus`)

    @property
    def usd(self) -> float:
        return self.usd_per_hour * self.hours

    def label(self) -> str:
        stock = f", stock {self.availability.lower()}" if self.availability else ""
        guess = f": about {self.hours:.1f} h, ${self.usd:.2f}" if self.hours else ""
        return f"{self.gpu} ({self.cloud}, ${self.usd_per_hour:.2f}/h{stock}){guess}"


@dataclass(frozen=True, slots=True)
class PodPlan:
    run_name: str
    pod_name: str
    candidates: list[Candidate]  # tried in this order
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (gpu, cloud, why)
    train_examples: int = 0
    epochs: float = 0.0
    scored_posts: int = 0  # posts the pod scores (evaluation, pool scoring), beside or instead of training
    hours: float = 0.0  # expected on the first candidate
    max_hours: float = 0.0
    max_dollars: float = 0.0
    idle_min: float = 0.0
    grace_min: float = 0.0
    startup: list[str] = field(default_factory=list)  # the start-up with and without a network volume

    @property
    def first(self) -> Candidate:
        return self.candidates[0]

    @property
    def expected_usd(self) -> float:
        """On the first candidate, for its expected hours, but never past the kill switches."""
        return min(self.first.usd_per_hour * min(self.first.hours or self.hours, self.max_hours), self.max_dollars)

    @property
    def worst_usd(self) -> float:
        """What the pod can cost at most: the kill switches stop it at max_hours or max_dollars."""
        worst_rate = max(c.usd_per_hour for c in self.candidates)
        return min(worst_rate * self.max_hours, self.max_dollars)

    @property
    def result(self) -> str:
        """What the pod hands back, which the watchdog waits for to be collected."""
        if not self.train_examples:
            return "the scores"
        return "the adapter and the scores" if self.scored_posts else "the adapter"

    def render(self) -> str:
        are, they = ("is", "it") if self.result == "the adapter" else ("are", "they")
        epochs = f"{round(self.epochs, 1):g}"  # one decimal, rounded; a whole number after rounding reads whole
        work = [f"{self.train_examples:,} training examples x {epochs} epochs"] if self.train_examples else []
        work += [f"{self.scored_posts:,} posts to score"] if self.scored_posts else []
        lines = [f"pod {self.pod_name}: {' and '.join(work)}, about {self.hours:.1f} h on {self.first.gpu}"]
        lines.append("GPUs, tried in order until one is available (time per GPU type: runpod.gpu_speed):")
        lines += [f"  {i}. {c.label()}" for i, c in enumerate(self.candidates, 1)]
        lines += [f"  skipped: {gpu} ({cloud}): {why}" for gpu, cloud, why in self.refused]
        lines += self.startup
        lines.append(f"expected cost: about ${self.expected_usd:.2f} on {self.first.gpu} ({self.first.cloud});"
                     f" at most ${self.worst_usd:.2f}")
        lines.append(f"kill switches (this machine while it watches the run, and the pod's own watchdog even if this"
                     f" machine goes away): each stops the pod after {self.max_hours:g} h, at ${self.max_dollars:.2f},"
                     f" after {self.idle_min:g} min without progress; the watchdog also {self.grace_min:g} min after"
                     f" {'training' if self.train_examples else 'scoring'} ends if {self.result} {are} not collected,"
                     f" and terminates the pod once {they} {are} collected")
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
            if conf.network_volume_id and cloud != "SECURE":
                refused.append((gpu, cloud, "a network volume (runpod.network_volume_id) needs Secure Cloud"))
            elif offer is None:
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
             epochs: float | None = None, *, scored_posts: int = 0) -> PodPlan:
    """Price the configured GPUs and estimate the run; BizsentError (one line) if no GPU may be used."""
    conf = settings.runpod
    chosen, refused = candidates(read_offers(client, settings), settings)
    if not chosen:
        reasons = "; ".join(f"{g} ({c}): {why}" for g, c, why in refused)
        raise BizsentError(f"no configured GPU can be used: {reasons}; change runpod.gpu_types or"
                           " runpod.max_usd_per_hour")
    epochs = settings.train.epochs if epochs is None else epochs
    priced = [replace(c, hours=estimate.estimate_hours(settings, c.gpu, train_examples, epochs, scored_posts))
              for c in chosen]
    fits = [c for c in priced if c.hours <= conf.max_hours]
    if not fits:
        each = ", ".join(f"{c.gpu} {c.hours:.1f} h" for c in priced[:3])
        raise BizsentError(f"this run would pass runpod.max_hours ({conf.max_hours:g} h) on every GPU it may get"
                           f" ({each}) and be stopped before it ends; raise runpod.max_hours, or train fewer steps"
                           " (--max-steps) or examples, or score fewer posts")
    refused += [(c.gpu, c.cloud, f"about {c.hours:.1f} h here, past runpod.max_hours ({conf.max_hours:g} h): it"
                                 " would be stopped before training ends") for c in priced if c not in fits]
    return PodPlan(run_name=run_name, pod_name=pod_name(settings, run_name), candidates=fits, refused=refused,
                   train_examples=train_examples, epochs=epochs, scored_posts=scored_posts, hours=fits[0].hours,
                   max_hours=conf.max_hours, max_dollars=conf.max_dollars, idle_min=conf.idle_timeout_min,
                   grace_min=conf.grace_min, startup=estimate.startup_lines(settings, fits[0].usd_per_hour))


def pod_name(settings: Settings, run_name: str) -> str:
    if not run_name or any(ch.isspace() for ch in run_name):
        raise BizsentError(f"run name {run_name!r} cannot name a pod; use letters, digits, '-' or '_'")
    return f"{settings.runpod.name_prefix}{run_name}"
