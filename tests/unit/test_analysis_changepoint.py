import numpy as np
import pytest

from perfd.analysis.changepoint import ChangePoint, detect_change_points, estimate_noise

# 18 runs around 100 ns, then 14 runs around 105 ns (1% noise, rounded to 0.1 ns)
STEP_AT_18 = [
    100.0, 100.3, 99.7, 99.1, 99.5, 99.0, 100.1, 101.3, 99.5, 99.4, 100.5, 100.4, 100.1, 99.1,
    100.0, 100.7, 98.7, 99.5, 103.0, 103.6, 103.1, 104.8, 103.7, 105.3, 105.2, 104.8, 102.4,
    104.4, 104.9, 105.1, 103.4, 104.5,
]


def noise(seed: int, n: int = 200, cv: float = 0.01, level: float = 1000.0) -> np.ndarray:
    return level * (1.0 + np.random.default_rng(seed).normal(0.0, cv, n))


def ar1(seed: int, n: int = 200, phi: float = 0.5, cv: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, cv * np.sqrt(1.0 - phi**2), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, cv)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return 1000.0 * (1.0 + x)


def bimodal(seed: int, n: int = 200, cv: float = 0.005, upper_share: float = 0.3,
            gap_pct: float = 3.0) -> np.ndarray:
    """Each run lands in one of two modes (e.g. code alignment), gap_pct apart."""
    rng = np.random.default_rng(seed)
    upper = rng.random(n) < upper_share
    return 1000.0 * (1.0 + rng.normal(0.0, cv, n) + np.where(upper, gap_pct / 100.0, 0.0))


def test_literal_step_is_found_at_its_first_new_point():
    (cp,) = detect_change_points(STEP_AT_18)
    assert cp.index == 18
    assert cp.before_median == pytest.approx(99.85)
    assert cp.after_median == pytest.approx(104.45)
    assert cp.shift_pct == pytest.approx((104.45 / 99.85 - 1) * 100)
    assert cp.score > 4


def test_flat_series_has_no_change_point():
    assert detect_change_points(STEP_AT_18[:18]) == []
    assert detect_change_points([5.0] * 40) == []


@pytest.mark.parametrize("position", [0, 1, 2, 50, 100, 197, 198, 199])
@pytest.mark.parametrize("factor", [1.5, 10.0, 0.2])
def test_a_single_spike_never_opens_a_change_point(position, factor):
    x = noise(position)
    x[position] *= factor
    assert detect_change_points(x) == []


def test_two_adjacent_spikes_do_not_either():
    x = noise(11)
    x[80:82] *= 3.0
    assert detect_change_points(x) == []


@pytest.mark.parametrize(("seed", "k"), [(1, 12), (2, 60), (3, 100), (4, 150), (5, 190)])
@pytest.mark.parametrize("cv", [0.01, 0.02])
def test_a_five_percent_step_is_placed_within_two_points(seed, k, cv):
    x = noise(seed, cv=cv)
    x[k:] *= 1.05
    cps = detect_change_points(x)
    assert len(cps) == 1
    assert abs(cps[0].index - k) <= 2
    assert cps[0].shift_pct == pytest.approx(5.0, abs=1.5)


def test_faster_step_has_a_negative_shift():
    x = noise(6)
    x[120:] *= 0.9
    (cp,) = detect_change_points(x)
    assert cp.index == 120 and cp.shift_pct == pytest.approx(-10.0, abs=1.0)


def test_a_regression_that_was_fixed_gives_two_change_points():
    x = noise(7)
    x[80:110] *= 1.08
    assert [cp.index for cp in detect_change_points(x)] == [80, 110]


def test_segments_shorter_than_min_segment_are_merged():
    x = noise(8, n=60, cv=0.002)
    x[30:33] *= 1.2  # a 3-run excursion
    assert detect_change_points(x, min_segment=5) == []
    assert [cp.index for cp in detect_change_points(x, min_segment=3)] == [30, 33]


def test_a_step_in_the_last_one_or_two_points_is_not_reported_yet():
    x = noise(9, n=60, cv=0.002)
    for new_points in (1, 2):
        y = x.copy()
        y[-new_points:] *= 1.2
        assert detect_change_points(y, confirm=3) == []


def test_a_step_at_the_end_is_reported_once_confirmed():
    x = noise(10, n=60, cv=0.002)
    x[57:] *= 1.2
    (cp,) = detect_change_points(x, confirm=3)
    assert cp.index == 57
    assert detect_change_points(x, confirm=4) == []


