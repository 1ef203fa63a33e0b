"""API labelers behind one small interface: `make_labeler(settings, provider)` returns a `Labeler`."""

from bizsent.core.label.labelers.base import (
    Labeler,
    LabelerError,
    Outcome,
    QuotaExhausted,
    Request,
    Transient,
    Unreachable,
    make_labeler,
)

__all__ = ["Labeler", "LabelerError", "Outcome", "QuotaExhausted", "Request", "Transient", "Unreachable",
           "make_labeler"]
