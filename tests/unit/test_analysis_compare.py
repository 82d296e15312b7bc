import math
from dataclasses import replace

import numpy as np
import pytest

from perfd.analysis.compare import (
    Comparison,
    Confidence,
    Status,
    compare_independent,
    compare_paired,
    lockstep_pair_values,
    smallest_attainable_p,
)
from perfd.model import Direction

LOWER = Direction.LOWER
HIGHER = Direction.HIGHER


def processes(seed: int, median: float = 1000.0, cv: float = 0.02, n: int = 10) -> np.ndarray:
    """n process-level values: lognormal noise of the given CV around a median (in ns)."""
    return median * np.exp(np.random.default_rng(seed).normal(0.0, cv, n))


def criteria(c: Comparison) -> dict[str, bool]:
    return {cr.name: cr.met for cr in c.criteria}


# --- seed scenarios: 10 processes per side, baseline median 1000 ns, 2% lognormal noise -----


def test_ten_percent_slower_with_three_bad_runs_is_regressed_high():
    c = compare_independent(processes(1), processes(2, 1100.0), direction=LOWER,
                            consecutive_worse_runs=3)
    assert c.status is Status.REGRESSED
    assert c.confidence is Confidence.HIGH
    assert c.alert_worthy
    assert criteria(c) == {"magnitude": True, "significance": True, "consistency": True,
                           "stable_baseline": True, "environment": True}
    assert c.change_pct == pytest.approx(10.0, abs=2.0)
    assert c.ratio_ci[0] > 1.05
    assert c.test == "mann-whitney-u"
    assert (c.n_baseline, c.n_current) == (10, 10)


def test_five_percent_slower_without_history_is_detected_with_medium_confidence():
    c = compare_independent(processes(3), processes(4, 1050.0), direction=LOWER)
    assert c.status is Status.REGRESSED
    assert c.confidence is Confidence.MEDIUM
    assert c.alert_worthy
    consistency = c.criterion("consistency")
    assert consistency is not None and not consistency.met
    assert "unknown" in consistency.detail


def test_two_percent_slower_does_not_alert():
    # significant here, so it is reported - but far enough below the threshold not to alert
    # (over many seeds see test_rates_over_many_seeds_match_the_scenarios)
    c = compare_independent(processes(41), processes(141, 1020.0), direction=LOWER,
                            consecutive_worse_runs=3)
    assert not c.alert_worthy
    assert c.status is Status.REGRESSED and c.confidence is Confidence.LOW
    assert not criteria(c)["magnitude"]


def test_unstable_baseline_does_not_alert():
    baseline = processes(7, cv=0.25)
    assert np.std(baseline, ddof=1) / np.mean(baseline) >= 0.15
    c = compare_independent(baseline, processes(8, 1100.0), direction=LOWER,
                            consecutive_worse_runs=3)
    assert c.status is Status.NOISY
    assert not c.alert_worthy
    assert c.confidence is None
    assert c.reason.startswith("baseline CV ")
    assert ">= 15%" in c.reason
    assert not criteria(c)["stable_baseline"]


def test_a_huge_shift_on_an_unstable_baseline_is_still_reported():
    c = compare_independent(processes(9, cv=0.25), processes(10, 3000.0), direction=LOWER)
    assert c.status is Status.REGRESSED
    assert not criteria(c)["stable_baseline"]


def test_a_a_comparisons_never_alert():
    alerts = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        baseline = 1000.0 * np.exp(rng.normal(0.0, 0.02, 10))
        current = 1000.0 * np.exp(rng.normal(0.0, 0.02, 10))
        alerts += compare_independent(baseline, current, direction=LOWER,
                                      consecutive_worse_runs=3, rng=rng, n_boot=500).alert_worthy
    assert alerts / 200 <= 0.01


