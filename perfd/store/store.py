"""ResultStore: the one place that reads and writes benchmark runs in SQL.

A run is a row that starts RUNNING (``begin_run``) and ends either COMPLETED with all of
its processes, measurements and statistics written in one transaction (``complete_run``),
or FAILED with an error text and, for diagnosis, its process rows (``fail_run``). A run
whose perfd process died stays RUNNING until ``recover_interrupted`` marks it FAILED.
Completed runs form the history of series (``series_keys`` / ``series_points``, see
``series.py``); regressions found in it become alerts with a stored lifecycle (``alerts.py``).

Database errors leave this module as ``StorageError`` with the cause and the URL (password
masked); a run id that does not exist is a ``UsageError``. Timestamps are timezone-aware
UTC in and out.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from itertools import count, repeat
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    RowMapping,
    Select,
    Table,
    create_engine,
    delete,
    distinct,
    event,
    func,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.types import TypeEngine

from perfd.errors import StorageError, UsageError
from perfd.model import (
    Direction,
    EnvFingerprint,
    HarnessContext,
    ProcessResult,
    RunResult,
    RunStart,
    RunStatus,
    Summary,
)
from perfd.store import alerts as a
from perfd.store import tables as t
from perfd.store.alerts import Alert, AlertDraft, AlertEvent
from perfd.store.migrations import (
    SCHEMA_VERSION,
    WRITE_TRANSACTION,
    current_version,
    foreign_tables,
    not_a_perfd_database,
    read_version,
    upgrade,
    write_transaction,
)
from perfd.store.series import SeriesKey, SeriesPoint, query_series_keys, query_series_points

DEFAULT_BUSY_TIMEOUT_MS = 5000
# Rows per executemany call: large enough to amortise the call, small enough that the row
# tuples built for a big run never all sit in memory next to the RunResult's own samples.
MEASUREMENT_CHUNK = 10_000
# Engine execution option carrying the busy timeout, so error messages can say how long
# a locked database was waited for.
_BUSY_TIMEOUT_OPTION = "perfd_busy_timeout_ms"

_MEASUREMENT_COLUMNS = ("run_id", "process_id", "benchmark", "metric", "sample_index", "value")


def _utc_now() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One row of a run listing. ``n_benchmarks`` counts benchmarks with statistics."""

    id: int
    suite: str
    commit_sha: str
    machine_id: str
    status: RunStatus
    tier: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    n_benchmarks: int


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One stored harness process (without its samples)."""

    benchmark: str
    repetition: int
    round_index: int
    cpu: int | None
    exit_code: int
    duration_s: float
    iterations_per_sample: int
    n_samples: int
    counters_unavailable_reason: str | None


@dataclass(frozen=True, slots=True)
class RunDetail:
    """Everything stored about one run except its iteration samples."""

    info: RunInfo
    config_hash: str
    build_hash: str
    hostname: str
    pid: int
    load_avg_1m: float | None
    harness_version: str | None
    environment: Mapping[str, Any] | None  # EnvFingerprint.hashed_fields(), once known
    harness_context: Mapping[str, Any] | None
    processes: tuple[ProcessInfo, ...]  # ordered by benchmark, repetition
    statistics: tuple[Summary, ...]  # ordered by benchmark, metric
    output_dir: str | None


# ----------------------------------------------------------------------------- engine


def mask_url(url: str | URL) -> str:
    """The URL as it may be shown to people: password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def _sqlite_path(url: URL) -> str | None:
    """File path of a SQLite URL (``file:`` URIs included); None for in-memory."""
    database = url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return database[len("file:") :].split("?", 1)[0] or None
    return database


