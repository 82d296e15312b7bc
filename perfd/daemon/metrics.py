"""The daemon's /metrics: a custom collector on perfd's own registry, read from the store at
scrape time.

Every scrape builds its families from one read snapshot (``with store.reading()``) and
the daemon's status, and no sample carries a timestamp. The benchmark value families (nearly
all samples) are kept, text included, while the store's values version (newest run id, run
count, newest finish, newest reference ratio) stays the same; everything else is read anew.
``describe()`` names the families without touching the database, so registering the
collector costs no query. Only this machine's runs, alerts and jobs are shown; history lives
in SQL, the metrics show the latest state, with no commit, sha or run id among the labels.

Benchmark values, from each suite x benchmark x metric's latest COMPLETED history run
(tiers outside ``NOT_HISTORY_TIERS``), go to one gauge per unit family, converted to its
base unit. The family is chosen by the unit the suite declares for the metric:

=======================================  ===========================================
unit of the metric                       family (labels suite, benchmark, metric,
                                         statistic = median | mean | p95 | p99)
=======================================  ===========================================
ns, us, ms, s (``time``: ns)             ``perfd_benchmark_seconds``
ops/s, /s, k/s, M/s (``throughput``)     ``perfd_benchmark_per_second``
bytes, B, kB, MB, GB, KiB, MiB, GiB      ``perfd_benchmark_bytes``
%, percent (-> 0-1), ratio               ``perfd_benchmark_ratio``
count (the hardware counters), others    ``perfd_benchmark_value`` (as stored)
=======================================  ===========================================

Every value family carries the ``metric`` label, ``time`` included: a suite may declare a
custom metric in a time unit (or bytes, or a rate) next to ``time``, and without the label
the two would share one label set.

Budgets, from the latest history run with verdicts for a suite x benchmark x metric, are
grouped by suite, benchmark, metric, statistic, action and owner (several budgets may hold
one statistic; ``owner`` is the team the budget names, "" for none): ``perfd_budget_ok`` is
1 when every budget of the group that could judge passed and 0 when one broke (FAIL, or
WARN for action warn); a group where none could judge has no ``perfd_budget_ok`` at all
(too little data is never "OK", nor a breach).
``perfd_budget_no_data`` is 1 for each group where a budget had NO_DATA and absent for the
others (one sample fewer per budgeted series and scrape).
``perfd_budget_limit`` is the group's absolute limit (the strictest, when several) in the
base unit of the metric's value family; relative limits have none.

What a scrape costs grows with the samples it renders. At 5,000 series with all four
statistics, their CV and reference ratio (~34,000 samples) on this project's 2-core VMs, the
first scrape after a run was stored takes ~130 ms (SQL ~40 ms, families and text ~90 ms;
``generate_latest`` alone took 150 ms for the text, hence perfd.daemon.exposition), and the
scrapes in between ~30 ms (benchmarks/bench_metrics_scrape.py). ``PerfdCollector(...,
statistics=("median",))`` exports fewer. The queries are one per kind of figure, never one
per series.

Label values are perfd's own spellings (tiers ``commit``, outcomes ``COMPLETED``, confidences
``HIGH``, states ``OPEN``), as the CLI and the API show them. ``perfd_store_up`` is 0 when the
store could not be read: the scrape then still answers, with the daemon's own families.
"""

from __future__ import annotations

import logging
import math
import platform
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from perfd.config.models import RATE_UNITS, SIZE_UNITS, TIME_UNITS, limit_in_unit
from perfd.daemon.exposition import RowGauge, encode
from perfd.errors import StorageError
from perfd.model import Direction, RunStatus
from perfd.store import QueueStats, ResultStore
from perfd.store.metrics import ActiveAlertRow, LatestBudget, LatestValue, RunTally

log = logging.getLogger("perfd.daemon.metrics")

# Run durations: a quick benchmark suite takes seconds, a weekly tier up to an hour.
RUN_DURATION_BUCKETS_S = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
                          3600.0)
