"""Is a run within its budgets? One budget, one benchmark x metric, judged with confidence.

A budget holds one statistic of a run (median, mean, p95 or p99) to an absolute limit (a
ceiling for lower-is-better metrics, a floor for higher-is-better ones), to a largest
regression against the baseline run, or to both.

- **Absolute, median or mean:** the limit is broken with HIGH confidence when the whole 95%
  confidence interval of the statistic over the run's process values lies beyond it
  (distribution-free order statistics for the median, Student's t for the mean), MEDIUM when
  the point estimate is beyond it with at least 5 processes, LOW otherwise.
- **Absolute, p95 or p99:** tails are over iteration samples, which are not independent
  enough for an interval; beyond the limit is MEDIUM with at least 200 samples, else LOW.
- **Relative to the baseline run:** the two-sample rule of perfd.analysis.compare
  (Mann-Whitney U on process values, bootstrap CI) decides REGRESSED and its confidence, with
  the budget's allowance as the threshold; for p95/p99/mean the change is that statistic's,
  the confidence the rule's.
- **Relative to the reference:** the same, with the paired rule (Wilcoxon signed-rank on the
  run's lock-step pair ratios to the reference build); the change is the statistic's against
  the reference side of those pairs.

A breach counts only at the budget's confidence or more; below it the budget passes and the
reason says what was seen. Too little to judge is NO_DATA, never PASS.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats

from perfd.analysis.compare import compare_independent, compare_paired
from perfd.model import Confidence, Direction, Status

STATISTICS = ("median", "mean", "p95", "p99")
MIN_PROCESSES_FOR_MEDIUM = 5
MIN_SAMPLES_FOR_TAIL = 200


class BudgetStatus(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"  # a blocking budget broke
    WARN = "WARN"  # a warning budget broke
    NO_DATA = "NO_DATA"


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """What to hold one benchmark x metric to (values in the metric's unit)."""

    label: str  # how people name the budget, e.g. "example request/* time median"
    statistic: str
    max_value: float | None
    max_regression_pct: float | None
    min_confidence: Confidence
    blocking: bool
    against_reference: bool = False  # the relative limit is against the reference build

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"BudgetSpec.statistic: must be one of {', '.join(STATISTICS)}, "
                             f"got {self.statistic!r}")
        if self.max_value is None and self.max_regression_pct is None:
            raise ValueError("BudgetSpec: needs max_value, max_regression_pct or both")
        if self.max_regression_pct is not None and not self.max_regression_pct > 0:
            raise ValueError(f"BudgetSpec.max_regression_pct: must be > 0, got "
                             f"{self.max_regression_pct!r}")


@dataclass(frozen=True, slots=True)
class RunValues:
    """What a budget reads of one run's benchmark x metric."""

    process_values: tuple[float, ...]  # one per process (median of its samples)
    p95: float | None = None  # over iteration samples
    p99: float | None = None
    n_samples: int = 0

    def statistic(self, name: str) -> float | None:
        if name == "median":
            return float(np.median(self.process_values)) if self.process_values else None
        if name == "mean":
            return float(np.mean(self.process_values)) if self.process_values else None
        return self.p95 if name == "p95" else self.p99


@dataclass(frozen=True, slots=True)
class BudgetResult:
    status: BudgetStatus
    reason: str
    value: float | None  # the run's statistic
    baseline_value: float | None = None
    change_pct: float | None = None  # worse (+) or better (-) than the baseline, percent
    confidence: Confidence | None = None  # of the breach, when something was beyond a limit


