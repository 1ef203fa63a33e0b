"""API labelers behind one small interface (a provider builds its own: core.label.providers.make_labeler)."""

from bizsent.core.label.labelers.base import (
    Labeler,
    LabelerError,
    Outcome,
    QuotaExhausted,
    Request,
    Transient,
    Unreachable,
)

__all__ = ["Labeler", "LabelerError", "Outcome", "QuotaExhausted", "Request", "Transient", "Unreachable"]
