"""Training on a RunPod GPU as one job of kind 'pod': `bizsent train --pod` runs it in the foreground, `bizsent
pods start` and the console's Pods screen detached (`launch`); `--job ID` resumes it.

The chain: plan (the dataset bundle built as `train --local` builds it, its training examples priced on the
configured GPUs) -> confirm -> create the pod (its id stored the moment RunPod answers) -> wait until it runs ->
upload wheel, bundle and job.json -> start -> watch (jobs.pod_watch: metric events into a `train` run of the
store, the pod's log into data/runs/<run>/pod.log, cost into the pod row) -> download the adapter, verify its
sha256, register the run as done -> mark it collected -> terminate the pod and confirm with RunPod that it is gone.

Whatever ends the chain (an error, a cancel, Ctrl-C) terminates the pod in `finally` and waits for RunPod's
confirmation; only a killed laptop process leaves it, to its own watchdog (core/pods/agent/watchdog.py), which stops it,
and to `bizsent pods reap`. A resumed job reattaches to the pod its row names instead of creating a second one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError, Cancelled
from bizsent.core.model.events import create_run, finish_run, reopen_run, set_params
from bizsent.core.pods import api, launch, plan, records
from bizsent.core.pods.agent.job import RUN_NAME
from bizsent.core.pods.channel import AgentChannel
from bizsent.core.pods.launch import PodHandle
from bizsent.core.pods.payload import Payload, prepare_payload
from bizsent.core.pods.views import run_log_path
from bizsent.jobs import rows
from bizsent.jobs.heartbeat import running
from bizsent.jobs.pod_watch import JobWriter, LogTail, Progress, watch

POD = "pod"


class PodInterrupted(Cancelled):
    """Ctrl-C stopped a pod run; its pod was terminated first (the message says so, with the cost)."""


@dataclass(frozen=True, slots=True)
class PodRunPlan:
    name: str
    bundle: Path
    train_examples: int
    max_steps: int | None
    total_steps: int
    pod: plan.PodPlan

    def render(self) -> list[str]:
        limit = f" (--max-steps {self.max_steps})" if self.max_steps else ""
        return [f"run {self.name}: {self.total_steps} optimiser steps{limit} on bundle {self.bundle}",
                *self.pod.render().splitlines()]


@dataclass(frozen=True, slots=True)
class PodOutcome:
    job_id: int
    run_id: int
    pod_id: str
    adapter_dir: Path
    sha256: str
    usd: float


def check_name(name: str) -> str:
    """A run name the pod's agent accepts (its rule, core.pods.agent.job.RUN_NAME): it names folders there and here."""
    if not RUN_NAME.fullmatch(name):
        raise BizsentError(f"run name {name!r} cannot name a pod run; use up to 64 letters, digits, '.', '-' or '_'")
    return name


def params(name: str, *, max_steps: int | None = None) -> dict[str, Any]:
    return {"name": check_name(name), "max_steps": max_steps}


def run_bundle(db: sqlite_utils.Database, settings: Settings, name: str) -> Path:
    """The run's dataset bundle, data/runs/<name>/bundle, built from the store as `train --local` builds it (kept:
    a resumed run trains on the data it started with)."""
    from bizsent.core.model.dataset import build_dataset, export_bundle

    folder = settings.data_dir / "runs" / name / "bundle"
    if (folder / "manifest.json").exists():
        return folder
    return export_bundle(build_dataset(db, settings.image_dir, settings.train), folder,
                         max_pixels=settings.train.max_pixels)


