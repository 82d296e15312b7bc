"""Budgets judged from literal runs: absolute ceilings and floors with their confidence,
relative limits through the two-sample rule, block vs warn, and too little data."""

from __future__ import annotations

import numpy as np
import pytest

from perfd.analysis.budgets import (
    BudgetSpec,
    BudgetStatus,
    RunValues,
    evaluate_budget,
    median_ci,
)
from perfd.model import Confidence, Direction

RNG_SEED = 3


def run(values, p95=None, p99=None, n_samples=None) -> RunValues:
    values = tuple(float(v) for v in values)
    return RunValues(process_values=values, p95=p95, p99=p99,
                     n_samples=n_samples if n_samples is not None else 10 * len(values))


def spec(**kw) -> BudgetSpec:
    base = {"label": "request/* time", "statistic": "median", "max_value": None,
            "max_regression_pct": None, "min_confidence": Confidence.MEDIUM, "blocking": True}
    return BudgetSpec(**{**base, **kw})


def judge(s: BudgetSpec, current: RunValues | None, baseline: RunValues | None = None,
          direction: Direction = Direction.LOWER):
    return evaluate_budget(s, current, baseline, direction=direction,
                           rng=np.random.default_rng(RNG_SEED))


def test_median_ci_uses_order_statistics() -> None:
    assert median_ci([5, 1, 4, 2, 3, 7, 6]) == (1.0, 7.0)  # n=7: x(1)..x(7), 98% coverage
    lo, hi = median_ci(range(1, 21))  # n=20: x(6)..x(15)
    assert (lo, hi) == (6.0, 15.0)
    assert median_ci([1, 2, 3, 4, 5]) == (float("-inf"), float("inf"))  # too few to bound


def test_an_absolute_ceiling_passes_and_fails_by_the_whole_ci() -> None:
    ceiling = spec(max_value=2500.0)
    ok = judge(ceiling, run([2400, 2410, 2420, 2430, 2440, 2450, 2460]))
    assert ok.status is BudgetStatus.PASS and ok.value == 2430.0
    bad = judge(ceiling, run([2600, 2610, 2620, 2630, 2640, 2650, 2660]))
    assert bad.status is BudgetStatus.FAIL and bad.confidence is Confidence.HIGH
    assert bad.reason == ("median 2630 is above the limit 2500 (+5.2%); the whole 95% CI "
                          "(2600 .. 2660) is beyond it: HIGH confidence")


def test_a_point_beyond_the_limit_with_the_ci_across_it_is_medium() -> None:
    values = [2450, 2480, 2490, 2510, 2520, 2530, 2540]
    medium = judge(spec(max_value=2500.0), run(values))
    assert medium.status is BudgetStatus.FAIL and medium.confidence is Confidence.MEDIUM
    strict = judge(spec(max_value=2500.0, min_confidence=Confidence.HIGH), run(values))
    assert strict.status is BudgetStatus.PASS
    assert "needs HIGH" in strict.reason


def test_a_floor_for_higher_is_better() -> None:
    floor = spec(label="request/handle throughput", max_value=400_000.0)
    r = judge(floor, run([380_000, 381_000, 382_000, 383_000, 384_000, 385_000, 386_000]),
              direction=Direction.HIGHER)
    assert r.status is BudgetStatus.FAIL
    assert r.reason.startswith("median 383000 is below the limit 400000 (-4.2%)")


def test_warn_budgets_warn_instead_of_failing() -> None:
    r = judge(spec(max_value=2500.0, blocking=False), run([2600, 2610, 2620, 2630, 2640, 2650, 2660]))
    assert r.status is BudgetStatus.WARN


def test_a_relative_limit_goes_through_the_two_sample_rule() -> None:
    base = run([1000 + i for i in range(10)])
    slow = run([1100 + i for i in range(10)])  # +10%
    bad = judge(spec(max_regression_pct=5.0), slow, base)
    assert bad.status is BudgetStatus.FAIL and bad.confidence is Confidence.HIGH
    assert bad.change_pct == pytest.approx(10.0, abs=0.1)
    assert "regressed +10.0% against the baseline, more than the 5% allowed" in bad.reason
    small = judge(spec(max_regression_pct=5.0), run([1030 + i for i in range(10)]), base)
    assert small.status is BudgetStatus.PASS and small.change_pct == pytest.approx(3.0, abs=0.1)


def test_a_relative_limit_without_a_baseline_has_no_data() -> None:
    r = judge(spec(max_regression_pct=5.0), run([1000 + i for i in range(10)]), None)
    assert r.status is BudgetStatus.NO_DATA and "no baseline run" in r.reason
    both = judge(spec(max_regression_pct=5.0, max_value=2000.0), run([1000 + i for i in range(10)]))
    assert both.status is BudgetStatus.PASS  # the absolute half can still be judged


def test_a_limit_against_the_reference_goes_through_the_paired_rule() -> None:
    reference = run([1000 + i for i in range(8)])
    current = run([1100 + i for i in range(8)])
    pairs = [1.1, 1.098, 1.102, 1.099, 1.101, 1.097, 1.103, 1.1]  # current/reference, per pair
    budget = spec(max_regression_pct=5.0, against_reference=True)
    r = evaluate_budget(budget, current, reference, direction=Direction.LOWER,
                        rng=np.random.default_rng(RNG_SEED), reference_pairs=pairs)
    assert r.status is BudgetStatus.FAIL and "against the reference" in r.reason
    assert r.confidence is Confidence.HIGH and r.change_pct == pytest.approx(9.9, abs=0.2)
    within = evaluate_budget(budget, run([1020 + i for i in range(8)]), reference,
                             direction=Direction.LOWER, reference_pairs=[1.02] * 8)
    assert within.status is BudgetStatus.PASS
    unpaired = evaluate_budget(budget, current, None, direction=Direction.LOWER)
    assert unpaired.status is BudgetStatus.NO_DATA and "not paired" in unpaired.reason


def test_a_change_beyond_the_allowance_that_cannot_be_proven_is_no_data() -> None:
    # 5 pairs: the signed-rank test cannot reach p < 0.05, so a +10% estimate is unproven
    r = evaluate_budget(spec(max_regression_pct=5.0, max_value=5000.0, against_reference=True),
                        run([1100 + i for i in range(5)]), run([1000 + i for i in range(5)]),
                        direction=Direction.LOWER, reference_pairs=[1.1] * 5)
    assert r.status is BudgetStatus.NO_DATA and "too little to judge" in r.reason


def test_tail_statistics_have_no_process_ci() -> None:
    tail = spec(statistic="p99", max_value=3000.0)
    many = judge(tail, run([2000] * 5, p99=3100.0, n_samples=500))
    assert many.status is BudgetStatus.FAIL and many.confidence is Confidence.MEDIUM
    few = judge(tail, run([2000] * 5, p99=3100.0, n_samples=50))
    assert few.status is BudgetStatus.PASS and few.confidence is Confidence.LOW


def test_a_metric_the_run_did_not_measure_has_no_data() -> None:
    r = judge(spec(max_value=1.0), None)
    assert r.status is BudgetStatus.NO_DATA and r.value is None
    assert r.reason == "the run has no values of this metric"


def test_a_spec_needs_a_limit() -> None:
    with pytest.raises(ValueError, match="BudgetSpec"):
        spec()
