"""Immutable values passed between stages (runner -> store -> analysis -> report).

Field names carry role and unit. Every class validates itself in ``__post_init__`` and
names the rule and the offending value when it refuses one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# Versions of what perfd writes. History, newest last:
#   1 - first format: context + per-benchmark per-process samples.
BENCHMARK_DATA_VERSION = 1


class Direction(StrEnum):
    """Which way is better for a metric."""

    LOWER = "lower_is_better"
    HIGHER = "higher_is_better"


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    # Measured, but too many samples were taken while the benchmark was off its CPU (another
    # process or the hypervisor had it): stored for diagnosis, never history, re-run.
    CONTENDED = "CONTENDED"


class RunTier(StrEnum):
    """Why a run was made. History (change points, alerts, analyze) is made of every tier but
    COMPARE (the two sides of a `perfd compare`) and REFERENCE (the reference build's side of
    a paired history run), which stay out of the series."""

    MANUAL = "manual"
    COMPARE = "compare"
    REFERENCE = "reference"  # the reference build's side of a reference-paired history run
    COMMIT = "commit"
    NIGHTLY = "nightly"
    WEEKLY = "weekly"


NOT_HISTORY_TIERS: tuple[str, ...] = (RunTier.COMPARE.value, RunTier.REFERENCE.value)


class Status(StrEnum):
    """The decision rule's answer for one benchmark x metric."""

    REGRESSED = "REGRESSED"
    IMPROVED = "IMPROVED"
    UNCHANGED = "UNCHANGED"
    NOISY = "NOISY"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    INCOMPARABLE = "INCOMPARABLE"