def plan_run(db: sqlite_utils.Database, settings: Settings, name: str, max_steps: int | None = None, *,
             client: api.RunpodClient | None = None) -> PodRunPlan:
    """Build the bundle, count its training examples and price the configured GPUs: what the user confirms."""
    from bizsent.core.model.dataset import read_manifest

    check_name(name)
    bundle = run_bundle(db, settings, name)
    examples = int(read_manifest(bundle)["sizes"].get("train", 0))
    if examples == 0:
        raise BizsentError(f"the bundle {bundle} has no training examples; label posts first (`bizsent label`)")
    cfg = settings.train
    per_step = cfg.batch_size * cfg.grad_accum
    steps = math.ceil(examples * cfg.epochs / per_step)
    if max_steps:
        steps = min(steps, max_steps)
    if client is None:
        with api.client(settings) as own:
            pod_plan = plan.plan_pod(own, settings, name, examples, steps * per_step / examples)
    else:
        pod_plan = plan.plan_pod(client, settings, name, examples, steps * per_step / examples)
    return PodRunPlan(name, bundle, examples, max_steps, steps, pod_plan)


def launch_run(db: sqlite_utils.Database, db_path: Path | str, config_path: Path | str | None, settings: Settings,
               name: str, max_steps: int | None = None) -> tuple[int, int]:
    """Queue a pod job and run it detached (`bizsent train --pod --job ID --yes`): (job id, pid). The caller has
    shown `plan_run(...).render()` and got a yes."""
    from bizsent.jobs.control import launch as launch_job

    return launch_job(db, db_path, config_path, POD, params(name, max_steps=max_steps), settings.data_dir / "logs")


def cancel(db: sqlite_utils.Database, settings: Settings, job: dict[str, Any]) -> str:
    """`jobs cancel` of a pod job: a live process sees the flag and terminates its pod; a dead one cannot, so the
    pod is terminated here."""
    from bizsent.jobs.states import status

    dead = status(job) == "dead"
    rows.finish(db, job["id"], "cancelled", "cancelled by the user")
    row = records.of_job(db, job["id"])
    if row is None or row.state not in records.LIVE:
        return f"job {job['id']} cancelled"
    if not dead:
        return (f"job {job['id']} cancelled; its process terminates pod {row.pod_id or row.name} within seconds"
                " and ends its run (`bizsent pods list` shows it gone)")
    with api.client(settings) as client:
        pod_id = row.pod_id
        if pod_id is None:  # killed while its create was in flight: RunPod may have made the pod all the same
            handle = launch.adopt_by_name(db, settings, client, row)
            if handle is None:
                return f"job {job['id']} cancelled; RunPod has no pod named {row.name}: nothing is billing"
            pod_id = handle.pod_id
        usd = launch.terminate_and_confirm(db, client, pod_id, error="job cancelled")
    return f"job {job['id']} cancelled; pod {pod_id} terminated (RunPod confirms it is gone), cost ${usd:.2f}"


def stop_or_terminate(db: sqlite_utils.Database, client: api.RunpodClient, pod_id: str, action: str) -> str:
    """`pods stop|terminate POD` (the CLI and the Pods screen). Terminating a pod that a pod job still runs
    cancels that job first: its process stops waiting on a pod that is gone and ends the job and its run as
    cancelled, not failed 13 minutes later."""
    from bizsent.core.pods import orphans
    from bizsent.jobs.states import ACTIVE, status

    row = records.row_of(db, pod_id)
    job = rows.get(db, row.job_id) if action == "terminate" and row and row.job_id else None
    owned = job is not None and status(job) in (*ACTIVE, "dead")
    if owned:
        rows.finish(db, job["id"], "cancelled", f"cancelled: its pod {pod_id} was terminated by the user")
    line = orphans.stop_or_terminate(db, client, pod_id, action)
    return f"{line}; its job {job['id']} is cancelled" if owned else line


def run(db: sqlite_utils.Database, settings: Settings, job_id: int, *, confirm: Callable[[PodRunPlan], bool],
        report: Callable[[Progress], None] = lambda p: None) -> PodOutcome | None:
    """Run (or resume) pod job `job_id` in this process; None when the plan was not confirmed."""
    job = rows.get(db, job_id)
    if job is None or job["kind"] != POD:
        raise BizsentError(f"job {job_id} is not a pod job; see `bizsent jobs`")
    with running(db, job_id) as beat, api.client(settings) as client:
        progress = Progress("planning", extra={"metrics_next": int(job["counts"].get("metrics_next", 0))})
        writer = JobWriter(db, job_id, beat, progress, report)
        return _chain(db, settings, client, job, writer, confirm)