STATISTICS = ("median", "mean", "p95", "p99")
RUN_OUTCOMES = (RunStatus.COMPLETED.value, RunStatus.CONTENDED.value, RunStatus.FAILED.value)
# The runs whose duration the histogram shows: they measured to the end (a FAILED run stops
# wherever it failed, a RUNNING one has not finished).
MEASURED = (RunStatus.COMPLETED.value, RunStatus.CONTENDED.value)


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    """What the daemon knows of itself at one moment, for /metrics. Timestamps are Unix
    seconds; ``reload_timestamp`` is None until a reload was tried; ``poll_failures`` maps a
    repository name to its consecutive failed fetches (0 after a good one)."""

    started_timestamp: float
    reload_success: bool
    reload_timestamp: float | None
    poll_failures: Mapping[str, int]
    version: str

    def __post_init__(self) -> None:
        for name in ("started_timestamp", "reload_timestamp"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"DaemonStatus.{name}: must be finite and >= 0, got {value!r}")
        bad = {repo: n for repo, n in self.poll_failures.items() if n < 0}
        if bad:
            repo, n = next(iter(bad.items()))
            raise ValueError(f"DaemonStatus.poll_failures[{repo!r}]: must be >= 0, got {n}")
        # A copy the daemon cannot change under a scrape running in another thread.
        object.__setattr__(self, "poll_failures", MappingProxyType(dict(self.poll_failures)))


# ----------------------------------------------------------------------------- families


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family's name (without the suffix its type adds), type, help and labels."""

    name: str
    kind: str  # gauge | counter | histogram | info
    help: str
    labels: tuple[str, ...] = ()

    def new(self) -> Any:
        """An empty family of this kind, to fill with add_metric."""
        labels = list(self.labels)
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=labels)
        if self.kind == "histogram":
            return HistogramMetricFamily(self.name, self.help, labels=labels)
        if self.kind == "info":
            return InfoMetricFamily(self.name, self.help, labels=labels)
        return GaugeMetricFamily(self.name, self.help, labels=labels)


_VALUE_LABELS = ("suite", "benchmark", "metric", "statistic")
_SERIES_LABELS = ("suite", "benchmark", "metric")
# owner: the team a budget names (budgets.yaml), which Alertmanager routes by ("" for none)
_BUDGET_LABELS = ("suite", "benchmark", "metric", "statistic", "action", "owner")
_LATEST = "in the latest completed history run of the series on this machine"

SECONDS = Family("perfd_benchmark_seconds", "gauge",
                 f"Latest value of a time metric (per operation), seconds, {_LATEST}.",
                 _VALUE_LABELS)
PER_SECOND = Family("perfd_benchmark_per_second", "gauge",
                    f"Latest value of a rate metric (throughput), per second, {_LATEST}.",
                    _VALUE_LABELS)
BYTES = Family("perfd_benchmark_bytes", "gauge",
               f"Latest value of a size metric, bytes, {_LATEST}.", _VALUE_LABELS)
RATIO = Family("perfd_benchmark_ratio", "gauge",
               f"Latest value of a percentage metric as a ratio (0-1), {_LATEST}.",
               _VALUE_LABELS)
VALUE = Family("perfd_benchmark_value", "gauge",
               f"Latest value of a metric in its own unit (counts per operation, custom units), "
               f"{_LATEST}.", _VALUE_LABELS)
REFERENCE_RATIO = Family(
    "perfd_benchmark_reference_ratio", "gauge",
    "Current/reference ratio of the latest completed history run, measured in lock-step "
    "pairs against the suite's reference build (1 = the same as the reference).",
    _SERIES_LABELS)
CV_RATIO = Family(
    "perfd_benchmark_cv_ratio", "gauge",
    "Coefficient of variation of the process-level values of the latest completed history "
    "run (stddev / mean, 0-1).", _SERIES_LABELS)
BUDGET_OK = Family(
    "perfd_budget_ok", "gauge",
    "1 when every budget of the group that could judge the latest run passed, 0 when one "
    "broke; absent when none could judge (see perfd_budget_no_data).", _BUDGET_LABELS)
BUDGET_NO_DATA = Family(
    "perfd_budget_no_data", "gauge",
    "1 when a budget of the group had too little data to judge the latest run (NO_DATA); "
    "absent otherwise.", _BUDGET_LABELS)