def test_rates_over_many_seeds_match_the_scenarios():
    found_5 = found_2 = 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        baseline = 1000.0 * np.exp(rng.normal(0.0, 0.02, 10))
        noise = np.exp(rng.normal(0.0, 0.02, 10))
        found_5 += compare_independent(baseline, 1050.0 * noise, direction=LOWER, rng=rng,
                                       n_boot=500).alert_worthy
        found_2 += compare_independent(baseline, 1020.0 * noise, direction=LOWER, rng=rng,
                                       n_boot=500).alert_worthy
    assert found_5 >= 80
    assert found_2 <= 15


# --- direction, environment, effect sizes --------------------------------------------------


def test_throughput_drop_is_a_regression_for_higher_is_better():
    c = compare_independent(processes(11, 5e6), processes(12, 4.5e6), direction=HIGHER,
                            consecutive_worse_runs=3)
    assert c.status is Status.REGRESSED
    assert c.alert_worthy
    assert c.change_pct == pytest.approx(-10.0, abs=2.0)
    assert c.ratio_ci[1] < 1.0
    assert c.direction is HIGHER


def test_throughput_gain_is_an_improvement_and_time_drop_too():
    up = compare_independent(processes(13, 5e6), processes(14, 5.5e6), direction=HIGHER)
    assert up.status is Status.IMPROVED and up.confidence is not None
    assert not up.alert_worthy
    faster = compare_independent(processes(13), processes(14, 900.0), direction=LOWER)
    assert faster.status is Status.IMPROVED
    assert faster.criterion("consistency").detail == "consistency is tracked for regressions only"


def test_changed_environment_fails_its_criterion_and_can_make_it_incomparable():
    base, cur = processes(15), processes(16, 1100.0)
    flagged = compare_independent(base, cur, direction=LOWER, env_changed=True)
    assert flagged.status is Status.REGRESSED
    env = flagged.criterion("environment")
    assert env is not None and not env.met and "changed" in env.detail
    assert "environment fingerprint changed" in flagged.reason
    unflagged = compare_independent(base, cur, direction=LOWER)
    assert sum(criteria(flagged).values()) == sum(criteria(unflagged).values()) - 1

    refused = compare_independent(base, cur, direction=LOWER, env_changed=True,
                                  incomparable_on_env_change=True)
    assert refused.status is Status.INCOMPARABLE
    assert refused.confidence is None and not refused.alert_worthy
    assert "not comparable" in refused.reason and "REGRESSED" in refused.reason
    assert refused.p_value is not None  # still computed, for the report


def test_tiny_but_significant_shift_stays_low_confidence():
    # 0.1% noise makes a 1.5% shift certain, but it is far below the 5% threshold
    c = compare_independent(processes(17, cv=0.001), processes(18, 1015.0, cv=0.001),
                            direction=LOWER, consecutive_worse_runs=5)
    assert c.status is Status.REGRESSED
    assert c.confidence is Confidence.LOW
    assert not c.alert_worthy
    assert criteria(c) == {"magnitude": False, "significance": True, "consistency": True,
                           "stable_baseline": True, "environment": True}
    assert "below the 5% threshold" in c.reason


def test_shift_below_the_minimum_reported_change_is_unchanged():
    c = compare_independent(processes(19, cv=0.0005), processes(20, 1005.0, cv=0.0005),
                            direction=LOWER)
    assert c.p_value is not None and c.p_value < 0.05
    assert c.status is Status.UNCHANGED
    assert "minimum reported change" in c.reason


def test_effect_sizes_on_a_hand_computed_example():
    baseline = [10.0, 11.0, 12.0, 13.0, 14.0]
    current = [12.0, 13.0, 14.0, 15.0, 16.0]
    c = compare_independent(baseline, current, direction=LOWER)
    # means 12 and 14, both SDs sqrt(2.5): d = 2 / sqrt(2.5)
    assert c.cohen_d == pytest.approx(2.0 / math.sqrt(2.5))
    # 25 pairs: 19 current > baseline, 3 current < baseline, 3 ties
    assert c.cliffs_delta == pytest.approx((19 - 3) / 25)
    # median of all pairwise differences is 2, the baseline median 12
    assert c.hodges_lehmann_pct == pytest.approx(2.0 / 12.0 * 100.0)
    assert c.change_pct == pytest.approx((14.0 / 12.0 - 1.0) * 100.0)
    assert c.baseline_median == 12.0 and c.current_median == 14.0
    assert c.baseline_cv == pytest.approx(math.sqrt(2.5) / 12.0)


