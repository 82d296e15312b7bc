import numpy as np
import pytest

from perfd.analysis.compare import Status
from perfd.analysis.sequential import look_schedule, next_step
from perfd.model import Direction


def pairs(seed: int, shift: float, cv: float = 0.02, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    baseline = 1000.0 * np.exp(rng.normal(0.0, cv, n))
    current = 1000.0 * (1.0 + shift) * np.exp(rng.normal(0.0, cv, n))
    return baseline, current


def run_until_stop(baseline, current, **options):
    for n in range(1, len(baseline) + 1):
        step = next_step(baseline[:n], current[:n], direction=Direction.LOWER,
                         rng=np.random.default_rng(n), n_boot=300, **options)
        if step.action == "stop":
            return step
    raise AssertionError("never stopped")


def test_look_schedule():
    assert look_schedule(5, 60, 5) == tuple(range(5, 61, 5))
    assert look_schedule(5, 62, 5)[-2:] == (60, 62)
    assert look_schedule(8, 8, 5) == (8,)
    with pytest.raises(ValueError, match="max_pairs"):
        look_schedule(10, 5, 5)
    with pytest.raises(ValueError, match="look_every"):
        look_schedule(5, 60, 0)


def test_alpha_is_split_over_the_looks():
    b, c = pairs(1, 0.0)
    step = next_step(b[:10], c[:10], direction=Direction.LOWER)
    assert step.n_looks == 12 and step.look == 2
    assert step.alpha_per_look == pytest.approx(0.05 / 12)
    assert step.comparison.test == "wilcoxon-signed-rank"


def test_too_few_pairs_continue():
    b, c = pairs(2, 0.3)
    step = next_step(b[:3], c[:3], direction=Direction.LOWER)
    assert step.action == "continue"
    assert step.comparison.status is Status.INSUFFICIENT_DATA
    # 5 pairs cannot reach alpha / 12 with the signed-rank test: keep going
    step = next_step(b[:5], c[:5], direction=Direction.LOWER)
    assert step.action == "continue" and step.look == 1
    assert step.comparison.status is Status.INSUFFICIENT_DATA


def test_between_looks_continue():
    b, c = pairs(3, 0.3)
    step = next_step(b[:12], c[:12], direction=Direction.LOWER)
    assert step.action == "continue" and step.look is None
    assert "next look at 15 pairs" in step.reason


def test_clear_regression_stops_early():
    step = run_until_stop(*pairs(4, 0.10))
    assert step.n_pairs == 10
    assert step.comparison.status is Status.REGRESSED
    assert "clear regressed change" in step.reason


def test_no_change_stops_early_when_the_ci_is_inside_the_band():
    step = run_until_stop(*pairs(5, 0.0, cv=0.01))
    assert step.n_pairs == 10
    assert step.comparison.status is Status.UNCHANGED
    assert "within +-5%" in step.reason


def test_change_at_the_threshold_needs_more_pairs():
    b, c = pairs(6, 0.05)
    step = next_step(b[:10], c[:10], direction=Direction.LOWER, n_boot=300)
    assert step.action == "continue" and "inconclusive" in step.reason


def test_the_cap_stops():
    b, c = pairs(7, 0.05, cv=0.05)
    step = next_step(b[:20], c[:20], direction=Direction.LOWER, max_pairs=20, n_boot=300)
    assert step.action == "stop" and "cap of 20 pairs" in step.reason


def test_repeated_looks_keep_false_positives_rare():
    # A/A with 8% noise: most sequences run to the cap, looking 12 times on the way; alpha
    # spent over the looks keeps the share that ever reports a change near alpha = 5%
    schedule = look_schedule(5, 60, 5)
    reported = 0
    for seed in range(100):
        baseline, current = pairs(100 + seed, 0.0, cv=0.08)
        for n in schedule:
            step = next_step(baseline[:n], current[:n], direction=Direction.LOWER,
                             rng=np.random.default_rng(n), n_boot=200)
            if step.action == "stop":
                break
        reported += step.comparison.status in (Status.REGRESSED, Status.IMPROVED)
    assert reported <= 5