def _chain(db: sqlite_utils.Database, settings: Settings, client: api.RunpodClient, job: dict[str, Any],
           writer: JobWriter, confirm: Callable[[PodRunPlan], bool]) -> PodOutcome | None:
    p, job_id = job["params"], job["id"]
    name = p["name"]
    handle = _reattach(db, settings, client, job_id)
    payload: Payload | None = None
    the_plan: PodRunPlan | None = None
    if handle is None:
        the_plan = plan_run(db, settings, name, p.get("max_steps"), client=client)
        writer.progress.total_steps = the_plan.total_steps
        if not confirm(the_plan):
            rows.finish(db, job_id, "cancelled", "not confirmed; no pod was started")
            return None
        # Built before the pod exists: the wheel and the tar take a while, and a pod bills from its creation.
        payload = _payload(settings, name, p)
    else:
        writer.progress.total_steps = int(job["total"] or 0)
    run_id = _run_row(db, settings, job_id, name, p)
    finished = False
    try:
        if handle is None:
            assert the_plan is not None
            handle = launch.start_pod(db, settings, client, the_plan.pod, job_id=job_id)
        writer.progress.pod_id = handle.pod_id
        writer.progress.extra.update(gpu=handle.gpu, usd_per_hour=handle.usd_per_hour)
        set_params(db, run_id, pod_id=handle.pod_id, gpu=handle.gpu, cloud=handle.cloud)
        outcome = _drive(db, settings, client, handle, writer, run_id, lambda: payload or _payload(settings, name, p))
        finished = True
        return outcome
    except KeyboardInterrupt:
        _unless_registered(db, writer, run_id, "cancelled")
        if handle is None:
            raise PodInterrupted("interrupted; no pod was running") from None
        usd = launch.terminate_and_confirm(db, client, handle.pod_id, error="interrupted (Ctrl-C)")
        finished = True
        raise PodInterrupted(f"interrupted; pod {handle.pod_id} terminated (RunPod confirms it is gone), cost"
                             f" ${usd:.2f}") from None
    except BaseException as exc:
        _unless_registered(db, writer, run_id, "cancelled" if isinstance(exc, Cancelled) else "failed")
        raise
    finally:
        if handle is not None and not finished:
            launch.terminate_and_confirm(db, client, handle.pod_id, error="the run ended early (see the job)")


def _unless_registered(db: sqlite_utils.Database, writer: JobWriter, run_id: int, state: str) -> None:
    """End the run row `state`, unless its adapter is already stored (then only the pod's end went wrong)."""
    if "adapter_sha256" not in writer.progress.extra:
        finish_run(db, run_id, state)


def _reattach(db: sqlite_utils.Database, settings: Settings, client: api.RunpodClient, job_id: int
              ) -> PodHandle | None:
    """The pod an earlier process of this job started, when RunPod still has it running: never a second pod."""
    row = records.of_job(db, job_id)
    if row is None or row.state not in records.LIVE:
        return None
    if row.pod_id is None:  # killed while its create was in flight: the pod is found by its name, or never made
        found = launch.adopt_by_name(db, settings, client, row)
        if found is None:
            return None
        row = records.row_of(db, found.pod_id)
        assert row is not None and row.pod_id is not None
    pod_id = row.pod_id
    pod = client.get_pod(pod_id)
    if pod is None:
        records.finish(db, row.id, "gone", None, "not on RunPod any more")
        return None
    handle = launch.handle_of(db, settings, pod_id)
    if pod.status in ("EXITED", "ERROR"):
        usd = launch.terminate_and_confirm(db, client, pod_id, error=f"found {pod.status} on resume")
        raise BizsentError(f"pod {pod_id} of this job was stopped ({pod.status}, by its watchdog or by hand);"
                           f" it is now terminated (cost ${usd:.2f}). Start the run again")
    return handle


