"""Reading history: the series (benchmark x metric x machine x config) of completed runs.

Functions here take an open ``Connection``; ``ResultStore`` wraps them with its error
handling. Only COMPLETED runs are history: a RUNNING or FAILED run has no statistics to
compare, and an interrupted one must never look like a data point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from perfd.model import RunStatus
from perfd.store import tables as t


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Identity of a series: results are only ever compared within one.

    ``config_hash`` is the benchmark's own (``statistics.config_hash``). ``benchmark`` is ""
    for a machine-wide key (infrastructure alerts); None is accepted and read as "".
    """

    suite: str
    benchmark: str
    metric: str
    machine_id: str
    config_hash: str

    def __post_init__(self) -> None:
        if self.benchmark is None:
            object.__setattr__(self, "benchmark", "")
        for name in ("suite", "metric", "machine_id", "config_hash"):
            if not getattr(self, name):
                raise ValueError(f"SeriesKey.{name}: must not be empty")

    def __str__(self) -> str:
        return (
            f"{self.suite}/{self.benchmark or '*'}/{self.metric} on {self.machine_id} "
            f"(config {self.config_hash})"
        )


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One completed run of a series. ``median`` and ``cv`` are over process-level values
    (statistics.median / statistics.cv); ``environment_hash`` is the run's environment
    fingerprint, None if it was never recorded."""

    run_id: int
    commit_sha: str
    started_at: datetime
    finished_at: datetime
    median: float
    cv: float
    n_processes: int
    environment_hash: str | None


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
    """Completed runs of ``key`` ordered by start time (run id breaks ties)."""
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
        .order_by(runs.c.started_at, runs.c.id)
    )
    if tier is not None:
        query = query.where(runs.c.tier == tier)
    if exclude_tiers:
        query = query.where(runs.c.tier.not_in(list(exclude_tiers)))
    return [SeriesPoint(*row) for row in conn.execute(query)]
