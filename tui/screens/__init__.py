"""The console's screens (floor 9), one module each. SCREENS is the order of the number keys and the status bar;
a new capability adds its screen here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from textual.screen import Screen


@dataclass(frozen=True, slots=True)
class ScreenSpec:
    mode: str
    title: str
    path: str  # "module:Class"

    def load(self) -> type[Screen]:
        # Imported when first opened: start-up imports the first screen only (the others and what they need,
        # labeling jobs, plots and run queries, cost about 0.15 s before the first paint).
        module, _, name = self.path.partition(":")
        return getattr(import_module(module), name)

    def make(self) -> Screen:
        return self.load()()


SCREENS: tuple[ScreenSpec, ...] = (
    ScreenSpec("posts", "Posts", "bizsent.tui.screens.posts:PostsScreen"),
    ScreenSpec("label", "Label", "bizsent.tui.screens.label:LabelScreen"),
    ScreenSpec("batches", "Jobs", "bizsent.tui.screens.batches:BatchesScreen"),
    ScreenSpec("eval", "Eval", "bizsent.tui.screens.eval:EvalScreen"),
    ScreenSpec("spotcheck", "Spot-check", "bizsent.tui.screens.spotcheck:SpotCheckScreen"),
    ScreenSpec("pods", "Pods", "bizsent.tui.screens.pods:PodsScreen"),
    ScreenSpec("trends", "Trends", "bizsent.tui.screens.trends:TrendsScreen"),
)