def test_identical_deterministic_values_have_no_cohen_d_and_are_unchanged():
    c = compare_independent([500.0] * 8, [500.0] * 8, direction=LOWER)
    assert c.status is Status.UNCHANGED
    assert c.p_value == 1.0 and c.cohen_d is None and c.cliffs_delta == 0.0


def test_deterministic_counter_step_is_a_confident_regression():
    # instruction counts: no noise at all, +3% against a 1% threshold
    c = compare_independent([1e6] * 10, [1.03e6] * 10, direction=LOWER, threshold_pct=1.0)
    assert c.status is Status.REGRESSED
    assert c.confidence is Confidence.HIGH
    assert c.ratio_ci == pytest.approx((1.03, 1.03))


# --- refusing to judge -----------------------------------------------------------------------


def test_too_few_processes_is_insufficient_data_never_unchanged():
    c = compare_independent(processes(21, n=4), processes(22, n=10), direction=LOWER)
    assert c.status is Status.INSUFFICIENT_DATA
    assert c.confidence is None and c.p_value is None and not c.alert_worthy
    assert "too few values: 4 baseline and 10 current" in c.reason
    assert c.criteria == ()


def test_empty_side_is_insufficient_data():
    c = compare_independent([], processes(23), direction=LOWER)
    assert c.status is Status.INSUFFICIENT_DATA
    assert math.isnan(c.baseline_median) and math.isnan(c.change_pct)


def test_unreachable_alpha_is_insufficient_data():
    # 5 vs 5: the U test's smallest two-sided p is 2 / C(10, 5) = 0.0079
    assert smallest_attainable_p(5, 5, paired=False) == pytest.approx(2 / 252)
    c = compare_independent(processes(24, n=5), processes(25, 2000.0, n=5), direction=LOWER,
                            alpha=0.001)
    assert c.status is Status.INSUFFICIENT_DATA
    assert "cannot reach p < 0.001" in c.reason and "0.00794" in c.reason
    # 5 pairs: the signed-rank test's smallest two-sided p is 2 / 2^5 = 0.0625
    assert smallest_attainable_p(5, 5, paired=True) == pytest.approx(0.0625)
    p = compare_paired(processes(26, n=5), processes(27, 2000.0, n=5), direction=LOWER)
    assert p.status is Status.INSUFFICIENT_DATA
    assert "add pairs" in p.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, 0.0, -5.0])
def test_non_finite_or_non_positive_values_are_refused(bad):
    values = [1000.0, 1001.0, 999.0, 1000.5, bad]
    with pytest.raises(ValueError, match="must be finite and > 0"):
        compare_independent(values, processes(28, n=5), direction=LOWER)
    with pytest.raises(ValueError, match="must be finite and > 0"):
        compare_paired(processes(28, n=5), values, direction=LOWER)


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="one value per pair"):
        compare_paired(processes(29, n=6), processes(30, n=7), direction=LOWER)
    with pytest.raises(ValueError, match="alpha"):
        compare_independent(processes(29), processes(30), direction=LOWER, alpha=1.5)
    with pytest.raises(ValueError, match="threshold_pct"):
        compare_independent(processes(29), processes(30), direction=LOWER, threshold_pct=0)
    with pytest.raises(ValueError, match="direction"):
        compare_independent(processes(29), processes(30), direction="lower")


def test_confidence_is_only_carried_by_a_change():
    c = compare_independent(processes(31), processes(32), direction=LOWER)
    with pytest.raises(ValueError, match="only REGRESSED/IMPROVED"):
        replace(c, status=Status.UNCHANGED, confidence=Confidence.HIGH)


