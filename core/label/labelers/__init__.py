"""API labelers behind one small interface (floor 1: a provider builds its own, core.label.providers.make_labeler).
May import floor 0 only (errors, labels, sections).
"""

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
