"""Which runs of a history face which: the stable stretch before a step and the streak after
it, with literal series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from perfd.flows.history import MAX_STREAK, stable_stretch, trailing_step
from perfd.model import Direction
from perfd.store import SeriesPoint

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def series(*medians: float) -> list[SeriesPoint]:
    return [SeriesPoint(run_id=i + 1, commit_sha=f"{i:040x}", started_at=T0 + timedelta(hours=i),
                        finished_at=T0 + timedelta(hours=i, minutes=1), median=m, cv=0.01,
                        n_processes=5, environment_hash="env")
            for i, m in enumerate(medians)]


def ids(points) -> list[int]:
    return [p.run_id for p in points]


def test_a_new_worse_run_faces_the_five_runs_before_it():
    step = trailing_step(series(1.0, 1.001, 0.999, 1.0, 1.002, 1.0, 1.01), Direction.LOWER, 0.5)
    assert ids(step.after) == [7] and step.worse_runs == 1
    assert ids(step.baseline) == [2, 3, 4, 5, 6]


def test_the_streak_grows_against_the_same_baseline():
    # +1% from run 7 on: at run 9 the three worse runs face runs 2..6 (the consistency count)
    step = trailing_step(series(1.0, 1.001, 0.999, 1.0, 1.002, 1.0, 1.01, 1.011, 1.009),
                         Direction.LOWER, 0.5)
    assert ids(step.after) == [7, 8, 9] and step.worse_runs == 3
    assert ids(step.baseline) == [2, 3, 4, 5, 6]


def test_a_one_run_excursion_is_left_out_of_the_baseline():
    step = trailing_step(series(1.0, 1.0, 1.2, 1.0, 1.0, 1.0, 1.01), Direction.LOWER, 0.5)
    assert ids(step.after) == [7]
    assert ids(step.baseline) == [2, 4, 5, 6]


def test_a_run_back_to_normal_is_no_streak():
    step = trailing_step(series(1.0, 1.0, 1.0, 1.01, 1.0), Direction.LOWER, 0.5)
    assert step.worse_runs == 0 and ids(step.after) == [5] and ids(step.baseline) == [1, 2, 3]


def test_higher_is_better_counts_drops_as_worse():
    step = trailing_step(series(100.0, 100.0, 100.0, 98.0, 97.9), Direction.HIGHER, 1.0)
    assert ids(step.after) == [4, 5] and step.worse_runs == 2
    assert trailing_step(series(100.0, 100.0, 103.0), Direction.HIGHER, 1.0).worse_runs == 0


def test_a_streak_that_never_alerted_becomes_the_new_level():
    long = series(*([1.0] * 5 + [1.01] * (MAX_STREAK + 3)))
    assert trailing_step(long, Direction.LOWER, 0.5).worse_runs == 0


def test_a_stretch_of_outliers_only_is_kept_whole():
    assert ids(stable_stretch(series(1.0, 2.0), 0.5)) == [1, 2]


def test_two_runs_are_needed():
    with pytest.raises(ValueError, match="at least two runs"):
        trailing_step(series(1.0), Direction.LOWER, 0.5)


def test_noise_above_the_threshold_does_not_start_the_step_early():
    # runs 6 and 7 wobble 0.6% (noise above a 0.5% threshold), run 8 is a +20% excursion:
    # the step is at run 8, not at the first noisy run of the streak
    step = trailing_step(series(1.0, 1.001, 0.999, 1.0, 1.002, 1.006, 1.007, 1.2),
                         Direction.LOWER, 0.5)
    assert ids(step.after) == [8] and step.worse_runs == 1


def test_a_small_step_behind_a_noisy_run_is_placed_at_its_run():
    step = trailing_step(series(1.0, 1.001, 0.999, 1.0, 1.002, 1.006, 1.012, 1.011, 1.013),
                         Direction.LOWER, 0.5)
    assert ids(step.after) == [7, 8, 9] and step.worse_runs == 3


def test_the_last_good_run_is_the_one_just_before_the_step_even_when_left_out_of_the_baseline():
    # a real ~0.6% step at run 6 measured +0.52% then +1.3%: least squares places the step at
    # run 7, run 6 is an outlier of the stable stretch, yet the A/B must measure 6 against 7
    # (measuring 5 against 7 would confirm run 6's change and name commit 7)
    step = trailing_step(series(1.0, 1.0, 1.0, 1.0, 1.0, 1.0052, 1.013), Direction.LOWER, 0.5)
    assert ids(step.after) == [7] and ids(step.baseline) == [2, 3, 4, 5]
    assert step.last_good.run_id == 6


def test_one_noisy_run_inside_a_step_does_not_break_it():
    # +1% from run 6 on, run 7 measured only +0.4%: the step still starts at run 6 and
    # all three runs are pooled against the five before (two of them each beyond 0.5%)
    step = trailing_step(series(1.0, 1.001, 0.999, 1.0, 1.0, 1.010, 1.004, 1.011),
                         Direction.LOWER, 0.5)
    assert ids(step.after) == [6, 7, 8] and step.worse_runs == 2
    assert ids(step.baseline) == [1, 2, 3, 4, 5] and step.last_good.run_id == 5


def test_a_step_that_went_away_again_is_no_step():
    # two worse runs, then the newest back at the old level: nothing to alert on now
    step = trailing_step(series(1.0, 1.0, 1.0, 1.0, 1.0, 1.02, 1.02, 1.0005), Direction.LOWER, 0.5)
    assert step.worse_runs == 0 and ids(step.after) == [8]