# --- bootstrap reproducibility and paired runs -----------------------------------------------


def test_bootstrap_is_reproducible_with_the_same_generator_or_none():
    base, cur = processes(33), processes(34, 1030.0)
    a = compare_independent(base, cur, direction=LOWER, rng=np.random.default_rng(5))
    b = compare_independent(base, cur, direction=LOWER, rng=np.random.default_rng(5))
    assert a == b
    assert compare_independent(base, cur, direction=LOWER) == compare_independent(
        base, cur, direction=LOWER)
    lo, hi = a.ratio_ci
    assert lo < 1.03 < hi


def test_paired_runs_cancel_drift_that_makes_the_baseline_noisy():
    # the machine slows down 5% per pair; each current value ran right next to its baseline
    drift = 1.05 ** np.arange(12)
    noise = processes(35, 1.0, 0.005, 12)
    baseline = 1000.0 * drift * noise
    current = 1100.0 * drift * processes(36, 1.0, 0.005, 12)
    paired = compare_paired(baseline, current, direction=LOWER, consecutive_worse_runs=3)
    assert paired.test == "wilcoxon-signed-rank"
    assert paired.status is Status.REGRESSED and paired.confidence is Confidence.HIGH
    assert paired.change_pct == pytest.approx(10.0, abs=1.0)
    assert paired.ratio_ci[0] > 1.08
    assert paired.baseline_cv >= 0.15  # the drift...
    stable = paired.criterion("stable_baseline")
    assert stable is not None and stable.met  # ...is not noise the paired test sees
    assert stable.detail.startswith("pair noise CV ") and "pairing cancels" in stable.detail
    # the same values treated as independent batches are too noisy to judge
    independent = compare_independent(baseline, current, direction=LOWER)
    assert independent.status is Status.NOISY
    assert independent.reason.startswith("baseline CV ")


def test_noisy_pairs_are_noisy():
    c = compare_paired(processes(38, cv=0.25, n=12), processes(39, 1100.0, cv=0.25, n=12),
                       direction=LOWER)
    assert c.status is Status.NOISY
    assert c.reason.startswith("pair noise CV ")


def test_paired_identical_runs_are_unchanged():
    values = processes(37, n=8)
    c = compare_paired(values, values, direction=LOWER)
    assert c.status is Status.UNCHANGED and c.p_value == 1.0
    assert c.ratio_ci == (1.0, 1.0) and c.change_pct == 0.0


def test_paired_hodges_lehmann_uses_walsh_averages():
    baseline = [100.0, 100.0, 100.0, 100.0, 100.0, 100.0]
    current = [101.0, 102.0, 103.0, 104.0, 105.0, 130.0]
    c = compare_paired(baseline, current, direction=LOWER, max_baseline_cv=0.5)
    # differences 1..5 and 30: the median (11th) of the 21 Walsh averages is 3.5
    assert c.hodges_lehmann_pct == pytest.approx(3.5)


# ---- pairs of processes that took turns sample by sample -----------------------------------


def test_lockstep_pair_values_follow_the_sample_ratios_not_the_medians():
    # A slow phase (x2) began between baseline sample 3 and current sample 3: the baseline's
    # median is a fast sample, the current's a slow one. The ratio of the medians says +120%,
    # the sample-by-sample ratios say +10%.
    base = [[100, 100, 100, 200, 200]]
    cur = [[110, 110, 220, 220, 220]]
    b, c = lockstep_pair_values(base, cur)
    assert b == [100.0] and c == pytest.approx([110.0])


def test_lockstep_pair_values_one_value_per_pair_and_sizes_must_match():
    b, c = lockstep_pair_values([[10, 10], [20, 20]], [[11, 11], [18, 18]])
    assert b == [10.0, 20.0] and c == pytest.approx([11.0, 18.0])
    with pytest.raises(ValueError, match="pairs"):
        lockstep_pair_values([[1.0]], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="pair 1: 2 baseline samples and 3 current"):
        lockstep_pair_values([[1.0, 1.0]], [[1.0, 1.0, 1.0]])