BUDGET_LIMIT = Family(
    "perfd_budget_limit", "gauge",
    "Absolute budget limit (the strictest of the group) in the base unit of the metric's "
    "perfd_benchmark_* family: seconds, per second, bytes, ratio or its own unit.",
    _BUDGET_LABELS)
ALERTS_OPEN = Family(
    "perfd_alerts_open", "gauge",
    "Alerts of this machine that are active (OPEN or ACKNOWLEDGED), by suite, kind "
    "(code | infrastructure), confidence and state; absent means none.",
    ("suite", "kind", "confidence", "state"))
_ALERT_LABELS = ("suite", "benchmark", "metric", "kind", "confidence", "state")
ALERT_ACTIVE = Family(
    "perfd_alert_active", "gauge",
    "Active (OPEN or ACKNOWLEDGED) alerts of one series of this machine: 1, absent when it "
    "has none (a machine-wide infrastructure alert has an empty benchmark and metric).",
    _ALERT_LABELS)
ALERT_CHANGE = Family(
    "perfd_alert_change_ratio", "gauge",
    "The change an active alert of the series reports, as a ratio (0.05 = 5% worse or "
    "better, signed as perfd reports it).", _ALERT_LABELS)
RUNS = Family(
    "perfd_runs", "counter",
    "Finished runs of this machine stored in the database, by suite, tier and outcome "
    "(COMPLETED | CONTENDED | FAILED); drops when old runs are deleted.",
    ("suite", "tier", "outcome"))
RUN_DURATION = Family(
    "perfd_run_duration_seconds", "histogram",
    "Duration (start to finish) of the stored COMPLETED and CONTENDED runs of this machine, "
    "seconds.", ("suite", "tier"))
LAST_RUN = Family(
    "perfd_last_run_timestamp_seconds", "gauge",
    "When the latest COMPLETED run of the suite and tier finished, Unix seconds.",
    ("suite", "tier"))
JOBS = Family("perfd_jobs", "gauge",
              "Jobs of this machine in perfd's job table, by state.", ("state",))
QUEUE_OLDEST = Family(
    "perfd_job_queue_oldest_age_seconds", "gauge",
    "How long the longest-waiting QUEUED job of this machine has waited, seconds (0 when "
    "none waits).")
JOB_ATTEMPTS = Family(
    "perfd_job_attempts", "counter",
    "Attempts made at this machine's jobs in perfd's job table, by kind (run | confirm | "
    "evidence | rerun | bisect); drops when old jobs are deleted.", ("kind",))
JOB_RETRIES = Family(
    "perfd_job_retries", "counter",
    "Attempts after a job's first (the job failed, or its worker died and the lease "
    "expired), by kind; drops when old jobs are deleted.", ("kind",))
EXPIRED_LEASES = Family(
    "perfd_jobs_expired_leases", "gauge",
    "RUNNING jobs of this machine whose lease expired (their worker died; they are claimed "
    "again).")
STORE_UP = Family("perfd_store_up", "gauge",
                  "1 when this scrape read the database, 0 when reading it failed.")
RELOAD_SUCCESS = Family(
    "perfd_config_reload_success", "gauge",
    "1 when the latest configuration (re)load succeeded, 0 when it was refused (the last "
    "good configuration keeps running).")
RELOAD_TIMESTAMP = Family("perfd_config_reload_timestamp_seconds", "gauge",
                          "When the configuration was last (re)loaded or tried, Unix seconds.")
START_TIMESTAMP = Family("perfd_start_timestamp_seconds", "gauge",
                         "When the daemon started, Unix seconds.")
FETCH_FAILURES = Family(
    "perfd_repository_fetch_failures", "gauge",
    "Consecutive failed fetches of a tracked repository (0 after a good one).",
    ("repository",))
# Info: one sample of value 1, labels version and python (its value, not a label dimension).
BUILD_INFO = Family("perfd_build", "info",
                    "perfd's version and the Python version running it (always 1).")

