"""ResultStore: the one object the rest of perfd reads and writes benchmark results through.

A thin facade: it owns the engine, the clock and the error mapping, opens one transaction
per write and hands the work to the module of its concern (``runs.py``, ``series.py``,
``alerts.py``, ``references.py``, ``jobs.py``). Reads that must agree with each other go
through one snapshot: ``with store.reading() as r:`` (see ``reader.py``); each read method
here is one such block of its own.

Database errors leave the store as ``StorageError`` with the cause and the URL (password
masked); an id that does not exist is a ``NotFoundError``, a change the stored state does
not allow a ``ConflictError`` (both ``UsageError``). Timestamps are timezone-aware UTC in
and out.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from perfd.model import EnvFingerprint, ProcessResult, RunResult, RunStart, Summary
from perfd.records import (
    BudgetRecord,
    Job,
    JobDraft,
    LinkMeasure,
    LinkRecord,
    QueueStats,
    RatioRecord,
    ReferenceRecord,
)
from perfd.store import alerts as a
from perfd.store import budgets, gates, jobs, references, runs
from perfd.store.alerts import Alert, AlertDraft, AlertEvent
from perfd.store.engine import (
    DEFAULT_BUSY_TIMEOUT_MS,
    DatabaseErrors,
    make_engine,
    mask_url,
    read_snapshot,
    write_transaction,
)
from perfd.store.gates import GateDraft, GateRecord
from perfd.store.migrations import current_version, require_current, upgrade
from perfd.store.reader import Reader
from perfd.store.runs import ProcessInfo, RunDetail, RunInfo
from perfd.store.series import SeriesKey, SeriesPoint

# Re-exported: perfd.store.store was the home of these before the store was split.
__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "ProcessInfo",
    "Reader",
    "ResultStore",
    "RunDetail",
    "RunInfo",
    "make_engine",
    "mask_url",
]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ResultStore:
    """Benchmark runs and alerts in SQL (SQLite by default, PostgreSQL by URL)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._engine = engine
        self._clock = clock
        self._errors = DatabaseErrors.for_engine(engine)

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
                with store._errors.guard("opening the database"):
                    require_current(engine, auto_upgrade=auto_upgrade)
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
        with self._errors.guard("reading the schema version"):
            return current_version(self._engine)

    def upgrade(self) -> tuple[int, int]:
        """Apply missing migrations; returns (from, to), from = 0 for an empty database."""
        with self._errors.guard("upgrading the database schema"):
            return upgrade(self._engine)

    # -- one snapshot for several reads

    def reading(self) -> Reader:
        """A Reader whose reads all see one snapshot; use as ``with store.reading() as r:``.
        Raises StorageError (from its reads)."""
        return Reader(self._engine, self._errors, clock=self._clock)

    # -- writing runs

    def begin_run(self, start: RunStart, *, hostname: str | None = None) -> int:
        """Insert a RUNNING row for ``start`` and commit it; returns the run id.

        ``hostname`` (default: this machine's) is what ``recover_interrupted`` matches on.
        """
        host = hostname if hostname is not None else socket.gethostname()
        with self._write("recording the start of a run") as conn:
            return runs.insert_run(conn, start, hostname=host)

    def complete_run(
        self, run_id: int, result: RunResult, output_dir: str | None = None, *,
        contended: str | None = None,
    ) -> None:
        """Store a finished run in one transaction (environment, processes, process
        summaries, measurements, statistics, status COMPLETED, or CONTENDED with that reason:
        kept for diagnosis, never history); on any error nothing is stored and the run stays
        RUNNING. Raises NotFoundError, StorageError."""
        with self._write(f"storing run {run_id}") as conn:
            runs.complete_run(conn, run_id, result, output_dir=output_dir, now=self._clock(),
                              contended=contended)

    def fail_run(
        self,
        run_id: int,
        error: str,
        processes: Sequence[ProcessResult] = (),
        environment: EnvFingerprint | None = None,
    ) -> None:
        """Mark a RUNNING run FAILED with ``error`` (cause + stderr tail), keeping the given
        process rows (with their summaries) and environment for diagnosis; never
        measurements or statistics. Raises NotFoundError, ConflictError, StorageError."""
        with self._write(f"recording the failure of run {run_id}") as conn:
            runs.fail_run(conn, run_id, error, processes, environment, now=self._clock())

    def save_budget_results(self, run_id: int, results: Sequence[BudgetRecord]) -> None:
        """Store the run's budget verdicts in one transaction, replacing earlier ones.
        Raises NotFoundError, StorageError."""
        with self._write(f"storing the budget results of run {run_id}") as conn:
            budgets.replace_budget_results(conn, run_id, results, now=self._clock())

    def budget_results(self, run_id: int) -> list[BudgetRecord]:
        """The run's stored budget verdicts. Raises StorageError."""
        with self.reading() as r:
            return r.budget_results(run_id)

    def recover_interrupted(self, hostname: str, is_alive: Callable[[int], bool]) -> list[int]:
        """Mark FAILED the RUNNING runs of ``hostname`` whose perfd pid is not alive;
        returns their ids (oldest first). Raises StorageError."""
        action = "recovering interrupted runs"
        with self._errors.guard(action), read_snapshot(self._engine) as conn:
            candidates = runs.find_running(conn, hostname)
        # Checking pids happens outside any transaction: it holds no lock while it waits.
        dead = [(run_id, pid) for run_id, pid in candidates if not is_alive(pid)]
        if not dead:
            return []
        with self._write(action) as conn:
            return runs.fail_interrupted(conn, dead, now=self._clock())

    # -- reading runs

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
        with self.reading() as r:
            return r.list_runs(suite=suite, commit=commit, status=status, limit=limit,
                               before_id=before_id)

    def get_run(self, run_id: int) -> RunDetail:
        """Everything stored about a run but its samples. Raises NotFoundError, StorageError."""
        with self.reading() as r:
            return r.get_run(run_id)

    def statistics(self, run_id: int) -> list[Summary]:
        """Summaries of a run ordered by benchmark and metric (empty for an unknown run)."""
        with self.reading() as r:
            return r.statistics(run_id)

    def measurements(
        self, run_id: int, benchmark: str, metric: str
    ) -> list[tuple[int, int, float]]:
        """Iteration samples of one benchmark x metric: (repetition, sample_index, value),
        ordered by repetition then sample. Raises StorageError."""
        action = f"reading measurements of run {run_id}"
        with self._errors.guard(action), read_snapshot(self._engine) as conn:
            return runs.read_measurements(conn, run_id, benchmark, metric)

    def process_values(self, run_id: int, benchmark: str, metric: str) -> list[float]:
        """Process-level values of one benchmark x metric (the median of each process's
        samples), ordered by repetition: the unit of statistical analysis."""
        with self.reading() as r:
            return r.process_values(run_id, benchmark, metric)

    def runs_for_commit(
        self, suite: str, commit_sha: str, machine_id: str, *, status: str | None = "COMPLETED"
    ) -> list[RunInfo]:
        """Runs of a suite at one commit (full sha) on one machine, newest first; ``status``
        None means any. Raises UsageError for an unknown status, StorageError."""
        with self.reading() as r:
            return r.runs_for_commit(suite, commit_sha, machine_id, status=status)

    def environment_hash(self, run_id: int) -> str | None:
        """Environment fingerprint hash of a run, None while it has none recorded. Raises
        NotFoundError, StorageError."""
        with self.reading() as r:
            return r.environment_hash(run_id)

    # -- reference builds and ratios

    def set_reference(
        self,
        suite: str,
        branch: str,
        rev: str,
        commit_sha: str,
        *,
        set_by: str,
        reason: str,
        links: Sequence[LinkMeasure] = (),
        previous_reference_id: int | None = None,
    ) -> ReferenceRecord:
        """Make ``commit_sha`` (typed as ``rev``) the reference build of suite x branch,
        keeping earlier settings as history, with ``links`` (how it measured against the
        current reference ``previous_reference_id``) in the same transaction; returns the
        stored setting. Raises ValueError for a malformed sha, UsageError for a blank set_by
        or reason or links without previous_reference_id, ConflictError (nothing stored)
        when the reference moved meanwhile or a link is given twice, NotFoundError for an
        unknown run of a link, StorageError."""
        with self._write(f"setting the reference of {suite} on {branch}") as conn:
            reference_id = references.insert_reference(
                conn, suite, branch, rev, commit_sha, set_by, reason, self._clock(),
                links=links, previous_reference_id=previous_reference_id,
            )
            return references.read_reference(conn, reference_id)

    def current_reference(self, suite: str, branch: str) -> ReferenceRecord | None:
        """The reference build of suite x branch (its newest setting), None if never set.
        Raises StorageError."""
        with self.reading() as r:
            return r.current_reference(suite, branch)

    def list_references(self, suite: str | None = None) -> list[ReferenceRecord]:
        """Every reference setting (of one suite, or all) with who/when/why, newest first.
        Raises StorageError."""
        with self.reading() as r:
            return r.list_references(suite)

    def list_links(self, suite: str | None = None) -> list[LinkRecord]:
        """Every link between successive references (of one suite, or all), ordered by the
        newer reference, benchmark and metric. Raises StorageError."""
        with self.reading() as r:
            return r.list_links(suite)

    def save_ratios(self, records: Sequence[RatioRecord]) -> None:
        """Store current/reference ratios in one transaction. Raises NotFoundError for an
        unknown run or reference, ConflictError for a ratio already stored, StorageError."""
        with self._write("storing ratios") as conn:
            references.insert_ratios(conn, records)

    # -- gate verdicts

    def save_gate_verdict(self, draft: GateDraft) -> GateRecord:
        """Record one `perfd gate` decision (with its override, if any); returns it as
        stored. Raises StorageError."""
        with self._write(f"recording the gate verdict of {draft.suite}") as conn:
            return gates.insert_gate_verdict(conn, draft, self._clock())

    def gate_verdict(self, verdict_id: int) -> GateRecord:
        """One stored gate decision. Raises NotFoundError, StorageError."""
        action = f"reading gate verdict {verdict_id}"
        with self._errors.guard(action), read_snapshot(self._engine) as conn:
            return gates.read_gate_verdict(conn, verdict_id)

    def gate_verdicts(
        self,
        *,
        suite: str | None = None,
        current_commit: str | None = None,
        machine_id: str | None = None,
        limit: int = 50,
    ) -> list[GateRecord]:
        """Gate decisions newest first, filtered by suite, current commit (full id) and
        machine. Raises UsageError for a limit below 1, StorageError."""
        with self._errors.guard("reading gate verdicts"), read_snapshot(self._engine) as conn:
            return gates.query_gate_verdicts(conn, suite=suite, current_commit=current_commit,
                                             machine_id=machine_id, limit=limit)

    # -- history of series

    def series_keys(
        self, *, suite: str | None = None, machine_id: str | None = None
    ) -> list[SeriesKey]:
        """Distinct series (suite, benchmark, metric, machine, benchmark config hash) with
        completed runs, ordered by those fields. Raises StorageError."""
        with self.reading() as r:
            return r.series_keys(suite=suite, machine_id=machine_id)

    def series_points(
        self, key: SeriesKey, *, tier: str | None = None, exclude_tiers: Sequence[str] = ()
    ) -> list[SeriesPoint]:
        """Completed runs of one series ordered by start time, optionally only one tier or
        without some tiers. Raises ValueError for a key without benchmark, StorageError."""
        with self.reading() as r:
            return r.series_points(key, tier=tier, exclude_tiers=exclude_tiers)

    # -- alerts

    def open_alert(self, draft: AlertDraft, *, actor: str = "perfd") -> int:
        """Store a new OPEN alert (runs_seen 1) with its creation event; returns its id.
        Raises ConflictError when the series already has an active alert (see
        ``active_alert``), NotFoundError for an unknown run id, StorageError."""
        with self._write(f"opening an alert for {draft.series}") as conn:
            return a.insert_alert(conn, draft, actor=actor, now=self._clock())

    def active_alert(self, series: SeriesKey) -> Alert | None:
        """The OPEN or ACKNOWLEDGED alert of a series, if any. Raises StorageError."""
        with self.reading() as r:
            return r.active_alert(series)

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
        (runs_seen + 1). Raises NotFoundError for an unknown alert or run, ConflictError for
        a closed alert, ValueError for bad values, StorageError."""
        with self._write(f"updating alert {alert_id}") as conn:
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
        returns the changed alert. Raises (writing nothing) NotFoundError, ConflictError for
        a move the lifecycle forbids, UsageError for bad arguments; StorageError."""
        with self._write(f"changing the state of alert {alert_id}") as conn:
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
        """Link the evidence directory of an alert. Raises NotFoundError, UsageError,
        StorageError."""
        with self._write(f"linking evidence to alert {alert_id}") as conn:
            a.set_evidence(conn, alert_id, path, now=self._clock())

    def annotate_alert(
        self, alert_id: int, *, actor: str, note: str, reason: str | None = None
    ) -> Alert:
        """Record ``note`` in an alert's history without changing its state (any state), and
        replace its reason when ``reason`` is given; returns the alert. Raises NotFoundError,
        UsageError for a blank actor, note or reason, StorageError."""
        with self._write(f"adding a note to alert {alert_id}") as conn:
            return a.annotate(conn, alert_id, actor=actor, note=note, reason=reason,
                              now=self._clock())

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
        with self.reading() as r:
            return r.list_alerts(state=state, suite=suite, machine_id=machine_id, limit=limit)

    def get_alert(self, alert_id: int) -> tuple[Alert, list[AlertEvent]]:
        """An alert and its events, oldest first. Raises NotFoundError, StorageError."""
        with self.reading() as r:
            return r.get_alert(alert_id)

    # -- the job queue

    def enqueue(self, draft: JobDraft) -> tuple[Job, bool]:
        """Queue ``draft`` (priority JOB_PRIORITY[kind] unless given); idempotent: when the
        same suite x commit x tier x kind x machine is QUEUED or RUNNING already, returns
        (that job, False), else (the new job, True). Raises UsageError for blank names,
        ValueError for a naive not_before or a payload that is not JSON, StorageError."""
        with self._write(f"queueing a {draft.kind} job of {draft.suite}") as conn:
            return jobs.insert_job(conn, draft, self._clock())

    def claim_job(self, machine_id: str, owner: str, lease_s: float) -> Job | None:
        """Claim the next job of ``machine_id`` for the worker ``owner`` (unique per worker
        process) for ``lease_s`` seconds: highest priority, then oldest, among due QUEUED jobs
        and RUNNING ones whose lease expired; a dead worker's job without attempts left is
        FAILED instead. None when nothing is claimable; two claimers never get the same job.
        Raises ValueError for a blank owner or a lease not > 0, StorageError."""
        with self._write(f"claiming a job on {machine_id}") as conn:
            return jobs.claim_job(conn, machine_id, owner, lease_s, self._clock())

    def heartbeat_job(self, job_id: int, owner: str, lease_s: float) -> bool:
        """Extend ``owner``'s lease on a RUNNING job to now + ``lease_s``; False (nothing
        changed) when ``owner`` no longer holds it: the worker should stop the job. Raises
        ValueError for a lease not > 0, StorageError."""
        with self._write(f"extending the lease of job {job_id}") as conn:
            return jobs.heartbeat(conn, job_id, owner, lease_s, self._clock())

    def finish_job(
        self, job_id: int, owner: str, *, run_id: int | None = None, note: str = ""
    ) -> Job:
        """Mark the job ``owner`` holds DONE, with the run it stored; returns it. Raises
        NotFoundError for an unknown job or run, ConflictError when ``owner`` does not hold
        it (any more), StorageError."""
        with self._write(f"finishing job {job_id}") as conn:
            return jobs.finish_job(conn, job_id, owner, self._clock(), run_id=run_id, note=note)

    def fail_job(
        self, job_id: int, owner: str, error: str, *, retry_in_s: float | None = 0.0
    ) -> Job:
        """Record a failed attempt of the job ``owner`` holds: QUEUED again in ``retry_in_s``
        seconds while attempts are left (None: never retry), else FAILED; returns it. Raises
        NotFoundError, ConflictError when ``owner`` does not hold it, ValueError for a blank
        error or a negative delay, StorageError."""
        with self._write(f"recording the failure of job {job_id}") as conn:
            return jobs.fail_job(conn, job_id, owner, error, self._clock(), retry_in_s=retry_in_s)

    def cancel_job(self, job_id: int, actor: str, reason: str) -> Job:
        """Cancel a QUEUED or RUNNING job, noting who and why (a running worker learns it from
        its next heartbeat); returns it. Raises UsageError for a blank actor or reason,
        NotFoundError, ConflictError for a job that has ended, StorageError."""
        with self._write(f"cancelling job {job_id}") as conn:
            return jobs.cancel_job(conn, job_id, actor, reason, self._clock())

    def skip_queued(
        self,
        suite: str,
        branch: str | None,
        tier: str,
        machine_id: str,
        *,
        keep_job_id: int,
        reason: str,
    ) -> list[int]:
        """The burst policy: every other QUEUED "run" job of suite x branch x tier x machine
        becomes SKIPPED with ``reason``; returns their ids, oldest first. Raises UsageError
        for a blank reason, NotFoundError for an unknown keep_job_id, StorageError."""
        with self._write(f"skipping queued jobs of {suite} on {machine_id}") as conn:
            return jobs.skip_queued(conn, suite, branch, tier, machine_id, self._clock(),
                                    keep_job_id=keep_job_id, reason=reason)

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
        with self.reading() as r:
            return r.list_jobs(states=states, machine_id=machine_id, suite=suite, limit=limit,
                               before_id=before_id)

    def get_job(self, job_id: int) -> Job:
        """One job. Raises NotFoundError, StorageError."""
        with self.reading() as r:
            return r.get_job(job_id)

    def queue_stats(self, machine_id: str | None = None) -> QueueStats:
        """The queue of one machine (None: all) now. Raises StorageError."""
        with self.reading() as r:
            return r.queue_stats(machine_id)

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
        with self.reading() as r:
            return r.last_job(suite, tier, machine_id, kinds=kinds, states=states)

    # -- helpers

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        """A write transaction whose database errors become StorageError("<action>: ...")."""
        with self._errors.guard(action), write_transaction(self._engine) as conn:
            yield conn