def median_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics ((-inf, inf) when n is too
    small for the level)."""
    x = np.sort(np.asarray(list(values), dtype=float))
    n = x.size
    alpha = 1.0 - level
    # largest k with P(Binomial(n, 1/2) < k) <= alpha/2: the CI is x(k) .. x(n-k+1), 1-based
    k = int(stats.binom.ppf(alpha / 2, n, 0.5))
    while k > 0 and stats.binom.cdf(k - 1, n, 0.5) > alpha / 2:
        k -= 1
    while stats.binom.cdf(k, n, 0.5) <= alpha / 2:
        k += 1
    if k < 1:
        return float("-inf"), float("inf")
    return float(x[k - 1]), float(x[n - k])


def _mean_ci(values: tuple[float, ...], level: float = 0.95) -> tuple[float, float]:
    n = len(values)
    if n < 2:
        return float("-inf"), float("inf")
    mean = float(np.mean(values))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * np.std(values, ddof=1) / math.sqrt(n))
    return mean - half, mean + half


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"


def _beyond(value: float, limit: float, direction: Direction) -> bool:
    return value > limit if direction is Direction.LOWER else value < limit


def _absolute(spec: BudgetSpec, run: RunValues, value: float, limit: float,
              direction: Direction) -> tuple[bool, Confidence | None, str]:
    """(beyond at all, confidence of the breach, reason) of the absolute limit."""
    side = "above" if direction is Direction.LOWER else "below"
    head = (f"{spec.statistic} {_fmt(value)} is {side} the limit {_fmt(limit)} "
            f"({(value / limit - 1) * 100:+.1f}%)")
    if not _beyond(value, limit, direction):
        return False, None, f"{spec.statistic} {_fmt(value)} is within the limit {_fmt(limit)}"
    if spec.statistic in ("p95", "p99"):
        confidence = Confidence.MEDIUM if run.n_samples >= MIN_SAMPLES_FOR_TAIL else Confidence.LOW
        return True, confidence, (f"{head}; a tail over {run.n_samples} samples: "
                                  f"{confidence} confidence")
    lo, hi = (median_ci(run.process_values) if spec.statistic == "median"
              else _mean_ci(run.process_values))
    whole = lo > limit if direction is Direction.LOWER else hi < limit
    if whole:
        return True, Confidence.HIGH, (f"{head}; the whole 95% CI ({_fmt(lo)} .. {_fmt(hi)}) is "
                                       "beyond it: HIGH confidence")
    n = len(run.process_values)
    confidence = Confidence.MEDIUM if n >= MIN_PROCESSES_FOR_MEDIUM else Confidence.LOW
    return True, confidence, (f"{head}; its 95% CI reaches back within it, {n} processes: "
                              f"{confidence} confidence")


def _relative(spec: BudgetSpec, current: RunValues, baseline: RunValues, direction: Direction,
              rng: np.random.Generator | None, pairs: Sequence[float] | None,
              ) -> tuple[bool, Confidence | None, str, float | None, float | None]:
    """(broken, confidence, reason, baseline statistic, worse change %) of the relative limit;
    with ``pairs`` (current/reference ratios of lock-step pairs) the paired rule decides."""
    allowed = spec.max_regression_pct
    assert allowed is not None
    what = "the reference" if pairs is not None else "the baseline"
    if pairs is not None:  # one value per pair: the reference side as 1, the current as its ratio
        comparison = compare_paired([1.0] * len(pairs), list(pairs), direction=direction,
                                    threshold_pct=allowed, rng=rng)
    else:
        comparison = compare_independent(baseline.process_values, current.process_values,
                                         direction=direction, threshold_pct=allowed, rng=rng)
    before, after = baseline.statistic(spec.statistic), current.statistic(spec.statistic)
    if before is None or after is None or before == 0:
        return False, None, f"no {spec.statistic} of {what} to compare with", before, None
    change = (after / before - 1.0) * 100.0
    worse = change if direction is Direction.LOWER else -change
    regressed = comparison.status is Status.REGRESSED
    confidence = comparison.confidence if regressed else None
    if worse > allowed and comparison.status in (Status.INSUFFICIENT_DATA, Status.NOISY):
        return False, None, (f"{spec.statistic} changed {worse:+.1f}% against {what} (at most "
                             f"+{allowed:g}% allowed), too little to judge: "
                             f"{comparison.status}: {comparison.reason}"), before, None
    if worse <= allowed or not regressed:
        why = "" if worse <= allowed else f" but the change is {comparison.status}: {comparison.reason}"
        return False, confidence, (f"{spec.statistic} changed {worse:+.1f}% against {what} "
                                   f"(at most +{allowed:g}% allowed){why}"), before, worse
    return True, confidence, (f"{spec.statistic} regressed {worse:+.1f}% against {what}, "
                              f"more than the {allowed:g}% allowed ({confidence} confidence: "
                              f"{comparison.reason})"), before, worse


def evaluate_budget(spec: BudgetSpec, current: RunValues | None, baseline: RunValues | None, *,
                    direction: Direction, rng: np.random.Generator | None = None,
                    reference_pairs: Sequence[float] | None = None) -> BudgetResult:
    """Judge one benchmark x metric of a run against one budget (see the module docstring).
    For a budget against the reference, ``baseline`` is the reference side of the run's pairs
    and ``reference_pairs`` the pairs' current/reference ratios."""
    value = current.statistic(spec.statistic) if current is not None else None
    if current is None or value is None:
        return BudgetResult(BudgetStatus.NO_DATA, "the run has no values of this metric", None)
    reasons: list[str] = []
    broken: list[Confidence] = []
    seen: list[Confidence] = []
    baseline_value = change = None
    judged = undecided = False
    if spec.max_value is not None:
        judged = True
        beyond, confidence, why = _absolute(spec, current, value, spec.max_value, direction)
        reasons.append(why)
        if beyond and confidence is not None:
            seen.append(confidence)
            if confidence.rank >= spec.min_confidence.rank:
                broken.append(confidence)
    if spec.max_regression_pct is not None:
        if spec.against_reference and (baseline is None or not reference_pairs):
            reasons.append("the run was not paired with a reference build to hold the relative "
                           "limit to (measured alone, or no reference set)")
        elif baseline is None or not baseline.process_values:
            reasons.append("no baseline run to hold the relative limit to")
        else:
            judged = True
            hit, confidence, why, baseline_value, change = _relative(
                spec, current, baseline, direction, rng,
                reference_pairs if spec.against_reference else None)
            undecided = change is None  # beyond the allowance by its estimate, unproven
            reasons.append(why)
            if hit and confidence is not None:
                seen.append(confidence)
                if confidence.rank >= spec.min_confidence.rank:
                    broken.append(confidence)
    if broken:
        status = BudgetStatus.FAIL if spec.blocking else BudgetStatus.WARN
        return BudgetResult(status, "; ".join(reasons), value, baseline_value, change,
                            max(broken, key=lambda c: c.rank))
    if not judged or undecided:
        return BudgetResult(BudgetStatus.NO_DATA, "; ".join(reasons), value, baseline_value)
    top = max(seen, key=lambda c: c.rank) if seen else None
    if top is not None:
        reasons.append(f"not counted: {top} confidence, the budget needs {spec.min_confidence}")
    return BudgetResult(BudgetStatus.PASS, "; ".join(reasons), value, baseline_value, change, top)
