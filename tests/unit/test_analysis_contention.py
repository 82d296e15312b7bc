"""Which samples were disturbed, and when a run is CONTENDED: literal inputs, expected flags."""

from __future__ import annotations

import pytest

from perfd.analysis.contention import (
    ContentionPolicy,
    assess_contention,
    disturbed_samples,
    off_cpu_fractions,
)

WALL = (1000.0, 1000.0, 1000.0, 1000.0, 1000.0)


def test_off_cpu_fraction_is_clamped_at_zero() -> None:
    # cpu time brackets the wall window, so it may exceed it by a few clock reads
    assert off_cpu_fractions(WALL, (1003.0, 990.0, 500.0, 1000.0, 0.0)) == (
        0.0, pytest.approx(0.01), 0.5, 0.0, 1.0)


def test_a_cpu_bound_sample_preempted_off_its_cpu_is_disturbed() -> None:
    cpu = (999.0, 998.0, 600.0, 999.0, 997.0)
    switches = (0, 0, 3, 0, 1)  # one switch in sample 4, but it stayed on its CPU: not disturbed
    assert disturbed_samples(WALL, cpu, switches, ContentionPolicy()) == (
        False, False, True, False, False)


def test_a_benchmark_that_sleeps_by_design_is_not_disturbed() -> None:
    cpu = (100.0, 105.0, 98.0, 102.0, 99.0)  # 90% off its CPU in every sample, voluntarily
    assert disturbed_samples(WALL, cpu, (0, 0, 0, 0, 0), ContentionPolicy()) == (False,) * 5
    # ... unless something preempted it as well, or one sample is far off its usual share
    assert disturbed_samples(WALL, cpu, (0, 2, 0, 0, 0), ContentionPolicy()) == (
        False, True, False, False, False)
    assert disturbed_samples(WALL, (100.0, 105.0, 20.0, 102.0, 99.0), (0,) * 5,
                             ContentionPolicy()) == (False, False, True, False, False)


def test_without_switch_counts_only_a_departure_from_the_usual_share_counts() -> None:
    cpu = (999.0, 998.0, 600.0, 999.0, 997.0)
    assert disturbed_samples(WALL, cpu, None, ContentionPolicy()) == (
        False, False, True, False, False)


def test_a_run_is_contended_when_a_benchmark_has_too_many_disturbed_samples() -> None:
    policy = ContentionPolicy(max_off_cpu_fraction=0.05, max_disturbed_fraction=0.10)
    quiet = [(WALL, (999.0,) * 5, (0,) * 5)] * 4  # 4 processes x 5 samples, all on CPU
    hogged = [(WALL, (999.0, 500.0, 999.0, 999.0, 999.0), (0, 4, 0, 0, 0)),
              (WALL, (999.0, 999.0, 450.0, 999.0, 999.0), (0, 0, 5, 0, 0)),
              (WALL, (999.0, 999.0, 999.0, 600.0, 999.0), (0, 0, 0, 2, 0)),
              (WALL, (999.0,) * 5, (0,) * 5)]
    report = assess_contention({"a/quiet": quiet, "b/hogged": hogged}, policy)
    assert report.contended
    finding = {f.benchmark: f for f in report.findings}
    assert (finding["a/quiet"].disturbed, finding["a/quiet"].samples) == (0, 20)
    assert (finding["b/hogged"].disturbed, finding["b/hogged"].samples) == (3, 20)
    assert finding["b/hogged"].worst_off_cpu == pytest.approx(0.55)
    assert finding["b/hogged"].involuntary_switches == 11
    assert report.reason == ("b/hogged: 3 of 20 samples (15%) were disturbed (off its CPU up to "
                             "55% of a sample, 11 involuntary context switches); at most 10% may be")
    # at the limit is still fine: 2 disturbed samples of 20 are 10%
    at_limit = [hogged[0], hogged[1], hogged[3], hogged[3]]
    assert not assess_contention({"b/hogged": at_limit}, policy).contended


def test_processes_without_cpu_times_are_not_judged() -> None:
    report = assess_contention({"old/harness": [(WALL, None, None)]}, ContentionPolicy())
    assert not report.contended and report.findings == ()
    assert report.reason == ""


@pytest.mark.parametrize("kwargs", [{"max_off_cpu_fraction": 0.0}, {"max_off_cpu_fraction": 1.0},
                                    {"max_disturbed_fraction": -0.1},
                                    {"max_disturbed_fraction": 1.5}])
def test_policy_refuses_fractions_outside_their_range(kwargs) -> None:
    with pytest.raises(ValueError, match="ContentionPolicy"):
        ContentionPolicy(**kwargs)
