"""What the Pods screen draws, as pure functions of the engine's PodView (core.pods.views): the list's cells and
the questions before stop and terminate. No rules here, only drawing."""

from __future__ import annotations

from bizsent.core.pods.views import PodView
from bizsent.tui.screens.job_format import duration, money
from rich.text import Text

HEADERS = {"pod": "pod", "name": "name / run", "gpu": "GPU", "state": "state", "uptime": "uptime",
           "rate": "$/h", "usd": "so far", "flag": "note"}
COLUMNS = tuple(HEADERS)
NARROW = tuple(c for c in COLUMNS if c != "gpu")  # below 100 columns the GPU goes first (the pane's title has it)
NARROW_BELOW = 100
NAME_WIDTH = 24
GPU_WIDTH = 22
STATE_STYLE = {"requested": "cyan", "provisioning": "cyan", "running": "bold yellow", "stopped": "dim yellow",
               "terminated": "dim", "failed": "bold red", "gone": "dim"}


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def pod_cells(pod: PodView, columns: tuple[str, ...] = COLUMNS) -> list[Text]:
    """One row's cells for `columns`: every cell brings its own leading space (the table has no padding). An
    orphan's row is red."""
    row_style = "bold red" if pod.orphan else "" if pod.ours else "dim"
    name = pod.name if not pod.run_name or pod.run_name in pod.name else f"{pod.name} ({pod.run_name})"
    gpu = (pod.gpu or "–").removeprefix("NVIDIA ").removeprefix("GeForce ")
    if pod.orphan:
        flag = "ORPHAN"
    elif not pod.ours:
        flag = "not bizsent's"
    else:
        flag = ""
    if pod.storage_usd_month:  # RunPod shows a stopped pod at $0.00/h; its volume bills on
        flag = f"{flag} volume ${pod.storage_usd_month:.2f}/mo".strip()
    every = {
        "pod": Text(" " + pod.pod_id, style=row_style),
        "name": Text(" " + _clip(name, NAME_WIDTH), style=row_style),
        "gpu": Text(" " + _clip(gpu, GPU_WIDTH)),
        "state": Text(" " + pod.state, style=STATE_STYLE.get(pod.state, "")),
        "uptime": Text(" " + (duration(pod.uptime_s) if pod.uptime_s is not None else "–"), justify="right"),
        "rate": Text(f" {pod.usd_per_hour:.2f}" if pod.usd_per_hour else " –", justify="right"),
        "usd": Text(" " + money(pod.usd_so_far), justify="right"),
        "flag": Text(" " + flag, style=row_style),
    }
    return [every[column] for column in columns]


def describe(pod: PodView) -> str:
    gpu = pod.gpu or "unknown GPU"
    rate = f"${pod.usd_per_hour:.2f}/h" if pod.usd_per_hour else "not billing its GPU"
    if pod.storage_usd_month:
        rate += f"; its volume bills ${pod.storage_usd_month:.2f}/month while stopped"
    return f"pod {pod.pod_id} ({pod.name}, {gpu}, {rate}, {money(pod.usd_so_far)} so far)"


def stop_question(pod: PodView) -> str:
    return (f"Stop {describe(pod)}?\n"
            "Its GPU is released and stops billing; its volume is kept, and bills by the month, until you terminate"
            " it."
            + ("" if pod.ours else "\nThis pod is not bizsent's (its name lacks the prefix)."))


def terminate_question(pod: PodView) -> str:
    return (f"Terminate {describe(pod)}?\n"
            "The pod and its disk are deleted for good; anything not yet copied off it is lost. The console waits"
            " until RunPod confirms it is gone."
            + ("" if pod.ours else "\nThis pod is not bizsent's (its name lacks the prefix): it may be yours."))


def detail_title(pod: PodView | None) -> Text:
    if pod is None:
        return Text("no pod selected", style="dim")
    out = Text(describe(pod), style="bold")
    if pod.note and pod.note != pod.state:
        out.append(f"  {pod.note}", style="bold red" if pod.orphan else "dim")
    return out
