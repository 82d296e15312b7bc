"""Reader: every read of one flow or request through one connection and one snapshot.

``with store.reading() as r:`` gives a ``Reader``. Its first query opens a read-only
transaction (SQLite WAL: deferred BEGIN; PostgreSQL: REPEATABLE READ), and every later
query of the block sees the database exactly as that first one did, however many runs or
alert changes other processes commit meanwhile. The block's end releases the connection.
A Reader belongs to one thread and is only valid inside its block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine

from perfd.model import Summary
from perfd.records import (
    BudgetRecord,
    Job,
    LinkRecord,
    QueueStats,
    RatioRecord,
    ReferenceRecord,
)
from perfd.store import alerts as a
from perfd.store import budgets, jobs, references, runs
from perfd.store.alerts import Alert, AlertEvent
from perfd.store.engine import DatabaseErrors, read_snapshot
from perfd.store.metrics import (
    ActiveAlertRow,
    LatestBudget,
    LatestValue,
    RunTally,
    query_active_alert_rows,
    query_latest_budgets,
    query_latest_values,
    query_run_tallies,
    query_values_version,
)
from perfd.store.runs import RunDetail, RunInfo
from perfd.store.series import SeriesKey, SeriesPoint, query_series_keys, query_series_points


class Reader:
    """Read methods bound to one connection inside one read transaction (one snapshot)."""

    def __init__(
        self,
        engine: Engine,
        errors: DatabaseErrors,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._errors = errors
        self._clock = clock  # what "now" is for lease expiry and queue ages
        self._stack = ExitStack()
        self._conn: Connection | None = None
        self._closed = False

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the read transaction and release the connection; later reads raise
        RuntimeError. Raises StorageError."""
        self._closed = True
        with self._errors.guard("ending a read"):
            self._stack.close()

    # -- runs

    def list_runs(
        self,
        *,
        suite: str | None = None,
        commit: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[RunInfo]:
        """Runs newest first, filtered by suite, commit (full sha or a prefix of at least 4
        hex digits) and status. Raises UsageError for bad filters, StorageError."""
        with self._query("listing runs") as conn:
            return runs.query_runs(conn, suite=suite, commit=commit, status=status, limit=limit,
                                   before_id=before_id)

    def get_run(self, run_id: int) -> RunDetail:
        """Everything stored about a run but its samples. Raises NotFoundError, StorageError."""
        with self._query(f"reading run {run_id}") as conn:
            return runs.read_run(conn, run_id)

    def statistics(self, run_id: int) -> list[Summary]:
        """Summaries of a run ordered by benchmark and metric (empty for an unknown run).
        Raises StorageError."""
        with self._query(f"reading statistics of run {run_id}") as conn:
            return runs.read_statistics(conn, run_id)

    def process_values(self, run_id: int, benchmark: str, metric: str) -> list[float]:
        """Process-level values of one benchmark x metric (the median of each process's
        samples), ordered by repetition; [] if none. Raises StorageError."""
        with self._query(f"reading process values of run {run_id}") as conn:
            return runs.read_process_values(conn, [run_id], benchmark, metric)[run_id]

    def process_values_for_runs(
        self, run_ids: Iterable[int], benchmark: str, metric: str
    ) -> dict[int, list[float]]:
        """process_values of several runs in one query: run id -> values, every asked id a
        key ([] where it has none). Raises StorageError."""
        with self._query("reading process values") as conn:
            return runs.read_process_values(conn, run_ids, benchmark, metric)

    def runs_for_commit(
        self, suite: str, commit_sha: str, machine_id: str, *, status: str | None = "COMPLETED"
    ) -> list[RunInfo]:
        """Runs of a suite at one commit (full sha) on one machine, newest first; ``status``
        None means any. Raises UsageError for an unknown status, StorageError."""
        with self._query(f"listing runs of commit {commit_sha}") as conn:
            return runs.query_runs_for_commit(conn, suite, commit_sha, machine_id, status=status)

    def environment_hash(self, run_id: int) -> str | None:
        """Environment fingerprint hash of a run, None while it has none recorded. Raises
        NotFoundError, StorageError."""
        with self._query(f"reading the environment of run {run_id}") as conn:
            return runs.read_environment_hash(conn, run_id)

    def budget_results(self, run_id: int) -> list[BudgetRecord]:
        """The run's stored budget verdicts (empty before they were evaluated). Raises
        StorageError."""
        with self._query(f"reading the budget results of run {run_id}") as conn:
            return budgets.query_budget_results(conn, run_id)

    # -- reference builds and ratios

    def current_reference(self, suite: str, branch: str) -> ReferenceRecord | None:
        """The reference build of suite x branch (its newest setting), None if never set.
        Raises StorageError."""
        with self._query(f"reading the reference of {suite} on {branch}") as conn:
            return references.current_reference(conn, suite, branch)

    def list_references(self, suite: str | None = None) -> list[ReferenceRecord]:
        """Every reference setting (of one suite, or all) with who/when/why, newest first.
        Raises StorageError."""
        with self._query("listing references") as conn:
            return references.list_references(conn, suite)

    def list_links(self, suite: str | None = None) -> list[LinkRecord]:
        """Every link between successive references (of one suite, or all), ordered by the
        newer reference, benchmark and metric. Raises StorageError."""
        with self._query("listing reference links") as conn:
            return references.list_links(conn, suite)

    def ratios_for_runs(
        self, run_ids: Sequence[int], benchmark: str, metric: str
    ) -> dict[int, RatioRecord]:
        """Current/reference ratios of one benchmark x metric for several runs in one query:
        run id -> ratio, only runs that have one. Raises StorageError."""
        with self._query(f"reading ratios of {benchmark}/{metric}") as conn:
            return references.query_ratios(conn, run_ids, benchmark, metric)

    # -- history of series

    def series_keys(
        self, *, suite: str | None = None, machine_id: str | None = None
    ) -> list[SeriesKey]:
        """Distinct series (suite, benchmark, metric, machine, benchmark config hash) with
        completed runs, ordered by those fields. Raises StorageError."""
        with self._query("listing series") as conn:
            return query_series_keys(conn, suite=suite, machine_id=machine_id)

    def series_points(
        self, key: SeriesKey, *, tier: str | None = None, exclude_tiers: Sequence[str] = ()
    ) -> list[SeriesPoint]:
        """Completed runs of one series ordered by start time, optionally only one tier or
        without some tiers. Raises ValueError for a key without benchmark, StorageError."""
        with self._query(f"reading series {key}") as conn:
            return query_series_points(conn, key, tier=tier, exclude_tiers=exclude_tiers)

    # -- alerts

    def active_alert(self, series: SeriesKey) -> Alert | None:
        """The OPEN or ACKNOWLEDGED alert of a series, if any. Raises StorageError."""
        with self._query(f"reading the active alert of {series}") as conn:
            return a.find_active(conn, series)

    def active_alerts(
        self, suite: str | None = None, machine_id: str | None = None
    ) -> dict[SeriesKey, Alert]:
        """The OPEN or ACKNOWLEDGED alert of every series that has one, optionally of one
        suite and machine, in one query. Raises StorageError."""
        with self._query("reading active alerts") as conn:
            return a.query_active(conn, suite=suite, machine_id=machine_id)

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
        with self._query("listing alerts") as conn:
            return a.query_alerts(
                conn, state=state, suite=suite, machine_id=machine_id, limit=limit
            )

    def get_alert(self, alert_id: int) -> tuple[Alert, list[AlertEvent]]:
        """An alert and its events, oldest first. Raises NotFoundError, StorageError."""
        with self._query(f"reading alert {alert_id}") as conn:
            return a.read_alert(conn, alert_id)

    # -- what the daemon's /metrics shows (one query each, whatever the number of series)

    def latest_values(self, machine_id: str) -> list[LatestValue]:
        """Statistics and reference ratio of every suite x benchmark x metric of the machine
        in its latest completed history run, ordered by suite, benchmark and metric. Raises
        StorageError."""
        with self._query("reading the latest values") as conn:
            return query_latest_values(conn, machine_id)

    def values_version(self, machine_id: str) -> tuple[Any, ...]:
        """Changes whenever latest_values' answer may (see query_values_version). Raises
        StorageError."""
        with self._query("reading the version of the latest values") as conn:
            return query_values_version(conn, machine_id)

    def latest_budgets(self, machine_id: str) -> list[LatestBudget]:
        """Budget verdicts of every suite x benchmark x metric of the machine from the
        latest completed history run that has some. Raises StorageError."""
        with self._query("reading the latest budget verdicts") as conn:
            return query_latest_budgets(conn, machine_id)

    def active_alert_rows(self, machine_id: str) -> list[ActiveAlertRow]:
        """The OPEN and ACKNOWLEDGED alerts of the machine, for /metrics. Raises
        StorageError."""
        with self._query("reading active alerts") as conn:
            return query_active_alert_rows(conn, machine_id)

    def run_tallies(self, machine_id: str, bounds_s: Sequence[float]) -> list[RunTally]:
        """Runs of the machine counted by suite, tier and status, with cumulative counts of
        durations <= each of ``bounds_s``. Raises StorageError."""
        with self._query("counting runs") as conn:
            return query_run_tallies(conn, machine_id, bounds_s)

    # -- the job queue

    def list_jobs(
        self,
        *,
        states: Sequence[str] | None = None,
        machine_id: str | None = None,
        suite: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Jobs newest first, filtered by states, machine and suite; ``before_id`` (the last
        id of a page) gives the next page. Raises UsageError for bad filters, StorageError."""
        with self._query("listing jobs") as conn:
            return jobs.query_jobs(conn, states=states, machine_id=machine_id, suite=suite,
                                   limit=limit, before_id=before_id)

    def get_job(self, job_id: int) -> Job:
        """One job. Raises NotFoundError, StorageError."""
        with self._query(f"reading job {job_id}") as conn:
            return jobs.read_job(conn, job_id)

    def queue_stats(self, machine_id: str | None = None) -> QueueStats:
        """The queue of one machine (None: all) as of the clock's now: counts by state, the
        age of the longest-waiting due QUEUED job, live and expired leases. Raises
        StorageError."""
        with self._query("reading the job queue") as conn:
            return jobs.queue_stats(conn, machine_id, self._clock())

    def last_job(
        self,
        suite: str,
        tier: str,
        machine_id: str,
        *,
        kinds: Sequence[str] = ("run",),
        states: Sequence[str] = ("DONE",),
    ) -> Job | None:
        """The newest job (by creation) of suite x tier x machine of one of ``kinds`` in one
        of ``states``, None if none. Raises UsageError for an unknown state, StorageError."""
        with self._query(f"reading the last {tier} job of {suite} on {machine_id}") as conn:
            return jobs.last_job(conn, suite, tier, machine_id, kinds=kinds, states=states)

    # -- helpers

    @contextmanager
    def _query(self, action: str) -> Iterator[Connection]:
        """The snapshot's connection, opened by the first query so that a connection error
        names the read that needed it; database errors become StorageError("<action>: ...")."""
        if self._closed:
            raise RuntimeError("a Reader is only valid inside its `with store.reading()` block")
        with self._errors.guard(action):
            if self._conn is None:
                self._conn = self._stack.enter_context(read_snapshot(self._engine))
            yield self._conn