VALUE_FAMILIES = (SECONDS, PER_SECOND, BYTES, RATIO, VALUE)
STORE_FAMILIES = (*VALUE_FAMILIES, REFERENCE_RATIO, CV_RATIO, BUDGET_OK, BUDGET_NO_DATA,
                  BUDGET_LIMIT, ALERTS_OPEN, ALERT_ACTIVE, ALERT_CHANGE, RUNS, RUN_DURATION,
                  LAST_RUN, JOBS, QUEUE_OLDEST, JOB_ATTEMPTS, JOB_RETRIES, EXPIRED_LEASES)
STATUS_FAMILIES = (STORE_UP, RELOAD_SUCCESS, RELOAD_TIMESTAMP, START_TIMESTAMP, FETCH_FAILURES,
                   BUILD_INFO)
FAMILIES = (*STORE_FAMILIES, *STATUS_FAMILIES)


# ----------------------------------------------------------------------------- units

# Metric units that are not spelled as limit suffixes (as in perfd.config.models).
_UNIT_SUFFIX = {"ops/s": "/s", "bytes": "B"}
_RATIO_UNITS = {"%": 100.0, "percent": 100.0, "ratio": 1.0}


def value_family(unit: str) -> tuple[Family, float, float]:
    """The value family of a metric unit and how to reach its base unit: (family,
    multiplier, divisor); a value in ``unit`` is ``value * multiplier / divisor`` there."""
    suffix = _UNIT_SUFFIX.get(unit, unit)
    if suffix in TIME_UNITS.factors:  # factors in ns
        return SECONDS, TIME_UNITS.factors[suffix], 1e9
    if suffix in RATE_UNITS.factors:
        return PER_SECOND, RATE_UNITS.factors[suffix], 1.0
    if suffix in SIZE_UNITS.factors:
        return BYTES, SIZE_UNITS.factors[suffix], 1.0
    if unit in _RATIO_UNITS:
        return RATIO, 1.0, _RATIO_UNITS[unit]
    return VALUE, 1.0, 1.0


def absolute_limit(limit_text: str, metric: str, unit: str) -> float | None:
    """The absolute limit in a stored budget's limit text ("2.5us, +5%" -> 2500.0 for unit
    ns), in ``unit``; None when it has none or it cannot be read."""
    # budget_results keep the limits only as written (perfd.flows.budgets.limit_text): the
    # absolute part comes first, relative parts start with "+".
    for part in limit_text.split(","):
        part = part.strip()
        if part and not part.startswith("+"):
            try:
                return limit_in_unit(part, metric, unit)
            except ValueError:  # pydantic's error for a limit perfd cannot convert
                return None
    return None


# ----------------------------------------------------------------------------- collector


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything one scrape reads from the store (the benchmark families already built)."""

    values: tuple[Metric, ...]
    budgets: list[LatestBudget]
    alerts: list[ActiveAlertRow]
    runs: list[RunTally]
    queue: QueueStats


class PerfdCollector:
    """Builds perfd's metric families from the store and the daemon's status on every
    scrape. Register it on its own registry (``metrics_registry``). ``statistics`` narrows
    the statistics exported per series (default all four; each costs one sample per series
    and scrape); an unknown one raises ValueError."""

    def __init__(
        self,
        store: ResultStore,
        machine_id: str,
        status: Callable[[], DaemonStatus],
        *,
        statistics: Sequence[str] = STATISTICS,
    ) -> None:
        unknown = [name for name in statistics if name not in STATISTICS]
        if unknown or not statistics:
            raise ValueError(f"PerfdCollector.statistics: must be some of {', '.join(STATISTICS)}, "
                             f"got {list(statistics)!r}")
        self._store = store
        self._machine_id = machine_id
        self._status = status
        self._statistics = tuple(statistics)
        # The benchmark families (nearly all of a scrape's samples, and of its cost) of the
        # last scrape, by the store's values version: they only change when a run is stored
        # or deleted or a reference ratio saved, so the scrapes in between reuse them, text
        # included. (A tuple swapped whole: scrapes may run in several HTTP threads.)
        self._values: tuple[tuple[Any, ...], tuple[Metric, ...]] | None = None

    def describe(self) -> Iterable[Metric]:
        """The families collect() yields, without samples and without reading anything."""
        return [family.new() for family in FAMILIES]

    def collect(self) -> Iterable[Metric]:
        """Fresh families from one read snapshot of the store and the daemon's status; a
        store that cannot be read gives perfd_store_up 0 and the status families only."""
        status = self._status()
        try:
            snapshot = self._read()
        except StorageError as error:
            log.warning("/metrics: could not read the store: %s", error)
            snapshot = None
        if snapshot is not None:
            yield from snapshot.values
            yield from _budget_families(snapshot.budgets)
            yield from _alert_families(snapshot.alerts)
            yield from _run_families(snapshot.runs)
            yield from _queue_families(snapshot.queue)
        yield _gauge(STORE_UP, 1.0 if snapshot is not None else 0.0)
        yield from _status_families(status)

    def _read(self) -> _Snapshot:
        machine = self._machine_id
        with self._store.reading() as r:
            version = r.values_version(machine)
            kept = self._values
            if kept is None or kept[0] != version:
                kept = self._values = (version, tuple(_value_families(r.latest_values(machine),
                                                                      self._statistics)))
            return _Snapshot(
                values=kept[1],
                budgets=r.latest_budgets(machine),
                alerts=r.active_alert_rows(machine),
                runs=r.run_tallies(machine, RUN_DURATION_BUCKETS_S),
                queue=r.queue_stats(machine),
            )


def metrics_registry(collector: PerfdCollector) -> CollectorRegistry:
    """A new registry holding only ``collector`` (never the process-wide default one, whose
    own collectors and start-up collect() perfd does not want)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the classic Prometheus text format (what promtool checks),
    as ``generate_latest`` writes it, by perfd's faster writer (perfd.daemon.exposition)."""
    return encode(registry.collect())


