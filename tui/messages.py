"""Every Message the console's workers and widgets post, in one place.

Workers run in threads and post these back; handlers on the event loop only update widgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    # Types only (annotations are strings): importing the screens' query modules here would load numpy, the
    # metrics and the labeling stack before the first paint, for screens that may never be opened.
    from bizsent.core.evaluate.report import Report
    from bizsent.core.model.events import MetricEvent
    from bizsent.core.store.sessions import LabelSession
    from bizsent.tui.job_queries import EstimateView
    from bizsent.tui.queries import LabelPost, PostDetail, PostRow, StatusInfo
    from bizsent.tui.run_queries import PoolJob, RunRow, SpotItem
    from bizsent.tui.widgets.image_preview import Picture
    from bizsent.tui.widgets.post_detail import Wrapped


@dataclass
class StatusUpdated(Message):
    info: StatusInfo


@dataclass
class PostIdsLoaded(Message):
    """The Posts list's id list for one filter (generation tells stale results apart)."""

    generation: int
    ids: list[int]


@dataclass
class RowsLoaded(Message):
    rows: dict[int, PostRow]


@dataclass
class RowHighlighted(Message):
    """The cursor of the post list moved onto `post_id` (None: the list is empty)."""

    post_id: int | None


@dataclass
class DetailLoaded(Message):
    detail: PostDetail | None
    picture: Picture


@dataclass
class LabelSourcesLoaded(Message):
    sources: list[str]


@dataclass
class QueueLoaded(Message):
    generation: int
    ids: list[int]
    notice: str = ""  # one line for the user, e.g. why the order fell back to random


@dataclass
class LabelItemsLoaded(Message):
    """Prefetched posts for the Label screen, with their images decoded and their text wrapped."""

    items: list[tuple[LabelPost, Picture, Wrapped]]


@dataclass
class SessionLoaded(Message):
    """The Label screen's saved session (None: start a new one)."""

    session: LabelSession | None


@dataclass
class WriteFailed(Message):
    error: str


@dataclass
class EstimateReady(Message):
    """The new-job dialog's dry-run estimate for one choice (generation tells stale results apart)."""

    generation: int
    view: EstimateView


@dataclass
class EvalPolled(Message):
    """One poll of the Eval screen: the runs, and the selected run's metric rows after the cursor `after_id`."""

    runs: list[RunRow]
    run_id: int | None
    after_id: int
    events: list[tuple[int, MetricEvent]]
    report_key: tuple | None


@dataclass
class ReportLoaded(Message):
    key: tuple
    report: Report | None
    error: str = ""


@dataclass
class SpotItemsLoaded(Message):
    """The Spot-check screen's runs with predictions, and the items of `run_id` (unordered)."""

    generation: int
    runs: list[tuple[int, str, int]]
    run_id: int | None
    items: list[SpotItem]


@dataclass
class SpotPictureLoaded(Message):
    post_id: int
    picture: Picture


@dataclass
class PoolJobPolled(Message):
    """The newest score-pool job (None: never started), polled by the Spot-check screen."""

    job: PoolJob | None


@dataclass
class PoolScoringStarted(Message):
    """The outcome of `p` (score the pool): one line for the user."""

    text: str
    error: bool = False
