"""What alert and analyze both need to read a series' history the same way.

- :func:`ratio_series`: a series as ratios to the reference of its newest run, runs against
  an older reference carried over through the measured link factors.
- :func:`trailing_step`: where a series' newest runs stepped away from the stable stretch
  before them, and how many of them are worse than it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from perfd.config import SuiteConfig
from perfd.model import KNOWN_METRICS, Direction
from perfd.records import LinkRecord, ReferenceRecord
from perfd.store import SeriesKey, SeriesPoint
from perfd.store.reader import Reader

# Runs of the stable stretch before a step that the step is judged against (their values
# pooled): one run's few pairs cannot reach a small p once FDR counts every series.
BASELINE_RUNS = 5
# A step is looked for among this many newest runs: a longer stretch of worse runs that
# never alerted is the series' new level.
MAX_STREAK = 2 * BASELINE_RUNS


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


@dataclass(frozen=True, slots=True)
class Step:
    """The newest runs of a series against the stable stretch before them."""

    baseline: tuple[SeriesPoint, ...]  # up to BASELINE_RUNS runs before, one-run outliers left out
    after: tuple[SeriesPoint, ...]  # the trailing worse runs, or the newest run alone
    worse_runs: int  # len(after) when those runs are worse than the baseline, else 0
    # the run just before ``after``: the last good commit, which the confirming A/B measures
    # (it may be left out of ``baseline`` as an outlier, yet the step is after its commit)
    last_good: SeriesPoint


def trailing_step(points: Sequence[SeriesPoint], direction: Direction,
                  threshold_pct: float) -> Step:
    """The newest runs that stepped away from the stable stretch before them, and those runs.

    A step may start at any of the last MAX_STREAK runs when the runs from there on are,
    by their median, worse by more than the threshold than the median of the BASELINE_RUNS
    runs before it, and the newest run still is worse by more than half the threshold.
    Among those starts the one with the largest least-squares gain is the step (noise above
    the threshold can make an earlier start qualify; one noisy run inside a real step does
    not break it). ``worse_runs`` counts the runs after the step that are each worse by
    more than the threshold. With no such start: the newest run and the runs before it.
    Raises ValueError for fewer than two points."""
    if len(points) < 2:
        raise ValueError(f"trailing_step: needs at least two runs, got {len(points)}")
    n = len(points)
    values = [p.median for p in points]
    starts = []
    for k in range(1, min(MAX_STREAK, n - 1) + 1):
        cut = n - k
        level = statistics.median(values[max(0, cut - BASELINE_RUNS):cut])
        if (worse_pct(level, statistics.median(values[cut:]), direction) > threshold_pct
                and worse_pct(level, values[-1], direction) > threshold_pct / 2):
            starts.append((cut, level))
    if not starts:
        return Step(stable_stretch(points[:-1], threshold_pct), (points[-1],), 0, points[-2])
    w0 = max(0, n - MAX_STREAK - BASELINE_RUNS)
    gains = _step_gains(values[w0:])
    cut, level = max(starts, key=lambda start: gains[start[0] - w0])
    worse = sum(worse_pct(level, v, direction) > threshold_pct for v in values[cut:])
    return Step(stable_stretch(points[:cut], threshold_pct), tuple(points[cut:]), worse,
                points[cut - 1])


def _step_gains(values: Sequence[float]) -> dict[int, float]:
    """For each split j of ``values`` (1 <= j < len), the least-squares gain of one mean
    shift there, (mean after - mean before)^2 * n_before * n_after: where the step is, as
    the change-point detector would place it."""
    gains = {}
    for j in range(1, len(values)):
        left, right = values[:j], values[j:]
        gains[j] = (sum(right) / len(right) - sum(left) / len(left)) ** 2 * len(left) * len(right)
    return gains


def stable_stretch(points: Sequence[SeriesPoint], threshold_pct: float) -> tuple[SeriesPoint, ...]:
    """The last BASELINE_RUNS of ``points`` without those further than the threshold from
    their median (a one-run excursion is not part of a baseline); all of them when every
    one is that far."""
    window = points[-BASELINE_RUNS:]
    level = statistics.median(p.median for p in window)
    kept = tuple(p for p in window
                 if level and abs(p.median / level - 1.0) * 100.0 <= threshold_pct)
    return kept or tuple(window)


# ----------------------------------------------------------------------------- ratio series


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a ratio series moves to another reference: ``run_id`` is the first run measured
    against ``reference``; the runs before it are carried over by ``factor`` (new/previous,
    with its CI) from the link measured when the reference was set."""

    run_id: int
    commit_sha: str
    reference: str
    factor: float
    ci: tuple[float, float]