# ----------------------------------------------------------------------------- building


def _gauge(family: Family, value: float) -> Metric:
    metric = family.new()
    metric.add_metric([], value)
    return metric


def _value_families(values: Sequence[LatestValue], statistics: Sequence[str]) -> Iterator[Metric]:
    # Rows, not Sample objects: a scrape of 5,000 series has tens of thousands of them.
    families = {f.name: RowGauge(f.name, f.help, _SERIES_LABELS, varying="statistic")
                for f in VALUE_FAMILIES}
    reference, cv = (RowGauge(f.name, f.help, f.labels) for f in (REFERENCE_RATIO, CV_RATIO))
    units = {unit: value_family(unit) for unit in {v.unit for v in values}}
    for v in values:
        family, multiplier, divisor = units[v.unit]
        series = (v.suite, v.benchmark, v.metric)
        families[family.name].add_series(series, tuple(
            (statistic, getattr(v, statistic) * multiplier / divisor) for statistic in statistics))
        cv.add_row(series, v.cv)
        if v.reference_ratio is not None:
            reference.add_row(series, v.reference_ratio)
    yield from families.values()
    yield reference
    yield cv


def _budget_families(budgets: Sequence[LatestBudget]) -> Iterator[Metric]:
    groups: dict[tuple[str, ...], list[LatestBudget]] = defaultdict(list)
    for b in budgets:
        groups[(b.suite, b.benchmark, b.metric, b.statistic, b.action, b.owner or "")].append(b)
    ok, no_data, limit = BUDGET_OK.new(), BUDGET_NO_DATA.new(), BUDGET_LIMIT.new()
    limits: dict[tuple[str, str, str], float | None] = {}  # a few distinct texts per scrape
    for key, verdicts in groups.items():
        judged = [b.status for b in verdicts if b.status != "NO_DATA"]
        if judged:
            ok.add_metric(key, 1.0 if all(s == "PASS" for s in judged) else 0.0)
        if len(judged) < len(verdicts):
            no_data.add_metric(key, 1.0)
        strictest = _strictest_limit(verdicts, limits)
        if strictest is not None:
            limit.add_metric(key, strictest)
    yield ok
    yield no_data
    yield limit


