"""Every pod of the account beside what the database believes (like `sky status`), and the orphans among them.

An orphan is a pod whose name carries runpod.name_prefix ("bizsent-") that the database does not know, or
that the database believes finished (its row terminated/failed/gone, or its job finished or dead by the one
liveness rule, core.store.liveness: the laptop process that watched it was killed): nobody will stop it, and it
bills. `reap` terminates orphans, and stopped bizsent pods whose adapter is stored here (their volume bills on,
at runpod.volume_usd_per_gb_month_stopped, though RunPod shows $0.00/h, for nothing on it is needed), and
re-checks the prefix itself: a pod without it (a notebook of the user's) is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.pods import estimate, records
from bizsent.core.pods.api import Pod, RunpodClient
from bizsent.core.pods.launch import terminate_and_confirm, usd_so_far
from bizsent.core.store import now
from bizsent.core.store.liveness import is_dead

FINISHED_JOBS = ("done", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class AccountPod:
    pod: Pod
    ours: bool  # named with the prefix
    row: records.PodRow | None  # the database's row for it
    job_finished: bool
    usd_so_far: float
    storage_usd_month: float = 0.0  # what its volume bills a month while it is stopped (0 unless stopped)
    adapter_collected: bool = False  # its run's adapter is stored on this machine

    @property
    def orphan(self) -> bool:
        if not self.ours or self.pod.status == "TERMINATED":
            return False
        return self.row is None or self.row.state in records.FINISHED or self.job_finished

    @property
    def stopped_collected(self) -> bool:
        """A stopped bizsent pod whose adapter is stored here: only its volume's bill is left on it."""
        return self.ours and self.pod.status == "EXITED" and self.adapter_collected

    @property
    def reapable(self) -> bool:
        return self.orphan or self.stopped_collected

    @property
    def why(self) -> str:
        if not self.ours:
            return "not bizsent's"
        if self.row is None:
            return "orphan: unknown to the database"
        if self.row.state in records.FINISHED:
            return f"orphan: the database says {self.row.state}"
        if self.job_finished:
            return "orphan: its job has finished or its process died"
        if self.stopped_collected:
            return "stopped, its adapter is stored here: only its volume bills"
        return f"bizsent (run {self.row.run_name or self.row.name})"

    @property
    def storage_note(self) -> str:
        if not self.storage_usd_month:
            return ""
        return f"; its volume bills ${self.storage_usd_month:.2f}/month while stopped"


def survey(db: sqlite_utils.Database, client: RunpodClient, settings: Settings) -> list[AccountPod]:
    """Every pod of the account, with what the database knows of it; refreshes live rows' state and cost."""
    prefix = settings.runpod.name_prefix
    rows = records.by_pod_id(db)
    finished_jobs = {r[0] for r in db.execute("SELECT id, state, heartbeat_at, pid, host FROM jobs").fetchall()
                     if r[1] in FINISHED_JOBS or is_dead(r[1], r[2], r[3], r[4])}
    collected = {r[0] for r in db.execute("SELECT name FROM runs WHERE kind = 'train' AND state = 'done'"
                                          " AND adapter_path IS NOT NULL")}
    out = []
    for pod in client.list_pods():
        row = rows.get(pod.id)
        usd = usd_so_far(pod, row.usd_per_hour if row else None)
        if row is not None and row.state in records.LIVE:
            records.set_cost(db, row.id, usd)
            records.set_state(db, row.id, records.STATE_OF.get(pod.status, row.state))
        storage = estimate.stopped_usd_per_month(settings, pod.volume_gb) if pod.status == "EXITED" else 0.0
        out.append(AccountPod(pod, pod.name.startswith(prefix), row,
                              row is not None and row.job_id in finished_jobs, usd, storage,
                              row is not None and (row.run_name or row.name) in collected))
    return out


def reconcile(db: sqlite_utils.Database, client: RunpodClient, account: list[AccountPod]) -> list[records.PodRow]:
    """Rows the database believes live whose pod RunPod no longer has: marked 'gone' with RunPod's bill."""
    present = {a.pod.id for a in account}
    vanished = [r for r in records.by_pod_id(db).values() if r.state in records.LIVE and r.pod_id not in present]
    for row in vanished:
        assert row.pod_id is not None
        usd = client.pod_billing_usd(row.pod_id)
        records.finish(db, row.id, "gone", usd, f"not on RunPod any more (seen {now()})")
    return vanished


