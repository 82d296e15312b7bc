import json

import pytest

from perfd.errors import HarnessError
from perfd.runner.parse import parse_harness_json


def doc(**over):
    d = {
        "format": "perfd-harness",
        "version": "1.3",
        "unknown_top": 1,
        "context": {
            "harness_version": "1.0.0", "host": "h", "pinned_cpu": 1,
            "timer": {"resolution_ns": 1, "overhead_ns": 17.5, "new": "x"},
            "counters": {"requested": True, "available": ["instructions"],
                         "unavailable": {"cycles": "perf_event_open: Operation not supported"}},
        },
        "benchmarks": [{
            "name": "a/b", "status": "ok", "iterations_per_sample": 10,
            "samples_ns": [1.5, 2.5], "counters": {"instructions": [10, 11], "bogus": [1, 2]},
            "extra": [1],
        }],
    }
    d.update(over)
    return json.dumps(d)


def test_reads_known_fields_and_ignores_unknown_ones():
    out = parse_harness_json(doc())
    assert out.context.pinned_cpu == 1
    assert out.context.timer_overhead_ns == 17.5
    assert out.context.counters_available == ("instructions",)
    assert "cycles: perf_event_open" in out.context.counters_unavailable_reason
    (b,) = out.benchmarks
    assert b.samples_ns == (1.5, 2.5)
    assert dict(b.counters) == {"instructions": (10.0, 11.0)}


@pytest.mark.parametrize("text, message", [
    ("", "printed nothing"),
    ("hello {", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"format": "other", "version": "1.0"}), "format is 'other'"),
    (doc(version="2.0"), "version 2.0 is not supported (this perfd reads 1.x): rebuild"),
    (doc(context={"timer": {}}), "context.timer: missing field 'resolution_ns'"),
])
def test_bad_output_is_a_clear_error(text, message):
    with pytest.raises(HarnessError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        parse_harness_json(text)


def test_non_finite_and_non_positive_samples_are_refused():
    bad = doc(benchmarks=[{"name": "x", "iterations_per_sample": 1, "samples_ns": [1.0, 0.0]}])
    with pytest.raises(HarnessError, match="must be finite and > 0"):
        parse_harness_json(bad)
    nan = doc(benchmarks=[{"name": "x", "iterations_per_sample": 1, "samples_ns": ["NaN"]}])
    with pytest.raises(HarnessError, match="expected a finite number"):
        parse_harness_json(nan)


def test_a_counter_with_missing_samples_is_unavailable_not_guessed():
    gap = doc(benchmarks=[{"name": "x", "iterations_per_sample": 1, "samples_ns": [1.0, 2.0],
                           "counters": {"instructions": [5.0, None], "cycles": [7.0, 8.0]}}])
    (b,) = parse_harness_json(gap).benchmarks
    assert dict(b.counters) == {"cycles": (7.0, 8.0)}


def test_failed_benchmark_reports_its_error():
    failed = doc(benchmarks=[{"name": "x", "status": "error", "error": "boom",
                              "iterations_per_sample": 0, "samples_ns": []}])
    with pytest.raises(HarnessError, match="benchmark 'x' failed inside the harness: boom"):
        parse_harness_json(failed)
