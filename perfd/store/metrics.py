"""What the daemon's /metrics reads at scrape time: one query per kind of figure, never one
per series (all of them take ~40 ms for 5,000 series on SQLite, benchmarks/
bench_metrics_scrape.py).

Functions here take an open ``Connection`` (``Reader`` wraps them with its error handling
and one snapshot) and return plain frozen values; turning them into Prometheus families,
names and base units is ``perfd.daemon.metrics``' job. Everything is of one machine.

"Latest" means the newest COMPLETED history run (tiers outside ``NOT_HISTORY_TIERS``) by
start time, run id breaking ties, as ``series.query_series_points`` orders a series. It is
taken per suite x benchmark x metric, across config hashes: when a benchmark's settings
change, the new series replaces the old one in the metrics (the history of both stays in
SQL), so a label set never holds two values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CTE, ColumnElement, Connection, Double, and_, case, cast, extract, func, select

from perfd.model import NOT_HISTORY_TIERS, RunStatus
from perfd.records import ACTIVE_STATES
from perfd.store import tables as t
from perfd.store.series import series_order


@dataclass(frozen=True, slots=True)
class LatestValue:
    """The statistics of one suite x benchmark x metric in its latest history run, in the
    metric's own ``unit``; ``cv`` is the process-level coefficient of variation (a fraction)
    and ``reference_ratio`` that run's current/reference ratio (None when it was not paired
    with a reference build)."""

    suite: str
    benchmark: str
    metric: str
    unit: str
    median: float
    mean: float
    p95: float
    p99: float
    cv: float
    reference_ratio: float | None


@dataclass(frozen=True, slots=True)
class LatestBudget:
    """One stored budget verdict from the latest history run that has verdicts for its
    suite x benchmark x metric. ``unit`` and ``direction`` are the metric's in that run
    (None when the run has no statistics for it)."""

    suite: str
    benchmark: str
    metric: str
    statistic: str
    action: str
    owner: str | None  # the team the budget names
    status: str  # PASS | FAIL | WARN | NO_DATA
    limit_text: str
    unit: str | None
    direction: str | None


@dataclass(frozen=True, slots=True)
class ActiveAlertRow:
    """One OPEN or ACKNOWLEDGED alert of the machine, as /metrics shows it (a machine-wide
    infrastructure alert has an empty benchmark and metric)."""

    suite: str
    benchmark: str
    metric: str
    kind: str
    confidence: str
    state: str
    change_pct: float


@dataclass(frozen=True, slots=True)
class RunTally:
    """Runs of one suite x tier x status. ``buckets`` counts the finished ones whose
    duration (finish - start) is <= each asked bound (cumulative, same order);
    ``finished``/``duration_sum_s`` count and add up all finished ones; ``last_finished_at``
    is the newest finish time (None while none finished)."""

    suite: str
    tier: str
    status: str
    count: int
    buckets: tuple[int, ...]
    finished: int
    duration_sum_s: float
    last_finished_at: datetime | None


# Packs a history run's rank and a row id into one integer, so that one GROUP BY finds the row
# of each series' newest run: MAX(rank * _PACK + id), then id = packed % _PACK. (A window
# ROW_NUMBER over every statistics row sorts them all by their string keys: three times
# slower on SQLite; a join back on the rank lets SQLite's planner pick the wrong index.)
# Ids stay below 2**40 and ranks below 2**23, so the product fits a signed 64-bit integer.
_PACK = 2**40


def _history(machine_id: str) -> CTE:
    """The machine's COMPLETED history runs (id, suite) with ``rank``: 1, 2, ... in the order
    of a series (:func:`perfd.store.series.series_order`; a CTE)."""
    runs = t.benchmark_runs.c
    return (
        select(runs.id, runs.suite,
               func.row_number().over(order_by=series_order(runs)).label("rank"))
        .where(
            runs.machine_id == machine_id,
            runs.status == RunStatus.COMPLETED.value,
            runs.tier.not_in(list(NOT_HISTORY_TIERS)),
        )
        .cte("history")
    )


def query_values_version(conn: Connection, machine_id: str) -> tuple[Any, ...]:
    """What changes whenever query_latest_values' answer may: the machine's runs (newest
    id, count, newest finish: a run started, completed, failed or was deleted) and the
    newest reference ratio. Cheap (indexes and primary keys), so /metrics can keep its
    benchmark families between scrapes while it stays the same."""
    runs, ratios = t.benchmark_runs.c, t.run_ratios.c
    row = conn.execute(
        select(func.max(runs.id), func.count(), func.max(runs.finished_at))
        .where(runs.machine_id == machine_id)
    ).one()
    return (*row, conn.execute(select(func.max(ratios.id))).scalar_one())


def query_latest_values(conn: Connection, machine_id: str) -> list[LatestValue]:
    """Statistics and reference ratio of every suite x benchmark x metric of the machine in
    its latest history run, in one query, ordered by suite, benchmark and metric."""
    history = _history(machine_id)
    stats, ratios = t.statistics.c, t.run_ratios.c
    newest = (
        select(func.max(history.c.rank * _PACK + stats.id).label("packed"))
        .join(history, history.c.id == stats.run_id)
        .group_by(history.c.suite, stats.benchmark, stats.metric)
        .subquery("newest")
    )
    query = (
        select(t.benchmark_runs.c.suite, stats.benchmark, stats.metric, stats.unit, stats.median,
               stats.mean, stats.p95, stats.p99, stats.cv, ratios.ratio)
        .select_from(newest)
        .join(t.statistics, stats.id == newest.c.packed % _PACK)
        .join(t.benchmark_runs, t.benchmark_runs.c.id == stats.run_id)
        .outerjoin(t.run_ratios, and_(ratios.run_id == stats.run_id,
                                      ratios.benchmark == stats.benchmark,
                                      ratios.metric == stats.metric))
        .order_by(t.benchmark_runs.c.suite, stats.benchmark, stats.metric)
    )
    return [LatestValue(*row) for row in conn.execute(query).all()]


def query_latest_budgets(conn: Connection, machine_id: str) -> list[LatestBudget]:
    """Budget verdicts of every suite x benchmark x metric of the machine from the latest
    history run that has verdicts for it, in one query, ordered by suite, benchmark,
    metric, statistic and action."""
    history = _history(machine_id)
    budgets, stats = t.budget_results.c, t.statistics.c
    newest = (
        select(history.c.suite, budgets.benchmark, budgets.metric,
               func.max(history.c.rank).label("rank"))
        .join(history, history.c.id == budgets.run_id)
        .group_by(history.c.suite, budgets.benchmark, budgets.metric)
        .subquery("newest")
    )
    # Every verdict row of a history run, kept when its run is its series' newest. (Joining
    # from ``newest`` instead would look each series' rows up by run alone: budget_results
    # is indexed by run_id only, so that reads a whole run's rows per series.)
    query = (
        select(history.c.suite, budgets.benchmark, budgets.metric, budgets.statistic,
               budgets.action, budgets.owner, budgets.status, budgets.limit_text, stats.unit,
               stats.direction)
        .select_from(t.budget_results)
        .join(history, history.c.id == budgets.run_id)
        .join(newest, and_(newest.c.suite == history.c.suite,
                           newest.c.benchmark == budgets.benchmark,
                           newest.c.metric == budgets.metric,
                           newest.c.rank == history.c.rank))
        .outerjoin(t.statistics, and_(stats.run_id == budgets.run_id,
                                      stats.benchmark == budgets.benchmark,
                                      stats.metric == budgets.metric))
        .order_by(history.c.suite, budgets.benchmark, budgets.metric, budgets.statistic,
                  budgets.action, budgets.owner)
    )
    return [LatestBudget(*row) for row in conn.execute(query).all()]


def query_active_alert_rows(conn: Connection, machine_id: str) -> list[ActiveAlertRow]:
    """The OPEN and ACKNOWLEDGED alerts of the machine (at most one per series), ordered by
    suite, benchmark, metric and kind, in one query."""
    alerts = t.alerts.c
    query = (
        select(alerts.suite, func.coalesce(alerts.benchmark, ""), alerts.metric, alerts.kind,
               alerts.confidence, alerts.state, alerts.change_pct)
        .where(alerts.machine_id == machine_id, alerts.state.in_(ACTIVE_STATES))
        .order_by(alerts.suite, alerts.benchmark, alerts.metric, alerts.kind, alerts.id)
    )
    return [ActiveAlertRow(*row) for row in conn.execute(query)]


def query_run_tallies(
    conn: Connection, machine_id: str, bounds_s: Sequence[float]
) -> list[RunTally]:
    """Runs of the machine counted by suite, tier and status, with their duration counts
    at or below each of ``bounds_s`` (ascending), in one query."""
    runs = t.benchmark_runs.c
    duration = _seconds_between(conn, runs.started_at, runs.finished_at)
    columns = (runs.suite, runs.tier, runs.status)
    query = (
        select(
            *columns,
            func.count(),
            *(func.sum(case((duration <= bound, 1), else_=0)) for bound in bounds_s),
            func.count(duration),
            func.coalesce(func.sum(duration), 0.0),
            func.max(runs.finished_at),
        )
        .where(runs.machine_id == machine_id)
        .group_by(*columns)
        .order_by(*columns)
    )
    n = len(bounds_s)
    tallies = []
    for row in conn.execute(query):
        suite, tier, status, count, *rest = row
        buckets, (finished, total, last) = rest[:n], rest[n:]
        tallies.append(RunTally(suite, tier, status, int(count),
                                tuple(int(b or 0) for b in buckets), int(finished),
                                float(total), last))
    return tallies


def _seconds_between(
    conn: Connection, start: ColumnElement[datetime], end: ColumnElement[datetime]
) -> ColumnElement[float]:
    """end - start in seconds (NULL while end is NULL), on SQLite and PostgreSQL."""
    if conn.dialect.name == "sqlite":
        # SQLite stores the timestamps as text; julianday reads them to the millisecond, and
        # the rounding keeps a 60.000 s run from landing just above the 60 s bucket.
        return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)
    return cast(extract("epoch", end - start), Double)