def test_lockstep_pair_values_skip_samples_that_cannot_form_a_ratio():
    # counter metrics can be 0 per op (no cache misses at all in a sample)
    b, c = lockstep_pair_values([[0.0, 2.0, 2.0]], [[0.0, 3.0, 3.0]])
    assert c[0] / b[0] == pytest.approx(1.5)
    b, c = lockstep_pair_values([[0.0, 0.0]], [[0.0, 0.0]])
    assert b == [0.0] and c == [0.0]


def test_lockstep_pairs_decide_a_10pct_slowdown_that_medians_of_phased_processes_miss():
    rng = np.random.default_rng(7)
    base, cur = [], []
    for _ in range(10):
        # a slow phase (x2) covers a random stretch of each pair, both sides alike
        phase = np.where(np.arange(30) >= rng.integers(5, 25), 2.0, 1.0)
        noise = rng.normal(1, 0.005, size=(2, 30))
        base.append(100 * phase * noise[0])
        cur.append(110 * phase * noise[1])
    b, c = lockstep_pair_values(base, cur)
    verdict = compare_paired(b, c, direction=LOWER, threshold_pct=5, rng=rng)
    assert verdict.status is Status.REGRESSED
    assert verdict.change_pct == pytest.approx(10, abs=0.5)


# -- one rule, robust: outliers do not make a clear regression NOISY; alerts grow with the shift

STEADY = [1000.0, 1003.0, 997.0, 1001.0, 999.0, 1004.0, 996.0, 1002.0, 998.0, 1000.5,
          1001.5, 998.5, 1002.5, 997.5, 1000.0, 1003.5, 996.5, 999.5]


def test_two_outlier_processes_among_twenty_do_not_make_a_clear_regression_noisy():
    baseline = STEADY + [1500.0, 1600.0]  # two processes that hit something: plain CV ~17%
    current = [v * 1.10 for v in STEADY] + [1101.0, 1099.0]
    c = compare_independent(baseline, current, direction=LOWER, threshold_pct=5.0,
                            rng=np.random.default_rng(0))
    assert c.baseline_cv > 0.15  # what a plain CV says
    assert c.status is Status.REGRESSED and c.alert_worthy
    assert c.criterion("stable_baseline").met


def test_a_really_spread_baseline_is_still_noisy():
    wide = [700.0, 1300.0, 800.0, 1200.0, 900.0, 1100.0, 750.0, 1250.0, 850.0, 1150.0]
    c = compare_independent(wide, [v * 1.08 for v in wide], direction=LOWER,
                            rng=np.random.default_rng(0))
    assert c.status is Status.NOISY


@pytest.mark.parametrize("paired", [False, True])
def test_a_larger_shift_is_never_less_likely_to_alert(paired):
    """At the same noise, the alert rate over seeded trials does not fall as the shift grows."""
    rng = np.random.default_rng(11)
    compare = compare_paired if paired else compare_independent
    rates = []
    for shift in (0.0, 2.0, 4.0, 5.0, 6.0, 8.0, 12.0):
        alerts = 0
        for trial in range(60):
            b = 1000.0 * np.exp(0.03 * rng.standard_normal(10))
            noise = np.exp(0.03 * rng.standard_normal(10))
            c = (b if paired else 1000.0) * (1 + shift / 100) * noise
            alerts += compare(b, c, direction=LOWER, threshold_pct=5.0, n_boot=300,
                              consecutive_worse_runs=1, rng=np.random.default_rng(trial)).alert_worthy
        rates.append(alerts)
    assert all(later >= earlier - 4 for earlier, later in zip(rates, rates[1:], strict=False)), rates
    assert rates[0] <= 3 and rates[-1] >= 57, rates
