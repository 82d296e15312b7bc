from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from perfd.analysis.compare import Comparison, Status, compare_independent
from perfd.analysis.fdr import apply_fdr, benjamini_hochberg, infrastructure_shift
from perfd.model import Direction


def processes(seed: int, median: float = 1000.0, cv: float = 0.02, n: int = 10) -> np.ndarray:
    return median * np.exp(np.random.default_rng(seed).normal(0.0, cv, n))


def test_bh_adjusted_p_values_by_hand():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    adjusted, rejected = benjamini_hochberg(p, q=0.05)
    # p * m / rank, then the running minimum from the largest rank down
    expected = [0.01, 0.04, 0.084, 0.084, 0.084, 0.1, 0.74 / 7, 0.216, 0.216, 0.216]
    assert adjusted == pytest.approx(expected)
    assert rejected == [True, True] + [False] * 8


def test_bh_keeps_input_order_and_matches_scipy():
    p = np.random.default_rng(3).uniform(0, 0.2, 57).tolist()
    adjusted, rejected = benjamini_hochberg(p, q=0.1)
    assert adjusted == pytest.approx(stats.false_discovery_control(p).tolist())
    assert rejected == [a <= 0.1 for a in adjusted]


def test_bh_edge_cases():
    assert benjamini_hochberg([]) == ([], [])
    assert benjamini_hochberg([0.5]) == ([0.5], [False])
    assert benjamini_hochberg([1.0, 1.0]) == ([1.0, 1.0], [False, False])
    with pytest.raises(ValueError, match=r"p-values must be in \[0, 1\]"):
        benjamini_hochberg([0.1, 1.2])
    with pytest.raises(ValueError, match="q must be in"):
        benjamini_hochberg([0.1], q=0.0)


def suite(n_regressed: int, n_flat: int) -> list[Comparison]:
    """n_regressed clear 10% regressions followed by n_flat A/A comparisons."""
    out = []
    for i in range(n_regressed):
        out.append(compare_independent(processes(i), processes(500 + i, 1100.0),
                                       direction=Direction.LOWER, n_boot=300))
    for i in range(n_flat):
        out.append(compare_independent(processes(1000 + i), processes(2000 + i),
                                       direction=Direction.LOWER, n_boot=300))
    return out


def test_apply_fdr_demotes_a_marginal_regression_among_many_tests():
    comparisons = suite(1, 19)
    strong = comparisons[0]
    assert strong.status is Status.REGRESSED
    marginal = replace(strong, p_value=0.02)  # REGRESSED at alpha 0.05, but one of 21 tests
    out = apply_fdr([*comparisons, marginal], q=0.05)
    assert out[0].status is Status.REGRESSED and out[0].p_adjusted is not None
    assert out[0].confidence is strong.confidence
    demoted = out[-1]
    assert demoted.status is Status.UNCHANGED and demoted.confidence is None
    assert demoted.reason.startswith("not significant after false-discovery control (adjusted p=")
    assert demoted.p_value == 0.02 and demoted.p_adjusted > 0.05
    significance = demoted.criterion("significance")
    assert significance is not None and not significance.met
    assert "BH-adjusted" in significance.detail
    assert all(c.p_adjusted is not None for c in out)


def test_apply_fdr_leaves_untested_comparisons_alone():
    insufficient = compare_independent(processes(1, n=3), processes(2, n=3),
                                       direction=Direction.LOWER)
    assert insufficient.status is Status.INSUFFICIENT_DATA
    out = apply_fdr([insufficient, *suite(1, 2)])
    assert out[0] is insufficient
    assert out[1].status is Status.REGRESSED


def test_apply_fdr_on_an_a_a_suite_reports_nothing():
    out = apply_fdr(suite(0, 40))
    assert not any(c.status in (Status.REGRESSED, Status.IMPROVED) for c in out)


def test_whole_machine_slower_is_one_infrastructure_finding():
    comparisons = []
    for i in range(8):  # time up 8%
        comparisons.append(compare_independent(processes(i), processes(100 + i, 1080.0),
                                               direction=Direction.LOWER, n_boot=300))
    for i in range(2):  # throughput down 8%: also "worse"
        comparisons.append(compare_independent(processes(200 + i, 5e6), processes(300 + i, 4.6e6),
                                               direction=Direction.HIGHER, n_boot=300))
    comparisons += suite(0, 3)  # three benchmarks that did not move
    finding = infrastructure_shift(comparisons)
    assert finding is not None
    assert finding.direction == "worse"
    assert (finding.n_moved, finding.n_total) == (10, 13)
    assert finding.median_shift_pct == pytest.approx(8.0, abs=1.5)
    assert finding.indexes == tuple(range(10))
    assert "10 of 13 benchmarks" in finding.reason


def test_a_few_regressions_are_not_an_infrastructure_shift():
    assert infrastructure_shift(suite(3, 7)) is None


def test_moves_of_very_different_sizes_are_not_an_infrastructure_shift():
    comparisons = []
    for i, factor in enumerate([1.05, 1.06, 1.3, 1.35, 2.0, 2.2, 3.0, 1.04]):
        comparisons.append(compare_independent(processes(i), processes(50 + i, 1000.0 * factor),
                                               direction=Direction.LOWER, n_boot=300))
    assert infrastructure_shift(comparisons, min_fraction=0.6) is None


def test_too_few_benchmarks_for_an_infrastructure_finding():
    assert infrastructure_shift(suite(4, 0), min_benchmarks=5) is None
    assert infrastructure_shift(suite(4, 0), min_benchmarks=4) is not None
    with pytest.raises(ValueError, match="min_fraction"):
        infrastructure_shift([], min_fraction=0.0)