@dataclass(frozen=True, slots=True)
class RatioSeries:
    """A series as each run's ratio to one reference (``SeriesPoint.median`` is the ratio),
    with each run's pair ratios on the same scale. Runs that cannot be carried over to the
    reference (no link measured for this benchmark x metric) are left out."""

    points: tuple[SeriesPoint, ...]
    pair_ratios: Mapping[int, tuple[float, ...]]  # run id -> its pairs' ratios
    reference: str  # the reference all values are against, as it was typed
    anchors: tuple[Anchor, ...]

    @property
    def label(self) -> str:
        text = f"against the reference {self.reference}"
        if self.anchors:
            text += " (" + "; ".join(
                f"re-anchored at {a.commit_sha[:12]} on {a.reference}, link x{a.factor:.4f} "
                f"[{a.ci[0]:.4f}, {a.ci[1]:.4f}]" for a in self.anchors) + ")"
        return text

    def values(self, run_ids: Sequence[int]) -> dict[int, list[float]]:
        """Pair ratios of the given runs (only those in the series)."""
        return {i: list(self.pair_ratios[i]) for i in run_ids if i in self.pair_ratios}


def ratio_series(reader: Reader, key: SeriesKey, points: Sequence[SeriesPoint],
                 references: Mapping[int, ReferenceRecord],
                 links: Sequence[LinkRecord]) -> RatioSeries | None:
    """The series as ratios to the reference of its newest run (None when that run was not
    paired with a reference): runs against an older reference are divided by the product of
    the link factors from it to the newest one."""
    if not points:
        return None
    ratios = reader.ratios_for_runs([p.run_id for p in points], key.benchmark, key.metric)
    newest = ratios.get(points[-1].run_id)
    if newest is None:
        return None
    scale = _scales(newest.reference_id, key, links)
    kept: list[SeriesPoint] = []
    pairs: dict[int, tuple[float, ...]] = {}
    anchors: list[Anchor] = []
    previous_ref: int | None = None
    for p in points:
        r = ratios.get(p.run_id)
        if r is None or r.reference_id not in scale:
            continue
        factor = scale[r.reference_id]
        kept.append(replace(p, median=r.ratio / factor))
        pairs[p.run_id] = tuple(x / factor for x in r.pair_ratios)
        if previous_ref is not None and r.reference_id != previous_ref:
            link = _link(links, r.reference_id, key)  # into this run's reference
            if link is not None:
                anchors.append(Anchor(p.run_id, p.commit_sha, _name(references, r.reference_id),
                                      link.factor, (link.ci_low, link.ci_high)))
        previous_ref = r.reference_id
    return RatioSeries(tuple(kept), pairs, _name(references, newest.reference_id), tuple(anchors))


def _link(links: Sequence[LinkRecord], reference_id: int, key: SeriesKey) -> LinkRecord | None:
    return next((link for link in links if link.reference_id == reference_id
                 and link.benchmark == key.benchmark and link.metric == key.metric), None)


def _scales(target: int, key: SeriesKey, links: Sequence[LinkRecord]) -> dict[int, float]:
    """reference id -> what a ratio against it is divided by to be against ``target``."""
    scale = {target: 1.0}
    current = target
    while (link := _link(links, current, key)) is not None and link.previous_reference_id not in scale:
        scale[link.previous_reference_id] = scale[current] * link.factor
        current = link.previous_reference_id
    return scale


def _name(references: Mapping[int, ReferenceRecord], reference_id: int) -> str:
    ref = references.get(reference_id)
    if ref is None:
        return f"#{reference_id}"
    return ref.rev if ref.rev != ref.commit_sha else ref.commit_sha[:12]
