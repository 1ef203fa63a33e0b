"""An evaluation as it goes: after each scored batch, one `eval` event with the confusion matrix of the posts
scored so far (`data.live`, `data.n` of `data.of`), so the Eval screen's matrix fills in while a run is scored,
here or on a pod (whose events come back through the watch channel). Live events are progress, not results: the
final event replaces them (`clear_live`), and nothing that counts evaluations (core.evaluate.report.test_scorings)
or plots them reads them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlite_utils
from bizsent.core.evaluate.metrics import confusion_matrix, from_confusion
from bizsent.core.model.events import MetricEvent
from bizsent.core.model.scoring import Scored

LIVE_SQL = "coalesce(json_extract(data, '$.live'), 0) = 0"  # a metrics row that is a result, not progress


def live_event(truth: dict[int, str], scored: Sequence[Scored], split: str, total: int,
               target: str | None = None) -> MetricEvent:
    """The matrix of `scored` against `truth` (post id -> human label); step = posts scored so far, so an event
    delivered twice is stored once (core.model.events.record_new)."""
    pairs = [(truth[s.post_id], s.label) for s in scored if s.post_id in truth]
    m = from_confusion(confusion_matrix([t for t, _ in pairs], [p for _, p in pairs]))
    data = {"split": split, "live": True, "n": len(scored), "of": total, **({"target": target} if target else {})}
    return MetricEvent("eval", step=len(scored), accuracy=m.accuracy, macro_f1=m.macro_f1, confusion=m.confusion,
                       data=data)


def is_live(event: MetricEvent) -> bool:
    return bool(event.data.get("live"))


def read_on_from(held: Sequence[tuple[int, MetricEvent]], last_id: int) -> int:
    """Where a reader of a run's metric rows (id, event) reads on from: after the last row it holds, or, while it
    holds live rows, before the first of them: the final event deletes them (clear_live), and SQLite may give it
    the id of one of them, which a reader going on from its last id would never see."""
    live = [row_id for row_id, event in held if is_live(event)]
    return min(live) - 1 if live else last_id


def read_on(held: Sequence[tuple[int, MetricEvent]], after_id: int, fresh: Sequence[tuple[int, MetricEvent]]
            ) -> list[tuple[int, MetricEvent]]:
    """The rows held, once `fresh` (every row after `after_id`, from read_on_from) replaces those after it."""
    return [row for row in held if row[0] <= after_id] + list(fresh)


def clear_live(db: sqlite_utils.Database, run_id: int, split: str) -> None:
    """Drop the run's live events on `split`: a finished evaluation's final event replaces them, and a new
    evaluation's progress starts from none."""
    db.execute(f"DELETE FROM metrics WHERE run_id = ? AND kind = 'eval' AND NOT ({LIVE_SQL})"
               " AND json_extract(data, '$.split') = ?", [run_id, split])
