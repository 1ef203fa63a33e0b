"""Every Message the console's workers and widgets post, in one place.

Workers run in threads and post these back; handlers on the event loop only update widgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tui.job_queries import Agreement, EstimateView, JobDetail, JobRow
from tui.queries import LabelPost, PostDetail, PostRow, StatusInfo
from tui.widgets.image_preview import Picture


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


@dataclass
class LabelItemsLoaded(Message):
    """Prefetched posts for the Label screen, with their images already decoded."""

    items: list[tuple[LabelPost, Picture]]


@dataclass
class WriteFailed(Message):
    error: str


@dataclass
class JobsLoaded(Message):
    """The Batches screen's job list, and the detail of the selected job (None: nothing selected)."""

    jobs: list[JobRow]
    detail: JobDetail | None


@dataclass
class AgreementLoaded(Message):
    agreement: Agreement


@dataclass
class EstimateReady(Message):
    """The new-job dialog's dry-run estimate for one choice (generation tells stale results apart)."""

    generation: int
    view: EstimateView


@dataclass
class JobActionDone(Message):
    """A job action (start, cancel, collect) finished in its worker: one line for the user."""

    text: str
    error: bool = False