class Confidence(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"

    @property
    def rank(self) -> int:
        """LOW 1, MEDIUM 2, HIGH 3 (for "at least this confident")."""
        return {"LOW": 1, "MEDIUM": 2, "HIGH": 3}[self.value]


class Verdict(StrEnum):
    """The answer for a whole comparison or range, across all of its benchmarks."""

    REGRESSED = "REGRESSED"
    IMPROVED = "IMPROVED"
    UNCHANGED = "UNCHANGED"
    INCONCLUSIVE = "INCONCLUSIVE"
    INFRASTRUCTURE = "INFRASTRUCTURE"  # most benchmarks moved together: the machine changed


class AlertAction(StrEnum):
    """What an alert evaluation did to one series."""

    OPENED = "opened"
    REFUTED = "refuted"  # a lock-step A/B found no regression: recorded as a false positive
    UPDATED = "updated"
    RESOLVED = "resolved"
    KEPT = "kept"
    QUIET = "quiet"
    SKIPPED = "skipped"


# Metrics perfd knows how to derive from harness output: name -> (unit, direction).
# `time` is per-operation wall time from CLOCK_MONOTONIC; `throughput` is its inverse;
# counters are per-operation hardware event counts from perf_event_open.
KNOWN_METRICS: Mapping[str, tuple[str, Direction]] = {
    "time": ("ns", Direction.LOWER),
    "throughput": ("ops/s", Direction.HIGHER),
    "instructions": ("count", Direction.LOWER),
    "cycles": ("count", Direction.LOWER),
    "cache_misses": ("count", Direction.LOWER),
    "branch_misses": ("count", Direction.LOWER),
}
COUNTER_METRICS = ("cycles", "instructions", "cache_misses", "branch_misses")
# What every sample also carries when the harness reports it (format 1.2+), stored beside the
# suite's metrics so a disturbed sample can be seen later: the thread's on-CPU time per
# operation (ns) and the involuntary context switches of the sample's batch.
SAMPLE_CONTEXT_METRICS = ("cpu_time", "involuntary_switches")


def stable_hash(data: Any) -> str:
    """Short hex digest of JSON-serialisable data, independent of dict order."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    direction: Direction

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Metric.name: must not be empty")
        if not isinstance(self.direction, Direction):
            raise ValueError(f"Metric.direction: must be a Direction, got {self.direction!r}")


@dataclass(frozen=True, slots=True)
class EnvFingerprint:
    """What the machine looked like when a run happened.

    Fields that identify the machine's configuration go into ``fingerprint_hash``; the load
    average is recorded but not hashed (it changes every minute, the machine does not).
    ``None`` means "could not be read here", never a guessed default.
    """

    hostname: str
    kernel: str | None
    cpu_model: str | None
    cpu_count: int
    governor: str | None
    boost: bool | None
    smt: bool | None
    isolated_cpus: str | None
    nohz_full: str | None
    compiler: str | None
    memory_total_bytes: int | None
    load_avg_1m: float | None

    def __post_init__(self) -> None:
        if self.cpu_count < 1:
            raise ValueError(f"EnvFingerprint.cpu_count: must be >= 1, got {self.cpu_count}")

    def hashed_fields(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("load_avg_1m")
        return data

    @property
    def fingerprint_hash(self) -> str:
        return stable_hash(self.hashed_fields())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class HarnessContext:
    """The context object a harness process printed (see harness/README.md)."""

    format_version: str
    harness_version: str
    host: str
    pinned_cpu: int | None
    timer_resolution_ns: float
    timer_overhead_ns: float
    counters_available: tuple[str, ...]
    counters_unavailable_reason: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class BenchmarkSamples:
    """One benchmark's raw output from one harness process."""

    name: str
    iterations_per_sample: int
    samples_ns: tuple[float, ...]
    # counter name -> per-operation value of each sample (same length as samples_ns)
    counters: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    # on-CPU time of the benchmark thread per operation in each sample (harness format 1.2+);
    # None: not reported (older harness, or the clock was not available)
    cpu_ns: tuple[float, ...] | None = None
    # involuntary context switches during each sample's batch; None: not reported
    involuntary_switches: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.samples_ns:
            raise ValueError(f"BenchmarkSamples({self.name}).samples_ns: must not be empty")
        bad = [v for v in self.samples_ns if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(
                f"BenchmarkSamples({self.name}).samples_ns: must be finite and > 0, got {bad[0]!r}"
            )
        if self.iterations_per_sample < 1:
            raise ValueError(
                f"BenchmarkSamples({self.name}).iterations_per_sample: must be >= 1, "
                f"got {self.iterations_per_sample}"
            )
        for name, values in self.counters.items():
            if not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(
                    f"BenchmarkSamples({self.name}).counters[{name}]: must be finite and >= 0"
                )
            if len(values) != len(self.samples_ns):
                raise ValueError(
                    f"BenchmarkSamples({self.name}).counters[{name}]: has {len(values)} values "
                    f"for {len(self.samples_ns)} samples"
                )
        for label, series in (("cpu_ns", self.cpu_ns),
                              ("involuntary_switches", self.involuntary_switches)):
            if series is None:
                continue
            if len(series) != len(self.samples_ns):
                raise ValueError(f"BenchmarkSamples({self.name}).{label}: has {len(series)} values "
                                 f"for {len(self.samples_ns)} samples")
            if not all(math.isfinite(v) and v >= 0 for v in series):
                raise ValueError(f"BenchmarkSamples({self.name}).{label}: must be finite and >= 0")


    def metric_values(self, metric: str) -> tuple[float, ...] | None:
        """Per-sample values of a metric, None when this process did not measure it.

        ``time`` is ns per operation, ``throughput`` its inverse in operations per second,
        counters are per-operation event counts (absent when the kernel did not allow them).
        """
        if metric == "time":
            return self.samples_ns
        if metric == "throughput":
            return tuple(1e9 / v for v in self.samples_ns)
        if metric == "cpu_time":
            return self.cpu_ns
        if metric == "involuntary_switches":
            return (tuple(float(n) for n in self.involuntary_switches)
                    if self.involuntary_switches is not None else None)
        return self.counters.get(metric)


@dataclass(frozen=True, slots=True)
class HarnessOutput:
    context: HarnessContext
    benchmarks: tuple[BenchmarkSamples, ...]


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """One harness process: one benchmark, one repetition."""

    benchmark: str
    repetition: int  # 0-based index among this benchmark's processes
    round_index: int  # which round of the run it ran in (drift spreads evenly over rounds)
    cpu: int | None  # CPU it was pinned to, None when not pinned
    exit_code: int
    duration_s: float
    samples: BenchmarkSamples
    counters_unavailable_reason: str | None = None

    def __post_init__(self) -> None:
        if self.repetition < 0:
            raise ValueError(f"ProcessResult.repetition: must be >= 0, got {self.repetition}")
        if self.duration_s < 0:
            raise ValueError(f"ProcessResult.duration_s: must be >= 0, got {self.duration_s}")


@dataclass(frozen=True, slots=True)
class Summary:
    """Statistics of one benchmark x metric in one run.

    ``median``, ``mean``, ``stddev``, ``cv``, ``mad``, ``min`` and ``max`` are over process-level
    values (each process summarised by the median of its samples) - the unit of analysis.
    ``sample_*``, ``p95`` and ``p99`` are over all iteration samples (distributions and tails).
    MAD is the raw median absolute deviation (not scaled to a normal sigma).
    """

    benchmark: str
    metric: str
    unit: str
    direction: Direction
    n_processes: int
    n_samples: int
    median: float
    mean: float
    stddev: float
    cv: float
    min: float
    max: float
    p95: float
    p99: float
    sample_cv: float
    mad: float = 0.0
    sample_median: float = 0.0
    sample_mean: float = 0.0
    sample_mad: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "direction": self.direction.value}

    def __post_init__(self) -> None:
        if self.n_processes < 1:
            raise ValueError(f"Summary.n_processes: must be >= 1, got {self.n_processes}")
        if self.n_samples < self.n_processes:
            raise ValueError(
                f"Summary.n_samples: must be >= n_processes ({self.n_processes}), "
                f"got {self.n_samples}"
            )


@dataclass(frozen=True, slots=True)
class RunStart:
    """What is known when a run begins (stored as a RUNNING row)."""

    suite: str
    commit_sha: str
    machine_id: str
    config_hash: str  # hash of the suite's build + measurement settings
    build_hash: str  # hash of commit + build settings (the build cache key)
    started_at: datetime
    pid: int  # perfd's own pid, so an interrupted run can be recognised later
    tier: str = RunTier.MANUAL
    commit_time: datetime | None = None  # committer date: where the run sits in history

    def __post_init__(self) -> None:
        if len(self.commit_sha) != 40 or any(c not in "0123456789abcdef" for c in self.commit_sha):
            raise ValueError(f"RunStart.commit_sha: must be 40 lowercase hex digits, got {self.commit_sha!r}")


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run: everything that is committed in one transaction."""

    environment: EnvFingerprint
    harness: HarnessContext
    processes: tuple[ProcessResult, ...]
    statistics: tuple[Summary, ...]
    finished_at: datetime
    # benchmark name -> config hash of that benchmark's measurement settings (series identity)
    benchmark_config_hashes: Mapping[str, str] = field(default_factory=dict)
    # share of the benchmark CPUs' time the hypervisor took (steal) while the run measured;
    # None where /proc/stat has no steal figure (bare metal reports 0)
    steal_fraction: float | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """A stored, completed run as the run flow returns it."""

    run_id: int
    suite: str
    commit_sha: str
    machine_id: str
    build_hash: str
    binary: str
    result: RunResult
    # "benchmark:metric" the suite asked for that this machine could not measure -> why
    unavailable: Mapping[str, str] = field(default_factory=dict)
    data_path: str | None = None
    status: RunStatus = RunStatus.COMPLETED  # or CONTENDED (then contended_reason says why)
    contended_reason: str | None = None

    @property
    def contended(self) -> bool:
        return self.status is RunStatus.CONTENDED
