"""Benchmark runs in SQL: writing them (begin, complete, fail, recover) and reading them back.

A run is a row that starts RUNNING (``insert_run``) and ends either COMPLETED with all of
its processes, process summaries, measurements and statistics written in one transaction
(``complete_run``), or FAILED with an error text and, for diagnosis, its process rows and
their summaries (``fail_run``). A run whose perfd process died stays RUNNING until
``fail_interrupted`` marks it FAILED.

A process summary is the median of one process's samples of one metric and their count:
the process-level value statistics are computed from. Reading them (``process_values``)
never touches ``measurements``, which only exports and diagnosis read.

Functions here take a ``Connection`` inside the caller's transaction and, where they write
a timestamp, the time to write; ``ResultStore`` and ``Reader`` wrap them with their error
handling and clock. A run id that does not exist is a ``NotFoundError``, a run that is no
longer RUNNING a ``StorageError`` (as before the split).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from itertools import count, repeat
from statistics import median
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    RowMapping,
    Select,
    Table,
    delete,
    distinct,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine

from perfd.errors import NotFoundError, StorageError, UsageError
from perfd.model import (
    SAMPLE_CONTEXT_METRICS,
    Direction,
    EnvFingerprint,
    HarnessContext,
    ProcessResult,
    RunResult,
    RunStart,
    RunStatus,
    Summary,
)
from perfd.records import ProcessInfo, RunDetail, RunInfo
from perfd.store import tables as t

# Rows per executemany call: large enough to amortise the call, small enough that the row
# tuples built for a big run never all sit in memory next to the RunResult's own samples.
MEASUREMENT_CHUNK = 10_000

_MEASUREMENT_COLUMNS = ("run_id", "process_id", "benchmark", "metric", "sample_index", "value")
_SUMMARY_COLUMNS = tuple(
    f.name for f in fields(Summary) if f.name not in ("benchmark", "metric", "direction")
)


# ----------------------------------------------------------------------------- writing


def insert_run(conn: Connection, start: RunStart, *, hostname: str) -> int:
    """Insert a RUNNING row for ``start``; returns the run id. Raises ValueError for a naive
    start time."""
    _require_utc(start.started_at, "RunStart.started_at")
    if start.commit_time is not None:
        _require_utc(start.commit_time, "RunStart.commit_time")
    result = conn.execute(
        insert(t.benchmark_runs)
        .values(
            suite=start.suite,
            commit_sha=start.commit_sha,
            machine_id=start.machine_id,
            config_hash=start.config_hash,
            build_hash=start.build_hash,
            status=RunStatus.RUNNING.value,
            tier=start.tier,
            started_at=start.started_at,
            commit_time=start.commit_time,
            pid=start.pid,
            hostname=hostname,
        )
        .returning(t.benchmark_runs.c.id)
    )
    return int(result.scalar_one())


def complete_run(
    conn: Connection, run_id: int, result: RunResult, *, output_dir: str | None, now: datetime,
    contended: str | None = None,
) -> None:
    """Write a finished run (environment, processes, summaries, measurements, statistics,
    status COMPLETED, or CONTENDED with ``contended`` as its reason). Raises NotFoundError,
    StorageError (not RUNNING), ValueError."""
    _require_utc(result.finished_at, "RunResult.finished_at")
    stored_metrics: dict[str, set[str]] = {}
    for summary in result.statistics:
        stored_metrics.setdefault(summary.benchmark, set()).add(summary.metric)
    for metrics in stored_metrics.values():  # on-CPU times and switches, where measured
        metrics.update(SAMPLE_CONTEXT_METRICS)

    run_config_hash = _lock_running(conn, run_id, "completed")
    environment_id = _environment_id(conn, result.environment, now)
    process_ids = _insert_processes(conn, run_id, result.processes)
    stored = list(_stored_values(result.processes, process_ids, stored_metrics))
    _insert_summaries(conn, ((process_id, metric, samples) for process_id, _, metric, samples in stored))
    _insert_many(conn, t.measurements, _MEASUREMENT_COLUMNS, _measurement_batches(run_id, stored))
    if result.statistics:
        conn.execute(
            insert(t.statistics),
            [
                {
                    "run_id": run_id,
                    "benchmark": s.benchmark,
                    "metric": s.metric,
                    "direction": s.direction.value,
                    # A runner that gives no per-benchmark hash gets the run's: coarser
                    # series identity, never a missing one.
                    "config_hash": result.benchmark_config_hashes.get(
                        s.benchmark, run_config_hash
                    ),
                    **{name: getattr(s, name) for name in _SUMMARY_COLUMNS},
                }
                for s in result.statistics
            ],
        )
    conn.execute(
        update(t.benchmark_runs)
        .where(t.benchmark_runs.c.id == run_id)
        .values(
            status=(RunStatus.CONTENDED if contended else RunStatus.COMPLETED).value,
            finished_at=result.finished_at,
            environment_id=environment_id,
            load_avg_1m=result.environment.load_avg_1m,
            steal_fraction=result.steal_fraction,
            harness_version=result.harness.harness_version,
            harness_context=_harness_json(result.harness),
            output_dir=output_dir,
            error=contended,
        )
    )


def fail_run(
    conn: Connection,
    run_id: int,
    error: str,
    processes: Sequence[ProcessResult],
    environment: EnvFingerprint | None,
    *,
    now: datetime,
) -> None:
    """Mark a RUNNING run FAILED at ``now`` with ``error``, keeping processes (with their
    summaries) and environment. Raises NotFoundError, StorageError (not RUNNING)."""
    _lock_running(conn, run_id, "failed")
    values: dict[str, Any] = {"status": RunStatus.FAILED.value, "finished_at": now, "error": error}
    if environment is not None:
        values["environment_id"] = _environment_id(conn, environment, now)
        values["load_avg_1m"] = environment.load_avg_1m
    process_ids = _insert_processes(conn, run_id, processes)
    # What each kept process measured (a failed run has no statistics saying which metrics
    # matter), so a diagnosis can compare the processes without raw samples.
    _insert_summaries(
        conn,
        (
            (process_id, metric, samples)
            for process_id, process in zip(process_ids, processes, strict=True)
            for metric, samples in (
                ("time", process.samples.samples_ns),
                *sorted(process.samples.counters.items()),
            )
        ),
    )
    conn.execute(update(t.benchmark_runs).where(t.benchmark_runs.c.id == run_id).values(**values))


def find_running(conn: Connection, hostname: str) -> list[tuple[int, int]]:
    """(run id, perfd pid) of the RUNNING runs of ``hostname``, oldest first."""
    runs = t.benchmark_runs
    rows = conn.execute(
        select(runs.c.id, runs.c.pid)
        .where(runs.c.status == RunStatus.RUNNING.value, runs.c.hostname == hostname)
        .order_by(runs.c.id)
    )
    return [(int(run_id), int(pid)) for run_id, pid in rows]


def fail_interrupted(conn: Connection, dead: Sequence[tuple[int, int]], *, now: datetime) -> list[int]:
    """Mark FAILED those of the (run id, pid) pairs still RUNNING; returns their ids."""
    runs = t.benchmark_runs
    recovered: list[int] = []
    for run_id, pid in dead:
        # Still RUNNING? It may have finished while the caller was checking pids.
        changed = conn.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.status == RunStatus.RUNNING.value)
            .values(
                status=RunStatus.FAILED.value,
                finished_at=now,
                error=f"interrupted: perfd process {pid} is gone",
            )
        ).rowcount
        if changed:
            recovered.append(run_id)
    if recovered:
        # complete_run is atomic, so there should be none; a FAILED run never keeps any.
        for table in (t.measurements, t.statistics):
            conn.execute(delete(table).where(table.c.run_id.in_(recovered)))
    return recovered


# ----------------------------------------------------------------------------- reading


def query_runs(
    conn: Connection,
    *,
    suite: str | None,
    commit: str | None,
    status: str | None,
    limit: int,
    before_id: int | None = None,
) -> list[RunInfo]:
    """Runs newest first, filtered by suite, commit (full sha or a prefix of at least 4 hex
    digits) and status; with ``before_id`` only runs of smaller ids (the next page of a
    listing). Raises UsageError for bad filters."""
    runs = t.benchmark_runs
    if limit < 1:
        raise UsageError(f"limit must be >= 1, got {limit}")
    query = _run_info_query().order_by(runs.c.started_at.desc(), runs.c.id.desc())
    if suite is not None:
        query = query.where(runs.c.suite == suite)
    if commit is not None:
        sha = commit.lower()
        if not re.fullmatch(r"[0-9a-f]{4,40}", sha):
            raise UsageError(f"commit must be 4 to 40 hex digits, got {commit!r}")
        query = query.where(
            runs.c.commit_sha == sha if len(sha) == 40 else runs.c.commit_sha.startswith(sha)
        )
    if status is not None:
        query = query.where(runs.c.status == _run_status(status).value)
    if before_id is not None:
        query = query.where(runs.c.id < before_id)
    return [_run_info(row) for row in conn.execute(query.limit(limit)).mappings()]


def query_runs_for_commit(
    conn: Connection, suite: str, commit_sha: str, machine_id: str, *, status: str | None
) -> list[RunInfo]:
    """Runs of a suite at one commit (full sha) on one machine, newest first; ``status``
    None means any. Raises UsageError for an unknown status."""
    runs = t.benchmark_runs
    query = (
        _run_info_query()
        .where(
            runs.c.suite == suite,
            runs.c.commit_sha == commit_sha.lower(),
            runs.c.machine_id == machine_id,
        )
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
    )
    if status is not None:
        query = query.where(runs.c.status == _run_status(status).value)
    return [_run_info(row) for row in conn.execute(query).mappings()]


def read_run(conn: Connection, run_id: int) -> RunDetail:
    """Everything stored about a run but its samples. Raises NotFoundError."""
    runs, envs, procs = t.benchmark_runs, t.environments, t.processes
    query = (
        _run_info_query()
        .add_columns(
            runs.c.config_hash,
            runs.c.build_hash,
            runs.c.hostname,
            runs.c.pid,
            runs.c.load_avg_1m,
            runs.c.harness_version,
            runs.c.harness_context,
            runs.c.output_dir,
            runs.c.steal_fraction,
            envs.c.data.label("environment"),
        )
        .outerjoin(envs, envs.c.id == runs.c.environment_id)
        .where(runs.c.id == run_id)
    )
    row = conn.execute(query).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"no run with id {run_id}")
    process_rows = conn.execute(
        select(procs)
        .where(procs.c.run_id == run_id)
        .order_by(procs.c.benchmark, procs.c.repetition)
    ).mappings()
    processes = tuple(
        ProcessInfo(**{f.name: p[f.name] for f in fields(ProcessInfo)}) for p in process_rows
    )
    return RunDetail(
        info=_run_info(row),
        config_hash=row["config_hash"],
        build_hash=row["build_hash"],
        hostname=row["hostname"],
        pid=row["pid"],
        load_avg_1m=row["load_avg_1m"],
        harness_version=row["harness_version"],
        environment=_loads(row["environment"]),
        harness_context=_loads(row["harness_context"]),
        processes=processes,
        statistics=tuple(read_statistics(conn, run_id)),
        output_dir=row["output_dir"],
        steal_fraction=row["steal_fraction"],
    )


def read_statistics(conn: Connection, run_id: int) -> list[Summary]:
    """Summaries of a run ordered by benchmark and metric (empty for an unknown run)."""
    stats = t.statistics
    query = select(stats).where(stats.c.run_id == run_id).order_by(stats.c.benchmark, stats.c.metric)
    return [_summary(row) for row in conn.execute(query).mappings()]


def read_measurements(
    conn: Connection, run_id: int, benchmark: str, metric: str
) -> list[tuple[int, int, float]]:
    """Iteration samples of one benchmark x metric: (repetition, sample_index, value),
    ordered by repetition then sample."""
    m, p = t.measurements, t.processes
    query = (
        select(p.c.repetition, m.c.sample_index, m.c.value)
        .join(p, p.c.id == m.c.process_id)
        .where(m.c.run_id == run_id, m.c.benchmark == benchmark, m.c.metric == metric)
        .order_by(p.c.repetition, m.c.sample_index)
    )
    return [(rep, index, value) for rep, index, value in conn.execute(query)]


def read_process_values(
    conn: Connection, run_ids: Iterable[int], benchmark: str, metric: str
) -> dict[int, list[float]]:
    """Process-level values (each process's sample median) of one benchmark x metric per
    run, ordered by repetition; every asked run is a key, [] where it has none."""
    wanted = list(dict.fromkeys(run_ids))
    values: dict[int, list[float]] = {run_id: [] for run_id in wanted}
    if not wanted:
        return values
    procs, sums = t.processes, t.process_summaries
    query = (
        select(procs.c.run_id, sums.c.median)
        .join(procs, procs.c.id == sums.c.process_id)
        .where(procs.c.run_id.in_(wanted), procs.c.benchmark == benchmark, sums.c.metric == metric)
        .order_by(procs.c.run_id, procs.c.repetition)
    )
    for run_id, value in conn.execute(query):
        values[run_id].append(value)
    return values


def read_environment_hash(conn: Connection, run_id: int) -> str | None:
    """Environment fingerprint hash of a run, None while it has none recorded. Raises
    NotFoundError."""
    runs, envs = t.benchmark_runs, t.environments
    query = (
        select(runs.c.id, envs.c.fingerprint_hash)
        .outerjoin(envs, envs.c.id == runs.c.environment_id)
        .where(runs.c.id == run_id)
    )
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFoundError(f"no run with id {run_id}")
    return None if row.fingerprint_hash is None else str(row.fingerprint_hash)


# ----------------------------------------------------------------------------- helpers


def require_run(conn: Connection, run_id: int) -> None:
    """Raise NotFoundError unless the run exists."""
    runs = t.benchmark_runs
    if conn.execute(select(runs.c.id).where(runs.c.id == run_id)).one_or_none() is None:
        raise NotFoundError(f"no run with id {run_id}")


def _lock_running(conn: Connection, run_id: int, verb: str) -> str:
    """Check that the run exists and is RUNNING (locking its row); returns its config hash.
    Raises NotFoundError, StorageError (not RUNNING)."""
    runs = t.benchmark_runs
    row = conn.execute(
        select(runs.c.status, runs.c.config_hash).where(runs.c.id == run_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no run with id {run_id}")
    if row.status != RunStatus.RUNNING.value:
        raise StorageError(f"run {run_id} is {row.status}: only a RUNNING run can be {verb}")
    return str(row.config_hash)


def _environment_id(conn: Connection, environment: EnvFingerprint, now: datetime) -> int:
    envs = t.environments
    fingerprint = environment.fingerprint_hash
    find = select(envs.c.id).where(envs.c.fingerprint_hash == fingerprint)
    found = conn.execute(find).scalar_one_or_none()
    if found is not None:
        return int(found)
    try:
        with conn.begin_nested():
            result = conn.execute(
                insert(envs)
                .values(
                    fingerprint_hash=fingerprint,
                    data=json.dumps(environment.hashed_fields(), sort_keys=True),
                    first_seen_at=now,
                )
                .returning(envs.c.id)
            )
            return int(result.scalar_one())
    except IntegrityError:
        # Another writer (PostgreSQL) stored the same fingerprint in the meantime.
        return int(conn.execute(find).scalar_one())


def _insert_processes(
    conn: Connection, run_id: int, processes: Sequence[ProcessResult]
) -> list[int]:
    if not processes:
        return []
    procs = t.processes
    rows = [
        {
            "run_id": run_id,
            "benchmark": p.benchmark,
            "repetition": p.repetition,
            "round_index": p.round_index,
            "cpu": p.cpu,
            "exit_code": p.exit_code,
            "duration_s": p.duration_s,
            "iterations_per_sample": p.samples.iterations_per_sample,
            "n_samples": len(p.samples.samples_ns),
            "counters_unavailable_reason": p.counters_unavailable_reason,
        }
        for p in processes
    ]
    result = conn.execute(insert(procs).returning(procs.c.id, sort_by_parameter_order=True), rows)
    return [int(i) for i in result.scalars().all()]


def _insert_summaries(
    conn: Connection, per_process: Iterable[tuple[int, str, Sequence[float]]]
) -> None:
    """One process_summaries row per (process id, metric, sample values)."""
    rows = [
        {"process_id": process_id, "metric": metric, "median": median(values),
         "n_samples": len(values)}
        for process_id, metric, values in per_process
    ]
    if rows:
        conn.execute(insert(t.process_summaries), rows)


def _stored_values(
    processes: Sequence[ProcessResult],
    process_ids: Sequence[int],
    stored_metrics: Mapping[str, set[str]],
) -> Iterator[tuple[int, str, str, tuple[float, ...]]]:
    """(process id, benchmark, metric, sample values) for the metrics the run has
    statistics for. Ordered by benchmark, metric, repetition: the order of the
    (run_id, benchmark, metric) index, so SQLite appends to it instead of inserting into
    the middle."""
    by_benchmark: dict[str, list[tuple[int, ProcessResult]]] = {}
    for process_id, process in zip(process_ids, processes, strict=True):
        by_benchmark.setdefault(process.benchmark, []).append((process_id, process))
    for benchmark in sorted(by_benchmark):
        members = sorted(by_benchmark[benchmark], key=lambda item: item[1].repetition)
        for metric in sorted(stored_metrics.get(benchmark, ())):
            for process_id, process in members:
                values = process.samples.metric_values(metric)
                if values is not None:
                    yield process_id, benchmark, metric, values


def _measurement_batches(
    run_id: int, stored: Iterable[tuple[int, str, str, tuple[float, ...]]]
) -> Iterator[list[tuple[Any, ...]]]:
    """Measurement rows (in _MEASUREMENT_COLUMNS order), one list per process x metric."""
    for process_id, benchmark, metric, values in stored:
        yield list(
            zip(repeat(run_id), repeat(process_id), repeat(benchmark), repeat(metric), count(),
                values)
        )


def _insert_many(
    conn: Connection, table: Table, columns: Sequence[str], batches: Iterable[list[tuple[Any, ...]]]
) -> int:
    """Insert rows (tuples in ``columns`` order) in chunks of MEASUREMENT_CHUNK; returns count.

    The statement is a Core insert(). Where the driver takes positional parameters and no
    column type needs to convert values (SQLite: ints, floats, strings), the compiled
    statement is executed with the tuples directly: building a dict per row and having
    SQLAlchemy turn it back into a tuple costs more than SQLite's own insert
    (benchmarks/bench_ingest.py: 115k instead of 310k measurements/s on a 2-core EPYC).
    """
    stmt = insert(table)
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    direct = (
        compiled.positional
        and list(compiled.positiontup or ()) == list(columns)
        and all(_passes_through(table.c[name].type, dialect) for name in columns)
    )
    sql = compiled.string
    total = 0

    def flush(rows: list[tuple[Any, ...]]) -> None:
        if direct:
            conn.exec_driver_sql(sql, rows)
        else:
            conn.execute(stmt, [dict(zip(columns, row, strict=True)) for row in rows])

    pending: list[tuple[Any, ...]] = []
    for batch in batches:
        pending.extend(batch)
        while len(pending) >= MEASUREMENT_CHUNK:
            flush(pending[:MEASUREMENT_CHUNK])
            total += MEASUREMENT_CHUNK
            del pending[:MEASUREMENT_CHUNK]
    if pending:
        flush(pending)
        total += len(pending)
    return total


def _passes_through(column_type: TypeEngine[Any], dialect: Dialect) -> bool:
    """Whether the driver can take Python values of this column type without SQLAlchemy's
    bind processing."""
    if column_type.bind_processor(dialect) is None:
        return True
    # SQLAlchemy's Float processor on SQLite only turns Decimal and str into float; the
    # values written here are floats or ints, which a REAL column stores as REAL either way.
    return dialect.name == "sqlite" and isinstance(column_type, Float)


def _require_utc(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: must be a timezone-aware datetime (UTC), got naive {value!r}")


def _harness_json(harness: HarnessContext) -> str:
    data: dict[str, Any] = {}
    for f in fields(harness):
        value = getattr(harness, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        data[f.name] = value
    return json.dumps(data, sort_keys=True, default=str)


def _loads(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None


def _run_status(status: str) -> RunStatus:
    try:
        return RunStatus(status.upper())
    except ValueError:
        choices = ", ".join(s.value for s in RunStatus)
        raise UsageError(f"status must be one of {choices}, got {status!r}") from None


def _run_info_query() -> Select[Any]:
    runs, stats = t.benchmark_runs, t.statistics
    n_benchmarks = (
        select(func.count(distinct(stats.c.benchmark)))
        .where(stats.c.run_id == runs.c.id)
        .scalar_subquery()
    )
    return select(
        runs.c.id,
        runs.c.suite,
        runs.c.commit_sha,
        runs.c.machine_id,
        runs.c.status,
        runs.c.tier,
        runs.c.started_at,
        runs.c.finished_at,
        runs.c.error,
        n_benchmarks.label("n_benchmarks"),
    )


def _run_info(row: RowMapping) -> RunInfo:
    return RunInfo(
        id=row["id"],
        suite=row["suite"],
        commit_sha=row["commit_sha"],
        machine_id=row["machine_id"],
        status=RunStatus(row["status"]),
        tier=row["tier"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
        n_benchmarks=int(row["n_benchmarks"] or 0),
    )


def _summary(row: RowMapping) -> Summary:
    return Summary(
        benchmark=row["benchmark"],
        metric=row["metric"],
        unit=row["unit"],
        direction=Direction(row["direction"]),
        n_processes=row["n_processes"],
        n_samples=row["n_samples"],
        median=row["median"],
        mean=row["mean"],
        stddev=row["stddev"],
        cv=row["cv"],
        min=row["min"],
        max=row["max"],
        p95=row["p95"],
        p99=row["p99"],
        sample_cv=row["sample_cv"],
        mad=row["mad"],
        sample_median=row["sample_median"],
        sample_mean=row["sample_mean"],
        sample_mad=row["sample_mad"],
    )
