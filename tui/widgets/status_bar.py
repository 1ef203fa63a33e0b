"""One line at the bottom of every screen: the screens (by number), the database, pods billing and their $/h,
stopped pods and what their volumes bill a month, running jobs, spend."""

from __future__ import annotations

from bizsent.core.label.budget import money
from bizsent.tui.app import BizsentNode, StatusInfo
from rich.text import Text
from textual.widget import Widget


def _screens(screens: list[tuple[str, str]], current: str, f_keys: bool, titles: bool) -> Text:
    """The screens by number; without `titles` only the current screen is named (80 columns)."""
    out = Text()
    for number, (mode, title) in enumerate(screens, start=1):
        style = "bold reverse" if mode == current else "dim"
        name = f" {title}" if titles or mode == current else ""
        out.append(f" {'F' if f_keys else ''}{number}{name} ", style=style)
    return out


def status_text(info: StatusInfo, screens: list[tuple[str, str]], current: str, width: int,
                f_keys: bool = False) -> Text:
    """`f_keys`: the screen switches by F-keys only (Label, Spot-check: digits label there), so the bar says
    F1.. rather than 1... What goes first when the line is short: the database path, then the other screens'
    names; the money and the jobs always stay."""
    jobs_style = "bold yellow" if info.running_jobs else "dim"
    right = Text.assemble(
        (f" pods {info.pods_billing} ${info.pods_usd_per_hour:,.2f}/h ", "bold magenta") if info.pods_billing
        else "",
        (f" stopped {info.pods_stopped} ${info.stopped_usd_per_month:,.2f}/mo ", "magenta") if info.pods_stopped
        else "",
        (f" jobs {info.running_jobs} ", jobs_style),
        (f" spent {money(info.spend_usd)} ", "bold"),  # $0.0006 is not $0.00
    )
    if info.error:
        right = Text(f" {info.error} ", style="bold red")
    out = _screens(screens, current, f_keys, titles=True)
    if out.cell_len + right.cell_len > width:
        out = _screens(screens, current, f_keys, titles=False)
    room = width - out.cell_len - right.cell_len - 2
    path = info.db_path
    if room > 4:
        if len(path) > room:
            path = "…" + path[-(room - 1):]
        out.append("  " + path.ljust(room), style="dim")
    out.append_text(right)
    return out


class StatusBar(BizsentNode, Widget):
    """Redraws whenever the app's `status` reactive changes (a timer worker refreshes it)."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.bizsent, "status", lambda _: self.refresh(), init=False)

    def render(self) -> Text:
        app = self.bizsent
        return status_text(app.status, app.screen_titles, app.current_mode, self.size.width,
                           getattr(self.screen, "F_KEYS_ONLY", False))