def _payload(settings: Settings, name: str, p: dict[str, Any]) -> Payload:
    return prepare_payload(settings, run_bundle_path(settings, name), settings.data_dir / "runs" / name / "payload",
                           name=name, max_steps=p.get("max_steps"), evaluate=False)


def run_bundle_path(settings: Settings, name: str) -> Path:
    return settings.data_dir / "runs" / name / "bundle"


def _run_row(db: sqlite_utils.Database, settings: Settings, job_id: int, name: str, p: dict[str, Any]) -> int:
    """The job's `train` run: the same row on a resume, else a new one, as `train --local` records it."""
    from bizsent.core.model.dataset import read_manifest

    earlier = db.execute("SELECT id FROM runs WHERE job_id = ? AND kind = 'train' ORDER BY id DESC LIMIT 1",
                         [job_id]).fetchone()
    if earlier is not None:
        reopen_run(db, earlier[0])
        return earlier[0]
    cfg, bundle = settings.train, run_bundle_path(settings, name)
    return create_run(db, kind="train", name=name, base_model=cfg.base_model, manifest=read_manifest(bundle),
                      params={"bundle": str(bundle), "out_dir": str(bundle.parent), "max_steps": p.get("max_steps"),
                              "load_in_4bit": None, "train": cfg.model_dump(mode="json"), "where": "runpod"},
                      job_id=job_id)


def _trained_with(adapter_dir: Path) -> dict | None:
    """The versions the adapter's run info records (core.model.run_info.stack_versions)."""
    try:
        return json.loads((adapter_dir / "bizsent.json").read_text(encoding="utf-8")).get("versions")
    except (OSError, ValueError):
        return None


def _drive(db: sqlite_utils.Database, settings: Settings, client: api.RunpodClient, handle: PodHandle,
           writer: JobWriter, run_id: int, payload: Callable[[], Payload]) -> PodOutcome:
    conf = settings.runpod
    writer.save("booting")
    # Both waits poll the job's cancel: a cancel while the pod boots or its agent comes up stops the run within
    # seconds (the chain then terminates the pod), not after runpod.boot_timeout_min.
    launch.wait_running(db, client, handle, settings, poll_s=min(conf.poll_s, 2.0), on_status=lambda _: writer.check())
    writer.save("connecting")
    log_path = run_log_path(settings, handle.run_name)
    tail = LogTail(settings, handle.pod_id, log_path).start()
    try:
        with AgentChannel(handle.agent_url, handle.token, backoff_s=min(conf.poll_s, 1.0)) as channel:
            health = channel.wait_ready(conf.boot_timeout_min * 60, poll_s=min(conf.poll_s, 2.0), check=writer.check)
            if health.state == "waiting-upload":
                writer.save("uploading")
                channel.upload_payload(payload())
                channel.start()
            final = watch(writer, settings, client, handle, run_id, log_path)
            writer.save("downloading")
            adapter_dir = run_bundle_path(settings, handle.run_name).parent / "adapter"
            sha = channel.download_adapter(adapter_dir)  # verified against the pod's sha256 before it is untarred
            finish_run(db, run_id, "done", str(adapter_dir))
            # What the pod trained with: its GPU check (host, driver, torch build) and the library versions.
            set_params(db, run_id, adapter_sha256=sha, gpu_check=final.gpu, versions=_trained_with(adapter_dir))
            writer.progress.extra["adapter_sha256"] = sha
            channel.mark_collected(sha)
    finally:
        tail.close(wait_s=0.5)
    usd = launch.terminate_and_confirm(db, client, handle.pod_id)
    writer.progress.usd = usd
    writer.save("done")
    return PodOutcome(writer.job_id, run_id, handle.pod_id, adapter_dir, sha, usd)
