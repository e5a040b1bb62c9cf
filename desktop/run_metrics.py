"""A run's logged metrics as curve points: the one reading of them the pages and jobs share."""

from __future__ import annotations

from dataclasses import dataclass, field

Points = list[tuple[int, float]]


@dataclass
class MetricSeries:
    """A run's loss, evaluation and learning-rate points and the evaluation metric's name."""

    losses: Points = field(default_factory=list)
    evals: Points = field(default_factory=list)
    lrs: Points = field(default_factory=list)
    metric_name: str = ""


def _points(metrics: list[dict], key: str) -> Points:
    return [(m["step"], float(m[key])) for m in metrics
            if key and isinstance(m.get(key), int | float)]


def metric_series(metrics: list[dict]) -> MetricSeries:
    """The curves of a run's metric rows (as ``Library.run_metrics`` returns them)."""
    key = next((k for k in ("metric", "eval_loss") if any(k in m for m in metrics)), "")
    name = next((str(m["metric_name"]) for m in metrics if m.get("metric_name")), key)
    return MetricSeries(_points(metrics, "loss"), _points(metrics, key), _points(metrics, "lr"),
                        name)
