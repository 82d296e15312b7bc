"""perfd's text exposition writes exactly what prometheus_client.generate_latest writes: on
the collector's families over a real store and on literal families with every kind, special
value and escape."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from perfd.daemon.exposition import encode
from perfd.daemon.metrics import PerfdCollector, metrics_registry
from perfd.store import ResultStore
from tests.unit.test_daemon_metrics import MACHINE, STATUS, filled, store_url  # noqa: F401


class Fixed:
    """A collector yielding the given families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def both(families: list[Metric]) -> tuple[bytes, bytes]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(families))
    return encode(registry.collect()), generate_latest(registry)


def test_every_kind_value_and_escape_is_written_as_generate_latest_writes_it() -> None:
    gauge = GaugeMetricFamily("perfd_x_seconds", 'help with \\ a backslash\nand "quotes"',
                              labels=["suite", "benchmark"])
    for i, value in enumerate((0.0, -0.0, 1.5, 1e-9, 12345678.9, 1e21, math.inf, -math.inf,
                               math.nan, 3)):
        gauge.add_metric(["s", f'b{i} "q" \\ \n é'], value)
    gauge.add_metric(["a", "b0"], 2.0)  # the same label values in another order of rows
    counter = CounterMetricFamily("perfd_runs", "runs", labels=["tier", "outcome"])
    counter.add_metric(["commit", "COMPLETED"], 7)
    histogram = HistogramMetricFamily("perfd_d_seconds", "d", labels=["suite"])
    histogram.add_metric(["core"], buckets=[("1.0", 2), ("2.5", 3), ("+Inf", 4)], sum_value=6.5)
    info = InfoMetricFamily("perfd_build", "build")
    info.add_metric([], {"version": "0.9", "python": "3.11.7"})
    plain = GaugeMetricFamily("perfd_store_up", "up", value=1)
    # labels given in unsorted order: both write them sorted by name
    unsorted = GaugeMetricFamily("perfd_y", "y")
    unsorted.samples.append(Sample("perfd_y", {"suite": "s", "benchmark": "b", "metric": "m"}, 1.0))
    ours, theirs = both([gauge, counter, histogram, info, plain, unsorted])
    assert ours == theirs
    assert b'benchmark="b1 \\"q\\" \\\\ \\n \xc3\xa9"' in ours


def test_the_collectors_families_over_a_real_store_are_written_identically(
    filled: ResultStore,  # noqa: F811
) -> None:
    registry = metrics_registry(PerfdCollector(filled, MACHINE, lambda: STATUS))
    ours = encode(registry.collect())
    assert ours == generate_latest(registry)
    assert ours.count(b"\n") > 50


@pytest.mark.parametrize("sample", [
    Sample("perfd_x", {}, 1.0, timestamp=1.0),
    Sample("perfd_x_created", {}, 1.0),
])
def test_what_the_writer_does_not_cover_is_refused(sample: Sample) -> None:
    family = GaugeMetricFamily("perfd_x", "x")
    family.samples.append(sample)
    with pytest.raises(ValueError, match="does not cover"):
        encode([family])
