import pytest

from perfd.analysis.summary import summarize, summarize_processes
from perfd.model import BenchmarkSamples, Direction, Metric, ProcessResult

TIME = Metric("time", "ns", Direction.LOWER)


def test_process_level_statistics_use_each_process_median():
    # medians per process: 10, 12, 11 -> median 11, mean 11, stddev 1, cv 1/11
    s = summarize("b", TIME, [[9, 10, 100], [12, 12, 12], [11, 1, 50]])
    assert s.n_processes == 3 and s.n_samples == 9
    assert s.median == 11 and s.mean == 11
    assert s.stddev == pytest.approx(1.0)
    assert s.cv == pytest.approx(1 / 11)
    assert (s.min, s.max) == (10, 12)
    # tails come from all samples
    assert s.p99 > 90


def test_single_process_has_zero_spread_not_nan():
    s = summarize("b", TIME, [[5.0, 5.0]])
    assert s.cv == 0.0 and s.stddev == 0.0


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="every process needs samples"):
        summarize("b", TIME, [[1.0], []])


def proc(rep, samples, counters=None):
    return ProcessResult("b", rep, rep, None, 0, 0.1,
                         BenchmarkSamples("b", 1, tuple(samples), counters or {}))


def test_throughput_is_higher_is_better_inverse_of_time():
    p = proc(0, [1000.0, 500.0])
    assert p.samples.metric_values("throughput") == (1e6, 2e6)


def test_unmeasured_metric_gives_no_summary():
    metrics = [TIME, Metric("cycles", "count", Direction.LOWER)]
    out = summarize_processes("b", metrics, [proc(0, [1.0, 2.0]), proc(1, [1.5, 2.5])])
    assert [s.metric for s in out] == ["time"]


def test_mad_and_sample_level_centre():
    s = summarize("b", TIME, [[9, 10, 100], [12, 12, 12], [11, 1, 50]])
    # process medians 10, 12, 11: MAD = median(|[-1, 1, 0]|) = 1
    assert s.mad == 1.0
    all_samples = [9, 10, 100, 12, 12, 12, 11, 1, 50]
    assert s.sample_median == 12.0
    assert s.sample_mean == pytest.approx(sum(all_samples) / 9)
    assert s.sample_mad == 2.0  # |x - 12| -> 3,2,88,0,0,0,1,11,38 -> median 2