def make_engine(url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    """A SQLAlchemy engine for ``url``; for SQLite creates the file's directory and sets
    WAL, busy timeout and foreign keys on every connection. Raises StorageError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"invalid database URL {mask_url(url)}: expected dialect://user:password@host/name "
            "or sqlite:///path/to/file.db"
        ) from None
    if busy_timeout_ms < 0:
        raise ValueError(f"busy_timeout_ms: must be >= 0, got {busy_timeout_ms}")
    is_sqlite = parsed.get_backend_name() == "sqlite"
    path = _sqlite_path(parsed) if is_sqlite else None
    is_uri = (parsed.database or "").startswith("file:")  # sqlite:///file:...?uri=true
    if path is not None and not is_uri:
        parent = Path(path).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"database is not writable: {path} (cannot create directory {parent}: "
                f"{exc.strerror or exc})"
            ) from exc
    if parsed.drivername == "postgresql":
        # perfd depends on psycopg 3 (extra "postgres"), not on SQLAlchemy's default psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {"execution_options": {_BUSY_TIMEOUT_OPTION: busy_timeout_ms}}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except ImportError as exc:
        raise StorageError(
            f"cannot use database URL {mask_url(parsed)}: its driver is not installed ({exc}); "
            "for PostgreSQL install perfd[postgres]"
        ) from exc
    except ArgumentError as exc:
        raise StorageError(f"cannot use database URL {mask_url(parsed)}: {exc}") from exc
    if is_sqlite:
        _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the driver, decides where transactions begin (the driver's own
        # handling skips DDL and SAVEPOINT); see _on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
                # A long-lived daemon keeps its connections open, so the WAL file is not
                # deleted; after a checkpoint, shrink it instead of keeping a big run's size.
                cursor.execute(f"PRAGMA journal_size_limit = {64 * 2**20}")
            except sqlite3.OperationalError as exc:
                # A read-only database that is not in WAL mode can still be read.
                if "readonly" not in str(exc):
                    raise
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writing = conn.get_execution_options().get(WRITE_TRANSACTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


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


_SUMMARY_COLUMNS = tuple(
    f.name for f in fields(Summary) if f.name not in ("benchmark", "metric", "direction")
)


# ----------------------------------------------------------------------------- the store


class ResultStore:
    """Benchmark runs in SQL (SQLite by default, PostgreSQL by URL)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._engine = engine
        self._clock = clock
        self._url = mask_url(engine.url)
        path = _sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
        self._where = path or self._url
        self._busy_timeout_ms: int | None = engine.get_execution_options().get(
            _BUSY_TIMEOUT_OPTION
        )

    @classmethod
    def open(
        cls,
        url: str,
        *,
        auto_upgrade: bool = True,
        check_schema: bool = True,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        clock: Callable[[], datetime] = _utc_now,
    ) -> ResultStore:
        """Open the database at ``url``, creating the schema in an empty one when
        ``auto_upgrade``; refuses other schema versions unless ``check_schema`` is False
        (for ``perfd db upgrade``). Raises StorageError."""
        engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        store = cls(engine, clock=clock)
        try:
            if check_schema:
                store._check_schema(auto_upgrade)
        except BaseException:
            engine.dispose()
            raise
        return store

    @classmethod
    def open_for_upgrade(
        cls, url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    ) -> ResultStore:
        """Open without checking the schema version (``perfd db upgrade`` / status); call
        ``upgrade()`` next. Raises StorageError."""
        return cls.open(url, check_schema=False, busy_timeout_ms=busy_timeout_ms)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Close all pooled connections."""
        self._engine.dispose()

    # -- schema

    def schema_version(self) -> int | None:
        """The database's schema version; None for an empty database."""
        with self._guard("reading the schema version"):
            return current_version(self._engine)

    def upgrade(self) -> tuple[int, int]:
        """Apply missing migrations; returns (from, to), from = 0 for an empty database."""
        with self._guard("upgrading the database schema"):
            return upgrade(self._engine)

    def _check_schema(self, auto_upgrade: bool) -> None:
        with self._guard("opening the database"):
            with self._engine.connect() as conn:
                version = read_version(conn)
                tables = foreign_tables(conn) if version is None else []
            if version is None:
                if tables:
                    raise not_a_perfd_database(tables)
                if not auto_upgrade:
                    raise StorageError(
                        f"database {self._url} has no perfd schema yet: run `perfd db upgrade`"
                    )
                upgrade(self._engine)
                return
        if version < SCHEMA_VERSION:
            raise StorageError(
                f"database at schema version {version}, perfd needs {SCHEMA_VERSION}: "
                f"run `perfd db upgrade` ({self._url})"
            )
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"database {self._url} was written by a newer perfd "
                f"(schema version {version} > {SCHEMA_VERSION}): upgrade perfd"
            )

    # -- writing runs

    def begin_run(self, start: RunStart, *, hostname: str | None = None) -> int:
        """Insert a RUNNING row for ``start`` and commit it; returns the run id.

        ``hostname`` (default: this machine's) is what ``recover_interrupted`` matches on.
        """
        _require_utc(start.started_at, "RunStart.started_at")
        with self._guard("recording the start of a run"), self._write() as conn:
            result = conn.execute(
                insert(t.benchmark_runs).values(
                    suite=start.suite,
                    commit_sha=start.commit_sha,
                    machine_id=start.machine_id,
                    config_hash=start.config_hash,
                    build_hash=start.build_hash,
                    status=RunStatus.RUNNING.value,
                    tier=start.tier,
                    started_at=start.started_at,
                    pid=start.pid,
                    hostname=hostname if hostname is not None else socket.gethostname(),
                )
                .returning(t.benchmark_runs.c.id)
            )
            return int(result.scalar_one())

    def complete_run(
        self, run_id: int, result: RunResult, output_dir: str | None = None
    ) -> None:
        """Store a finished run in one transaction (environment, processes, measurements,
        statistics, status COMPLETED). On any error nothing is stored and the run stays
        RUNNING. Raises StorageError, or UsageError for an unknown run id."""
        _require_utc(result.finished_at, "RunResult.finished_at")
        stored_metrics: dict[str, set[str]] = {}
        for summary in result.statistics:
            stored_metrics.setdefault(summary.benchmark, set()).add(summary.metric)

        with self._guard(f"storing run {run_id}"), self._write() as conn:
            run_config_hash = self._lock_running(conn, run_id, "completed")
            environment_id = self._environment_id(conn, result.environment)
            process_ids = self._insert_processes(conn, run_id, result.processes)
            _insert_many(
                conn,
                t.measurements,
                _MEASUREMENT_COLUMNS,
                _measurement_batches(run_id, result.processes, process_ids, stored_metrics),
            )
            if result.statistics:
                conn.execute(
                    insert(t.statistics),
                    [
                        {
                            "run_id": run_id,
                            "benchmark": s.benchmark,
                            "metric": s.metric,
                            "direction": s.direction.value,
                            # A runner that gives no per-benchmark hash gets the run's:
                            # coarser series identity, never a missing one.
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
                    status=RunStatus.COMPLETED.value,
                    finished_at=result.finished_at,
                    environment_id=environment_id,
                    load_avg_1m=result.environment.load_avg_1m,
                    harness_version=result.harness.harness_version,
                    harness_context=_harness_json(result.harness),
                    output_dir=output_dir,
                    error=None,
                )
            )

    def fail_run(
        self,
        run_id: int,
        error: str,
        processes: Sequence[ProcessResult] = (),
        environment: EnvFingerprint | None = None,
    ) -> None:
        """Mark a RUNNING run FAILED with ``error`` (cause + stderr tail), keeping the given
        process rows and environment for diagnosis; never measurements or statistics.
        Raises StorageError, or UsageError for an unknown run id."""
        with self._guard(f"recording the failure of run {run_id}"), self._write() as conn:
            self._lock_running(conn, run_id, "failed")
            values: dict[str, Any] = {
                "status": RunStatus.FAILED.value,
                "finished_at": self._clock(),
                "error": error,
            }
            if environment is not None:
                values["environment_id"] = self._environment_id(conn, environment)
                values["load_avg_1m"] = environment.load_avg_1m
            self._insert_processes(conn, run_id, processes)
            conn.execute(
                update(t.benchmark_runs).where(t.benchmark_runs.c.id == run_id).values(**values)
            )

    def recover_interrupted(self, hostname: str, is_alive: Callable[[int], bool]) -> list[int]:
        """Mark FAILED the RUNNING runs of ``hostname`` whose perfd pid is not alive;
        returns their ids (oldest first). Raises StorageError."""
        runs = t.benchmark_runs
        with self._guard("recovering interrupted runs"):
            with self._engine.connect() as conn:
                candidates = conn.execute(
                    select(runs.c.id, runs.c.pid)
                    .where(runs.c.status == RunStatus.RUNNING.value, runs.c.hostname == hostname)
                    .order_by(runs.c.id)
                ).all()
            dead = [(run_id, pid) for run_id, pid in candidates if not is_alive(pid)]
            if not dead:
                return []
            recovered: list[int] = []
            with self._write() as conn:
                now = self._clock()
                for run_id, pid in dead:
                    # Still RUNNING? It may have finished while we were checking pids.
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
                    # complete_run is atomic, so there should be none; a FAILED run never
                    # keeps any.
                    for table in (t.measurements, t.statistics):
                        conn.execute(delete(table).where(table.c.run_id.in_(recovered)))
            return recovered

    # -- reading runs

    def list_runs(
        self,
        *,
        suite: str | None = None,
        commit: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """Runs newest first, filtered by suite, commit (full sha or a prefix of at least 4
        hex digits) and status. Raises UsageError for bad filters, StorageError."""
        runs = t.benchmark_runs
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        query = self._run_info_query().order_by(runs.c.started_at.desc(), runs.c.id.desc())
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
        with self._guard("listing runs"), self._engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).mappings().all()
        return [_run_info(row) for row in rows]

    def get_run(self, run_id: int) -> RunDetail:
        """Everything stored about a run but its samples. Raises UsageError if it does not
        exist, StorageError."""
        runs, envs, procs = t.benchmark_runs, t.environments, t.processes
        query = (
            self._run_info_query()
            .add_columns(
                runs.c.config_hash,
                runs.c.build_hash,
                runs.c.hostname,
                runs.c.pid,
                runs.c.load_avg_1m,
                runs.c.harness_version,
                runs.c.harness_context,
                runs.c.output_dir,
                envs.c.data.label("environment"),
            )
            .outerjoin(envs, envs.c.id == runs.c.environment_id)
            .where(runs.c.id == run_id)
        )
        with self._guard(f"reading run {run_id}"), self._engine.connect() as conn:
            row = conn.execute(query).mappings().one_or_none()
            if row is None:
                raise UsageError(f"no run with id {run_id}")
            process_rows = conn.execute(
                select(procs)
                .where(procs.c.run_id == run_id)
                .order_by(procs.c.benchmark, procs.c.repetition)
            ).mappings().all()
            summaries = self._statistics(conn, run_id)
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
            processes=tuple(
                ProcessInfo(**{f.name: p[f.name] for f in fields(ProcessInfo)})
                for p in process_rows
            ),
            statistics=tuple(summaries),
            output_dir=row["output_dir"],
        )

    def statistics(self, run_id: int) -> list[Summary]:
        """Summaries of a run ordered by benchmark and metric (empty for an unknown run)."""
        with self._guard(f"reading statistics of run {run_id}"), self._engine.connect() as conn:
            return self._statistics(conn, run_id)

    def measurements(
        self, run_id: int, benchmark: str, metric: str
    ) -> list[tuple[int, int, float]]:
        """Iteration samples of one benchmark x metric: (repetition, sample_index, value),
        ordered by repetition then sample. Raises StorageError."""
        m, p = t.measurements, t.processes
        query = (
            select(p.c.repetition, m.c.sample_index, m.c.value)
            .join(p, p.c.id == m.c.process_id)
            .where(m.c.run_id == run_id, m.c.benchmark == benchmark, m.c.metric == metric)
            .order_by(p.c.repetition, m.c.sample_index)
        )
        with self._guard(f"reading measurements of run {run_id}"), self._engine.connect() as conn:
            return [(rep, index, value) for rep, index, value in conn.execute(query)]

    def process_values(self, run_id: int, benchmark: str, metric: str) -> list[float]:
        """Process-level values of one benchmark x metric (the median of each process's
        samples), ordered by repetition: the unit of statistical analysis."""
        per_process: dict[int, list[float]] = {}
        for repetition, _index, value in self.measurements(run_id, benchmark, metric):
            per_process.setdefault(repetition, []).append(value)
        return [median(values) for values in per_process.values()]

    def runs_for_commit(
        self, suite: str, commit_sha: str, machine_id: str, *, status: str | None = "COMPLETED"
    ) -> list[RunInfo]:
        """Runs of a suite at one commit (full sha) on one machine, newest first; ``status``
        None means any. Raises UsageError for an unknown status, StorageError."""
        runs = t.benchmark_runs
        query = (
            self._run_info_query()
            .where(
                runs.c.suite == suite,
                runs.c.commit_sha == commit_sha.lower(),
                runs.c.machine_id == machine_id,
            )
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        )
        if status is not None:
            query = query.where(runs.c.status == _run_status(status).value)
        with self._guard(f"listing runs of commit {commit_sha}"), self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_run_info(row) for row in rows]

    def environment_hash(self, run_id: int) -> str | None:
        """Environment fingerprint hash of a run, None while it has none recorded. Raises
        UsageError for an unknown run, StorageError."""
        runs, envs = t.benchmark_runs, t.environments
        query = (
            select(runs.c.id, envs.c.fingerprint_hash)
            .outerjoin(envs, envs.c.id == runs.c.environment_id)
            .where(runs.c.id == run_id)
        )
        with self._guard(f"reading the environment of run {run_id}"), self._engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            raise UsageError(f"no run with id {run_id}")
        return None if row.fingerprint_hash is None else str(row.fingerprint_hash)

    # -- history of series

    def series_keys(
        self, *, suite: str | None = None, machine_id: str | None = None
    ) -> list[SeriesKey]:
        """Distinct series (suite, benchmark, metric, machine, benchmark config hash) with
        completed runs, ordered by those fields. Raises StorageError."""
        with self._guard("listing series"), self._engine.connect() as conn:
            return query_series_keys(conn, suite=suite, machine_id=machine_id)

    def series_points(
        self, key: SeriesKey, *, tier: str | None = None, exclude_tiers: Sequence[str] = ()
    ) -> list[SeriesPoint]:
        """Completed runs of one series ordered by start time, optionally only one tier or
        without some tiers. Raises ValueError for a key without benchmark, StorageError."""
        with self._guard(f"reading series {key}"), self._engine.connect() as conn:
            return query_series_points(conn, key, tier=tier, exclude_tiers=exclude_tiers)

    # -- alerts

    def open_alert(self, draft: AlertDraft, *, actor: str = "perfd") -> int:
        """Store a new OPEN alert (runs_seen 1) with its creation event; returns its id.
        Raises UsageError when the series already has an active alert (see
        ``active_alert``) or a run id is unknown, StorageError."""
        with self._guard(f"opening an alert for {draft.series}"), self._write() as conn:
            return a.insert_alert(conn, draft, actor=actor, now=self._clock())

    def active_alert(self, series: SeriesKey) -> Alert | None:
        """The OPEN or ACKNOWLEDGED alert of a series, if any. Raises StorageError."""
        with self._guard(f"reading the active alert of {series}"), self._engine.connect() as conn:
            return a.find_active(conn, series)

    def update_alert(
        self,
        alert_id: int,
        *,
        last_commit: str,
        last_run_id: int | None,
        change_pct: float,
        confidence: str,
        p_value: float | None,
        reason: str,
    ) -> None:
        """One more evaluated run shows an active alert's change: record it and count it
        (runs_seen + 1). Raises UsageError for an unknown or closed alert, ValueError for
        bad values, StorageError."""
        with self._guard(f"updating alert {alert_id}"), self._write() as conn:
            a.update_active(
                conn,
                alert_id,
                now=self._clock(),
                last_commit=last_commit,
                last_run_id=last_run_id,
                change_pct=change_pct,
                confidence=confidence,
                p_value=p_value,
                reason=reason,
            )

    def transition(
        self,
        alert_id: int,
        to_state: str,
        *,
        actor: str,
        reason: str,
        parent_alert_id: int | None = None,
    ) -> Alert:
        """Move an alert along its lifecycle and record who/when/why, in one transaction;
        returns the changed alert. Raises UsageError (and writes nothing) for an unknown
        alert or a move the lifecycle forbids, StorageError."""
        with self._guard(f"changing the state of alert {alert_id}"), self._write() as conn:
            return a.apply_transition(
                conn,
                alert_id,
                to_state.upper(),
                actor=actor,
                reason=reason,
                parent_alert_id=parent_alert_id,
                now=self._clock(),
            )

    def set_evidence_path(self, alert_id: int, path: str) -> None:
        """Link the evidence directory of an alert. Raises UsageError, StorageError."""
        with self._guard(f"linking evidence to alert {alert_id}"), self._write() as conn:
            a.set_evidence(conn, alert_id, path, now=self._clock())

    def list_alerts(
        self,
        *,
        state: str | Sequence[str] | None = None,
        suite: str | None = None,
        machine_id: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts newest first, filtered by state(s), suite and machine. Raises UsageError
        for bad filters, StorageError."""
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        states = a.parse_states(state)
        with self._guard("listing alerts"), self._engine.connect() as conn:
            return a.query_alerts(
                conn, states=states, suite=suite, machine_id=machine_id, limit=limit
            )

    def get_alert(self, alert_id: int) -> tuple[Alert, list[AlertEvent]]:
        """An alert and its events, oldest first. Raises UsageError for an unknown id,
        StorageError."""
        with self._guard(f"reading alert {alert_id}"), self._engine.connect() as conn:
            return a.read_alert(conn, alert_id)

    # -- helpers

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn SQLAlchemy errors into a StorageError naming the action and the database."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise StorageError(f"{action}: {self._describe(exc)}") from exc

    def _describe(self, exc: SQLAlchemyError) -> str:
        cause = getattr(exc, "orig", None) or exc
        text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        lowered = text.lower()
        if "locked" in lowered:
            waited = (
                f"waited {self._busy_timeout_ms / 1000:g} s"
                if self._busy_timeout_ms is not None
                else "busy timeout expired"
            )
            return f"database is locked by another process ({waited}): {self._url}"
        if "readonly" in lowered or "read-only" in lowered:
            return f"database is not writable: {self._where}"
        if "unable to open database file" in lowered:
            return (
                f"cannot open database file: {self._where} "
                "(does its directory exist, and may perfd write there?)"
            )
        if isinstance(exc, IntegrityError):
            return f"database refused the data ({text}): {self._url}"
        return f"database error ({text}): {self._url}"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with write_transaction(self._engine) as conn:
            yield conn

    def _lock_running(self, conn: Connection, run_id: int, verb: str) -> str:
        """Check that the run exists and is RUNNING (locking its row); returns its config
        hash."""
        runs = t.benchmark_runs
        row = conn.execute(
            select(runs.c.status, runs.c.config_hash).where(runs.c.id == run_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise UsageError(f"no run with id {run_id}")
        if row.status != RunStatus.RUNNING.value:
            raise StorageError(
                f"run {run_id} is {row.status}: only a RUNNING run can be {verb}"
            )
        return str(row.config_hash)

    def _environment_id(self, conn: Connection, environment: EnvFingerprint) -> int:
        envs = t.environments
        fingerprint = environment.fingerprint_hash
        find = select(envs.c.id).where(envs.c.fingerprint_hash == fingerprint)
        found = conn.execute(find).scalar_one_or_none()
        if found is not None:
            return int(found)
        try:
            with conn.begin_nested():
                result = conn.execute(
                    insert(envs).values(
                        fingerprint_hash=fingerprint,
                        data=json.dumps(environment.hashed_fields(), sort_keys=True),
                        first_seen_at=self._clock(),
                    )
                    .returning(envs.c.id)
                )
                return int(result.scalar_one())
        except IntegrityError:
            # Another writer (PostgreSQL) stored the same fingerprint in the meantime.
            return int(conn.execute(find).scalar_one())

    def _insert_processes(
        self, conn: Connection, run_id: int, processes: Sequence[ProcessResult]
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
        result = conn.execute(
            insert(procs).returning(procs.c.id, sort_by_parameter_order=True), rows
        )
        return [int(i) for i in result.scalars().all()]

    def _run_info_query(self) -> Select[Any]:
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

    @staticmethod
    def _statistics(conn: Connection, run_id: int) -> list[Summary]:
        stats = t.statistics
        query = (
            select(stats)
            .where(stats.c.run_id == run_id)
            .order_by(stats.c.benchmark, stats.c.metric)
        )
        rows = conn.execute(query).mappings()
        return [_summary(row) for row in rows]


def _run_status(status: str) -> RunStatus:
    try:
        return RunStatus(status.upper())
    except ValueError:
        choices = ", ".join(s.value for s in RunStatus)
        raise UsageError(f"status must be one of {choices}, got {status!r}") from None


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


def _measurement_batches(
    run_id: int,
    processes: Sequence[ProcessResult],
    process_ids: Sequence[int],
    stored_metrics: Mapping[str, set[str]],
) -> Iterator[list[tuple[Any, ...]]]:
    """Measurement rows, one list per process x metric, for the metrics the run has
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
                if values is None:
                    continue
                yield list(
                    zip(repeat(run_id), repeat(process_id), repeat(benchmark), repeat(metric),
                        count(), values)
                )
