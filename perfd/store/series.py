"""Reading history: the series (benchmark x metric x machine x config) of completed runs.

Functions here take an open ``Connection``; ``Reader`` wraps them with its error handling.
Only COMPLETED runs are history: a RUNNING or FAILED run has no statistics to compare, and
an interrupted one must never look like a data point. The queries read ``statistics`` (and
runs, environments), never the raw samples in ``measurements``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from perfd.model import RunStatus
from perfd.records import SeriesKey, SeriesPoint
from perfd.store import tables as t


def series_order(runs: Any) -> tuple[ColumnElement[Any], ...]:
    """The order of a series' runs, from the columns of benchmark_runs (or an alias of it):
    commit order by the committer date, then start time, then id. Runs stored before schema 9
    have no commit time and keep their start-time place."""
    return (func.coalesce(runs.commit_time, runs.started_at), runs.started_at, runs.id)


def query_series_keys(
    conn: Connection, *, suite: str | None, machine_id: str | None
) -> list[SeriesKey]:
    """Distinct series with at least one completed run, ordered by their fields."""
    runs, stats = t.benchmark_runs, t.statistics
    columns = (runs.c.suite, stats.c.benchmark, stats.c.metric, runs.c.machine_id,
               stats.c.config_hash)
    query = (
        select(*columns)
        .distinct()
        .join(runs, runs.c.id == stats.c.run_id)
        .where(runs.c.status == RunStatus.COMPLETED.value)
        .order_by(*columns)
    )
    if suite is not None:
        query = query.where(runs.c.suite == suite)
    if machine_id is not None:
        query = query.where(runs.c.machine_id == machine_id)
    return [SeriesKey(*row) for row in conn.execute(query)]


def query_series_points(
    conn: Connection, key: SeriesKey, *, tier: str | None, exclude_tiers: Sequence[str]
) -> list[SeriesPoint]:
    """Completed runs of ``key`` in history order: by commit time (a commit re-measured
    later keeps its place), then start time, then run id; a run from before schema 9 has
    no commit time and sits at its start time."""
    if not key.benchmark:
        raise ValueError(f"series points need a benchmark; {key} is a machine-wide key")
    runs, stats, envs = t.benchmark_runs, t.statistics, t.environments
    query = (
        select(
            runs.c.id,
            runs.c.commit_sha,
            runs.c.started_at,
            runs.c.finished_at,
            stats.c.median,
            stats.c.cv,
            stats.c.n_processes,
            envs.c.fingerprint_hash,
        )
        .join(runs, runs.c.id == stats.c.run_id)
        .outerjoin(envs, envs.c.id == runs.c.environment_id)
        .where(
            runs.c.status == RunStatus.COMPLETED.value,
            runs.c.suite == key.suite,
            runs.c.machine_id == key.machine_id,
            stats.c.benchmark == key.benchmark,
            stats.c.metric == key.metric,
            stats.c.config_hash == key.config_hash,
        )
        .order_by(*series_order(runs.c))
    )
    if tier is not None:
        query = query.where(runs.c.tier == tier)
    if exclude_tiers:
        query = query.where(runs.c.tier.not_in(list(exclude_tiers)))
    return [SeriesPoint(*row) for row in conn.execute(query)]
