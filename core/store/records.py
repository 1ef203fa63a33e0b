"""Records that cross module boundaries (ingestion, import, demo -> store)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bizsent.core.labels import Label


@dataclass(frozen=True, slots=True)
class ImageRef:
    """Where a post's image can be fetched from; bytes arrive later through the image pipeline."""

    url: str
    thumb_url: str | None = None
    md5: str | None = None
    width: int | None = None
    height: int | None = None
    local_path: str | None = None  # a file already on disk (imports, demo data)


@dataclass(frozen=True, slots=True)
class NewPost:
    board: str
    thread_no: int
    post_no: int
    text: str
    html: str = ""
    subject: str = ""
    time: int | None = None
    is_op: bool = False
    source: str = "live"
    image: ImageRef | None = None


@dataclass(frozen=True, slots=True)
class NewLabel:
    label: Label
    source: str
    split: str = "unassigned"
    labeler: str = ""
    confidence: float | None = None
    sarcastic: bool = False
    unsure: bool = False
    rationale: str | None = None
    sampling: str | None = None  # human labels: how the post was chosen (core.labels.RANDOM_SAMPLING or an order)


@dataclass(slots=True)
class SaveCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One good row of an import file, staged before anything is written (so bad files write nothing)."""

    where: str  # "line 12" or "training_labels row 5": how problems name the row
    post: NewPost
    label: NewLabel | None = None
    note: str | None = None
    skip_reason: str | None = None  # not None: the human skipped this post
