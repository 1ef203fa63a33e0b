"""Whether a labeling plan may start: something to label, the provider's key present, the estimate under the
per-job and total caps. The one check between a dry-run estimate and money, for `bizsent label` and the console's
new-job dialog alike; nothing is sent and nothing is written."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.errors import BizsentError
from bizsent.core.label import planning, providers
from bizsent.core.label.budget import check_caps

NOTHING_TO_LABEL = "nothing to label: every candidate post already has a label from this labeler"


@dataclass(frozen=True, slots=True)
class Approval:
    """`error` None: the plan may start. Otherwise it says why not in one line (`nothing_to_do`: there is
    nothing to send, which is no failure)."""

    error: BizsentError | None = None
    nothing_to_do: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def blocker(self) -> str | None:
        return None if self.error is None else str(self.error)


def approve(db: sqlite_utils.Database, settings: Settings, plan: planning.Plan) -> Approval:
    if not plan.items:
        return Approval(BizsentError(NOTHING_TO_LABEL), nothing_to_do=True)
    try:
        providers.require_key(settings, plan.params.provider)
        check_caps(db, settings, plan.chosen.usd, len(plan.items), plan.params.limit)
    except BizsentError as exc:  # a missing key or a crossed budget cap
        return Approval(exc)
    return Approval()