def _strictest_limit(verdicts: Sequence[LatestBudget],
                     limits: dict[tuple[str, str, str], float | None]) -> float | None:
    """The group's strictest absolute limit in base units: the lowest ceiling of a
    lower-is-better metric, the highest floor of a higher-is-better one."""
    found: list[float] = []
    direction = None
    for b in verdicts:
        if b.unit is None or b.direction is None:
            continue  # the run has no statistics of the metric: its unit is unknown
        key = (b.limit_text, b.metric, b.unit)
        if key not in limits:
            value = absolute_limit(*key)
            _, multiplier, divisor = value_family(b.unit)
            limits[key] = None if value is None else value * multiplier / divisor
        base = limits[key]
        if base is not None:
            found.append(base)
            direction = b.direction
    if not found:
        return None
    return max(found) if direction == Direction.HIGHER.value else min(found)


def _alert_families(alerts: Sequence[ActiveAlertRow]) -> Iterator[Metric]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    # by series labels: two series of one benchmark x metric (tiers with other sizes) share them
    series: dict[tuple[str, ...], list[ActiveAlertRow]] = defaultdict(list)
    for a in alerts:
        counts[(a.suite, a.kind, a.confidence, a.state)] += 1
        series[(a.suite, a.benchmark, a.metric, a.kind, a.confidence, a.state)].append(a)
    total, active, change = ALERTS_OPEN.new(), ALERT_ACTIVE.new(), ALERT_CHANGE.new()
    for key, count in counts.items():
        total.add_metric(key, float(count))
    for labels, rows in series.items():
        active.add_metric(labels, float(len(rows)))
        change.add_metric(labels, max((r.change_pct for r in rows), key=abs) / 100.0)
    yield total
    yield active
    yield change


def _run_families(tallies: Sequence[RunTally]) -> Iterator[Metric]:
    by_group: dict[tuple[str, str], dict[str, RunTally]] = defaultdict(dict)
    for tally in tallies:
        by_group[(tally.suite, tally.tier)][tally.status] = tally
    runs, durations, last = RUNS.new(), RUN_DURATION.new(), LAST_RUN.new()
    bounds = [floatToGoString(b) for b in RUN_DURATION_BUCKETS_S] + ["+Inf"]
    for group, statuses in by_group.items():
        for outcome in RUN_OUTCOMES:  # every outcome, 0 included, so rate() starts at once
            runs.add_metric((*group, outcome), float(statuses[outcome].count)
                            if outcome in statuses else 0.0)
        measured = [statuses[s] for s in MEASURED if s in statuses]
        counts = [sum(t.buckets[i] for t in measured) for i in range(len(RUN_DURATION_BUCKETS_S))]
        counts.append(sum(t.finished for t in measured))
        durations.add_metric(group, list(zip(bounds, map(float, counts), strict=True)),
                             sum(t.duration_sum_s for t in measured))
        completed = statuses.get(RunStatus.COMPLETED.value)
        if completed is not None and completed.last_finished_at is not None:
            last.add_metric(group, completed.last_finished_at.timestamp())
    yield runs
    yield durations
    yield last


def _queue_families(queue: QueueStats) -> Iterator[Metric]:
    jobs = JOBS.new()
    for state, count in sorted(queue.by_state.items()):
        jobs.add_metric((state,), float(count))
    yield jobs
    yield _gauge(QUEUE_OLDEST, queue.oldest_queued_age_s or 0.0)
    attempts, retries = JOB_ATTEMPTS.new(), JOB_RETRIES.new()
    for kind, count in queue.attempts_by_kind.items():
        attempts.add_metric((kind,), float(count))
    for kind, count in queue.retries_by_kind.items():
        retries.add_metric((kind,), float(count))
    yield attempts
    yield retries
    yield _gauge(EXPIRED_LEASES, float(queue.expired_leases))


def _status_families(status: DaemonStatus) -> Iterator[Metric]:
    yield _gauge(RELOAD_SUCCESS, 1.0 if status.reload_success else 0.0)
    reload_time = RELOAD_TIMESTAMP.new()
    if status.reload_timestamp is not None:
        reload_time.add_metric([], status.reload_timestamp)
    yield reload_time
    yield _gauge(START_TIMESTAMP, status.started_timestamp)
    failures = FETCH_FAILURES.new()
    for repository, count in sorted(status.poll_failures.items()):
        failures.add_metric((repository,), float(count))
    yield failures
    info = BUILD_INFO.new()
    info.add_metric([], {"version": status.version, "python": platform.python_version()})
    yield info