def render(account: list[AccountPod], settings: Settings) -> str:
    """`pods list`: a stopped pod's $/h is its volume's (RunPod says 0.00 for it), and the note says per month."""
    if not account:
        return "no pods on this RunPod account"
    lines = [f"{'pod':<14} {'name':<28} {'status':<13} {'gpu':<26} {'$/h':>6} {'so far':>8}  note"]
    for a in account:
        p = a.pod
        rate = p.usd_per_hour + a.storage_usd_month / estimate.HOURS_PER_MONTH
        lines.append(f"{p.id:<14} {p.name[:28]:<28} {p.status:<13} {(p.gpu or '-')[:26]:<26}"
                     f" {rate:>6.2f} {a.usd_so_far:>8.2f}  {a.why}{a.storage_note}")
    billing = [a for a in account if a.pod.usd_per_hour > 0]
    stored = [a for a in account if a.storage_usd_month > 0]
    lines.append(f"{len(billing)} pod(s) billing ${sum(a.pod.usd_per_hour for a in billing):.2f}/h")
    if stored:
        rate = settings.runpod.volume_usd_per_gb_month_stopped
        lines.append(f"{len(stored)} stopped pod(s) whose volumes bill ${sum(a.storage_usd_month for a in stored):.2f}"
                     f" a month (${rate:.2f}/GB/month stopped, docs.runpod.io pods/pricing), though RunPod shows"
                     " $0.00/h: `bizsent pods terminate ID` ends that")
    orphans = [a for a in account if a.orphan]
    if orphans:
        lines.append(f"{len(orphans)} orphan(s) billing ${sum(a.pod.usd_per_hour for a in orphans):.2f}/h:"
                     " `bizsent pods reap` terminates them")
    done = [a for a in account if a.stopped_collected and not a.orphan]
    if done:
        lines.append(f"{len(done)} stopped pod(s) whose adapter is stored here, their volumes billing"
                     f" ${sum(a.storage_usd_month for a in done):.2f}/month: `bizsent pods reap` terminates them")
    return "\n".join(lines)


def reap(db: sqlite_utils.Database, client: RunpodClient, settings: Settings, orphans: list[AccountPod]
         ) -> list[tuple[str, float]]:
    """Terminate each orphan (or stopped pod whose adapter is stored here) and confirm it gone; (pod id, final USD)
    each. Pods without the prefix refused."""
    prefix = settings.runpod.name_prefix
    done = []
    for orphan in orphans:
        if not orphan.pod.name.startswith(prefix) or not orphan.reapable:
            raise BizsentError(f"refusing to reap pod {orphan.pod.id} ({orphan.pod.name}): not a bizsent orphan")
        if orphan.row is None:  # give it a row, so its cost is counted with bizsent's spend
            row_id = db.execute("INSERT INTO pods (pod_id, name, gpu, cloud, usd_per_hour, state, created_at,"
                                " updated_at, error) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, 'orphan, reaped')",
                                [orphan.pod.id, orphan.pod.name, orphan.pod.gpu, orphan.pod.cloud,
                                 orphan.pod.usd_per_hour, orphan.pod.created_at or now(), now()]).lastrowid
            records.set_cost(db, row_id, orphan.usd_so_far)
        done.append((orphan.pod.id, terminate_and_confirm(db, client, orphan.pod.id)))
    return done


def stop_or_terminate(db: sqlite_utils.Database, client: RunpodClient, pod_id: str, action: str) -> str:
    """`pods stop|terminate POD`: one line saying what happened (terminate is confirmed with RunPod)."""
    if client.get_pod(pod_id) is None:
        raise BizsentError(f"RunPod has no pod {pod_id}; see `bizsent pods list`")
    if action == "terminate":
        usd = terminate_and_confirm(db, client, pod_id)
        return f"pod {pod_id} terminated (RunPod confirms it is gone); cost ${usd:.2f}"
    pod = client.action(pod_id, "stop")
    row = records.row_of(db, pod_id)
    if row is not None:
        records.set_state(db, row.id, "stopped")
    status = pod.status if pod else "stopping"
    return (f"pod {pod_id} {status.lower()}: its GPU is released; its volume is kept and bills by the month while"
            f" stopped (`bizsent pods list` says how much); `bizsent pods terminate {pod_id}` removes it")
