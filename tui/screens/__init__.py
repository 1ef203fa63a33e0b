"""The console's screens, one module each. SCREENS is the order of the number keys and the status bar;
a new capability adds its screen here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass

from textual.screen import Screen

from tui.screens.batches import BatchesScreen
from tui.screens.eval import EvalScreen
from tui.screens.label import LabelScreen
from tui.screens.posts import PostsScreen
from tui.screens.spotcheck import SpotCheckScreen


@dataclass(frozen=True, slots=True)
class ScreenSpec:
    mode: str
    title: str
    screen: type[Screen]


SCREENS: tuple[ScreenSpec, ...] = (
    ScreenSpec("posts", "Posts", PostsScreen),
    ScreenSpec("label", "Label", LabelScreen),
    ScreenSpec("batches", "Batches", BatchesScreen),
    ScreenSpec("eval", "Eval", EvalScreen),
    ScreenSpec("spotcheck", "Spot-check", SpotCheckScreen),
)
