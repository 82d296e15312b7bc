"""What alert and analyze both need to read a series' history the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from perfd.config import SuiteConfig
from perfd.model import KNOWN_METRICS, Direction
from perfd.store import SeriesKey, SeriesPoint


def metric_info(suite: SuiteConfig | None, key: SeriesKey) -> tuple[str, Direction, float]:
    """(unit, direction, threshold_pct) of a series: from its suite, else KNOWN_METRICS and 5%."""
    if suite is not None and key.benchmark in suite.benchmark_names():
        settings = suite.settings_for(key.benchmark)
        metric = settings.metric(key.metric)
        if metric is not None:
            return metric.unit, metric.direction, settings.threshold_pct
    unit, direction = KNOWN_METRICS.get(key.metric, ("", Direction.LOWER))
    return unit, direction, suite.defaults.threshold_pct if suite is not None else 5.0


def worse_pct(before: float, after: float, direction: Direction) -> float:
    """How much worse `after` is than `before`, in percent (negative: better)."""
    change = (after / before - 1.0) * 100.0 if before else 0.0
    return change if direction is Direction.LOWER else -change


def trailing_worse_runs(points: Sequence[SeriesPoint], is_baseline: Callable[[SeriesPoint], bool],
                        baseline_median: float, direction: Direction, threshold_pct: float) -> int:
    """Runs at the end of the series, after the baseline, each worse than it by > threshold.

    This is the regression checklist's consistency count (3+ consecutive runs)."""
    count = 0
    for point in reversed(points):
        if is_baseline(point) or worse_pct(baseline_median, point.median, direction) <= threshold_pct:
            break
        count += 1
    return count