def test_a_young_step_with_a_point_back_on_the_old_side_is_not_confirmed():
    x = noise(12, n=60, cv=0.002)
    x[56:59] *= 1.2  # 56, 57, 58 new; 59 back to normal
    assert detect_change_points(x, confirm=3) == []


def test_an_established_segment_does_not_need_unanimous_last_points():
    x = noise(13, n=80, cv=0.01)
    x[50:] *= 1.05
    x[-1] /= 1.05  # the newest run happens to look like the old level
    (cp,) = detect_change_points(x)
    assert abs(cp.index - 50) <= 2


def test_autocorrelated_noise_gives_no_false_change_points():
    assert estimate_noise(ar1(0, n=2000)).phi == pytest.approx(0.5, abs=0.1)
    false = sum(len(detect_change_points(ar1(seed))) for seed in range(100))
    assert false <= 2


def test_bimodal_noise_gives_no_false_change_points():
    false = sum(len(detect_change_points(bimodal(seed))) for seed in range(100))
    false += sum(len(detect_change_points(bimodal(seed, upper_share=0.5, gap_pct=5.0)))
                 for seed in range(100, 150))
    assert false <= 2


def test_white_noise_gives_no_false_change_points():
    assert estimate_noise(noise(0, n=2000)).phi < 0.1
    assert sum(len(detect_change_points(noise(seed, cv=0.03))) for seed in range(100)) <= 1


def test_result_does_not_depend_on_the_unit():
    x = noise(14)
    x[70:] *= 1.04
    ns = detect_change_points(x)
    seconds = detect_change_points(x * 1e-9)
    assert [c.index for c in ns] == [c.index for c in seconds] == [70]
    assert ns[0].shift_pct == pytest.approx(seconds[0].shift_pct)


def test_noiseless_counter_step_is_found_exactly():
    x = [1_000_000.0] * 30 + [1_020_000.0] * 10
    (cp,) = detect_change_points(x)
    assert (cp.index, cp.before_median, cp.after_median) == (30, 1e6, 1.02e6)
    assert cp.shift_pct == pytest.approx(2.0)


def test_noiseless_series_ignores_a_spike():
    x = [1_000_000.0] * 40
    x[20] = 1_500_000.0
    assert detect_change_points(x) == []
    assert detect_change_points(x, min_shift_pct=0.0) == []


def test_min_shift_pct_merges_small_certain_steps():
    x = noise(15, cv=0.0005)
    x[100:] *= 1.005
    assert detect_change_points(x) == []
    assert [c.index for c in detect_change_points(x, min_shift_pct=0.1)] == [100]


def test_max_change_points_keeps_the_strongest():
    x = noise(16)
    x[50:] *= 1.03
    x[100:] *= 1.20
    x[150:] *= 1.05
    assert [c.index for c in detect_change_points(x)] == [50, 100, 150]
    assert [c.index for c in detect_change_points(x, max_change_points=2)] == [100, 150]
    (strongest,) = detect_change_points(x, max_change_points=1)
    # its before-segment now starts at 0: the medians are re-judged without the dropped point
    assert strongest.index == 100 and strongest.before_median < 1020.0
    assert detect_change_points(x, max_change_points=0) == []


def test_a_larger_penalty_hides_a_weaker_step():
    x = noise(17)
    x[100:] *= 1.02
    (cp,) = detect_change_points(x)
    assert detect_change_points(x, penalty=cp.score**2 + 1.0) == []


def test_too_short_a_series_has_no_change_points():
    assert detect_change_points([1.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0]) == []


def test_invalid_input_is_refused():
    with pytest.raises(ValueError, match="must be finite"):
        detect_change_points([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="min_segment"):
        detect_change_points(STEP_AT_18, min_segment=1)
    with pytest.raises(ValueError, match="confirm"):
        detect_change_points(STEP_AT_18, confirm=0)
    with pytest.raises(ValueError, match="penalty"):
        detect_change_points(STEP_AT_18, penalty=-1.0)
    with pytest.raises(ValueError, match="index"):
        ChangePoint(index=0, before_median=1.0, after_median=2.0, shift_pct=100.0, score=9.0)
    with pytest.raises(ValueError, match="at least 3"):
        estimate_noise([1.0, 2.0])
