"""What one evaluation found: the model's metrics on a human split, the baselines beside it and how the split
was drawn. Its own module so that the report (core.evaluate.report) and the way it reads as a table
(core.evaluate.tables) both import it and not each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bizsent.core.evaluate.baselines import Baseline
from bizsent.core.evaluate.metrics import Metrics


@dataclass(slots=True)
class Report:
    name: str
    model: Metrics
    baselines: list[Baseline] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model.to_dict(), "info": self.info,
                "baselines": [{**asdict(b), "metrics": b.metrics.to_dict() if b.metrics else None}
                              for b in self.baselines]}
