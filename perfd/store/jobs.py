"""The daemon's job queue in SQL: enqueue, claim with a lease, heartbeat, finish, fail, cancel,
skip, and the reads of the queue.

A job is QUEUED until a worker of its machine claims it: RUNNING under a lease
(``lease_owner`` until ``lease_expires_at``) that the worker's heartbeat extends. It ends
DONE or FAILED, goes back to QUEUED when a failed attempt is retried, is CANCELLED by
someone (QUEUED or RUNNING) or SKIPPED by the burst policy (QUEUED). A RUNNING job whose
lease expired belongs to a worker that died: it is claimable again, until its attempts are
used up.

Claims are exclusive. On PostgreSQL the candidate row is locked with ``FOR UPDATE SKIP
LOCKED``, so concurrent claimers pass over each other's rows instead of waiting; on SQLite
the claim runs in one write transaction, which the store's engine begins with ``BEGIN
IMMEDIATE`` (``engine.py``): the database's write lock is held from the first read, so
claims follow one another. A partial unique index keeps at most one active job per suite x
commit x tier x kind x machine, so concurrent enqueues of the same job store one row.

Functions here take a ``Connection`` inside the caller's transaction and the caller's
``now``; ``ResultStore`` and ``Reader`` wrap them with their error handling and clock. An
unknown job or run is a ``NotFoundError``, a change the job's state does not allow a
``ConflictError``, a blank actor or reason or a bad filter a ``UsageError``; malformed
programmatic arguments (a lease that is not > 0, a naive datetime) are a ``ValueError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    and_,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from perfd.errors import ConflictError, NotFoundError, UsageError
from perfd.records import (
    JOB_ACTIVE_STATES,
    JOB_KINDS,
    JOB_PRIORITY,
    JOB_STATES,
    Job,
    JobDraft,
    QueueStats,
)
from perfd.store import tables as t

_JOB_COLUMNS = tuple(f.name for f in fields(Job) if f.name != "payload")

# What "lease cleared" writes: a job holds a lease only while it is RUNNING.
_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


# ----------------------------------------------------------------------------- writes


def insert_job(conn: Connection, draft: JobDraft, now: datetime) -> tuple[Job, bool]:
    """Enqueue ``draft`` unless the same job (suite, commit, tier, kind, machine) is QUEUED or
    RUNNING already: returns (the stored job, True) or (the active one, False). Raises
    UsageError for blank names, ValueError for a naive not_before or a payload that is not
    JSON."""
    for name in ("suite", "tier", "machine_id", "requested_by"):
        if not getattr(draft, name).strip():
            raise UsageError(f"a job needs a {name.replace('_', ' ')}")
    if draft.not_before is not None:
        _require_aware(draft.not_before, "JobDraft.not_before")
    try:
        payload = json.dumps(dict(draft.payload or {}), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"JobDraft.payload: must be JSON-serialisable ({exc})") from None
    existing = _find_active(conn, draft)
    if existing is not None:
        return existing, False
    values = {
        "suite": draft.suite,
        "commit_sha": draft.commit_sha,
        "branch": draft.branch,
        "tier": draft.tier,
        "kind": draft.kind,
        "machine_id": draft.machine_id,
        "state": "QUEUED",
        "priority": JOB_PRIORITY[draft.kind] if draft.priority is None else draft.priority,
        "attempts": 0,
        "max_attempts": draft.max_attempts,
        "not_before": draft.not_before,
        "note": "",
        "payload": payload,
        "requested_by": draft.requested_by,
        "created_at": now,
    }
    try:
        with conn.begin_nested():
            job_id = conn.execute(
                insert(t.jobs).values(**values).returning(t.jobs.c.id)
            ).scalar_one()
    except IntegrityError:
        # PostgreSQL: a concurrent enqueue of the same job committed first (uq_jobs_active).
        # SQLite cannot get here: its write lock serialises whole enqueues.
        existing = _find_active(conn, draft)
        if existing is None:
            raise
        return existing, False
    return read_job(conn, int(job_id)), True


def claim_job(
    conn: Connection, machine_id: str, owner: str, lease_s: float, now: datetime
) -> Job | None:
    """Claim the next job of ``machine_id`` for ``owner`` (one worker process) for
    ``lease_s`` seconds: the highest priority, then the oldest, of the QUEUED jobs that are
    due and the RUNNING ones whose lease expired. A job of a dead worker without attempts
    left becomes FAILED instead and the search goes on. None when nothing is claimable.
    Raises ValueError for a blank owner or a lease that is not > 0."""
    _require_owner(owner)
    lease = _lease(lease_s)
    j = t.jobs.c
    due = or_(j.not_before.is_(None), j.not_before <= now)
    claimable = or_(
        and_(j.state == "QUEUED", due),
        and_(j.state == "RUNNING", j.lease_expires_at <= now),
    )
    query = (
        select(t.jobs)
        .where(j.machine_id == machine_id, claimable)
        .order_by(j.priority.desc(), j.id)
        .limit(1)
        # PostgreSQL: lock the row, skipping rows other claimers hold. SQLite: nothing is
        # emitted; the write transaction (BEGIN IMMEDIATE) already excludes other claimers.
        .with_for_update(skip_locked=True)
    )
    while (row := conn.execute(query).mappings().one_or_none()) is not None:
        values: dict[str, Any]
        if row["state"] == "RUNNING":
            if row["attempts"] >= row["max_attempts"]:
                conn.execute(
                    update(t.jobs).where(j.id == row["id"]).values(
                        state="FAILED",
                        error=f"its worker stopped answering {row['attempts']} times "
                              "(lease expired)",
                        finished_at=now,
                        **_NO_LEASE,
                    )
                )
                continue
            expired_at = row["lease_expires_at"].isoformat()
            values = {"error": f"worker {row['lease_owner']} stopped answering "
                               f"(lease expired at {expired_at})"}
        else:
            values = {}
        conn.execute(
            update(t.jobs).where(j.id == row["id"]).values(
                state="RUNNING",
                lease_owner=owner,
                lease_expires_at=now + lease,
                heartbeat_at=now,
                attempts=row["attempts"] + 1,
                started_at=row["started_at"] or now,
                **values,
            )
        )
        return read_job(conn, row["id"])
    return None


def heartbeat(conn: Connection, job_id: int, owner: str, lease_s: float, now: datetime) -> bool:
    """Extend the lease of ``owner`` on a RUNNING job to now + ``lease_s``; False (nothing
    changed) when the job is not RUNNING under ``owner`` any more: cancelled, finished, or
    claimed by another worker after the lease expired. Raises ValueError for a lease that
    is not > 0."""
    lease = _lease(lease_s)
    j = t.jobs.c
    changed = conn.execute(
        update(t.jobs)
        .where(j.id == job_id, j.state == "RUNNING", j.lease_owner == owner)
        .values(lease_expires_at=now + lease, heartbeat_at=now)
    ).rowcount
    return bool(changed)


def finish_job(
    conn: Connection, job_id: int, owner: str, now: datetime, *, run_id: int | None, note: str
) -> Job:
    """Mark the job ``owner`` holds DONE, with the run it stored and a note. Raises
    NotFoundError for an unknown job or run, ConflictError when ``owner`` does not hold it
    (any more)."""
    _held(conn, job_id, owner, "finished")
    if run_id is not None and conn.execute(
        select(t.benchmark_runs.c.id).where(t.benchmark_runs.c.id == run_id)
    ).first() is None:
        raise NotFoundError(f"no run with id {run_id} (finishing job {job_id})")
    values: dict[str, Any] = {"state": "DONE", "finished_at": now, "run_id": run_id, **_NO_LEASE}
    if note:
        values["note"] = note
    conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(**values))
    return read_job(conn, job_id)


def fail_job(
    conn: Connection,
    job_id: int,
    owner: str,
    error: str,
    now: datetime,
    *,
    retry_in_s: float | None,
) -> Job:
    """Record a failed attempt of the job ``owner`` holds: QUEUED again, due in
    ``retry_in_s`` seconds, while attempts are left and ``retry_in_s`` is not None, else
    FAILED. Raises NotFoundError, ConflictError when ``owner`` does not hold it, ValueError
    for a blank error or a negative delay."""
    if not error.strip():
        raise ValueError(f"failing job {job_id} needs an error (what went wrong)")
    if retry_in_s is not None and not (math.isfinite(retry_in_s) and retry_in_s >= 0):
        raise ValueError(f"retry_in_s: must be >= 0 or None, got {retry_in_s!r}")
    row = _held(conn, job_id, owner, "failed")
    values: dict[str, Any] = {"error": error, **_NO_LEASE}
    if retry_in_s is not None and row["attempts"] < row["max_attempts"]:
        values.update(state="QUEUED", not_before=now + timedelta(seconds=retry_in_s))
    else:
        values.update(state="FAILED", finished_at=now)
    conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(**values))
    return read_job(conn, job_id)


def cancel_job(conn: Connection, job_id: int, actor: str, reason: str, now: datetime) -> Job:
    """Cancel a QUEUED or RUNNING job (its worker learns it from its next heartbeat), noting
    who and why. Raises UsageError for a blank actor or reason, NotFoundError,
    ConflictError for a job that has ended."""
    if not actor.strip():
        raise UsageError(f"cancelling job {job_id} needs an actor (who cancels it)")
    if not reason.strip():
        raise UsageError(f"cancelling job {job_id} needs a reason")
    row = _locked(conn, job_id)
    if row["state"] not in JOB_ACTIVE_STATES:
        raise ConflictError(
            f"job {job_id} is {row['state']} already: only QUEUED or RUNNING jobs can be "
            "cancelled"
        )
    conn.execute(
        update(t.jobs).where(t.jobs.c.id == job_id).values(
            state="CANCELLED", note=f"cancelled by {actor}: {reason}", finished_at=now,
            **_NO_LEASE,
        )
    )
    return read_job(conn, job_id)


def skip_queued(
    conn: Connection,
    suite: str,
    branch: str | None,
    tier: str,
    machine_id: str,
    now: datetime,
    *,
    keep_job_id: int,
    reason: str,
) -> list[int]:
    """The burst policy: every QUEUED "run" job of suite x branch x tier x machine but
    ``keep_job_id`` becomes SKIPPED with ``reason`` as its note; returns their ids, oldest
    first. Raises UsageError for a blank reason, NotFoundError for an unknown keep_job_id."""
    if not reason.strip():
        raise UsageError("skipping queued jobs needs a reason")
    read_job(conn, keep_job_id)
    j = t.jobs.c
    skipped = conn.execute(
        update(t.jobs)
        .where(
            j.suite == suite,
            j.branch.is_(None) if branch is None else j.branch == branch,
            j.tier == tier,
            j.machine_id == machine_id,
            j.kind == "run",
            j.state == "QUEUED",
            j.id != keep_job_id,
        )
        .values(state="SKIPPED", note=reason, finished_at=now)
        .returning(j.id)
    ).scalars().all()
    return sorted(skipped)


# ----------------------------------------------------------------------------- reads


def read_job(conn: Connection, job_id: int) -> Job:
    """One job by id. Raises NotFoundError."""
    row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"no job with id {job_id}")
    return _job(row)


def query_jobs(
    conn: Connection,
    *,
    states: Sequence[str] | None,
    machine_id: str | None,
    suite: str | None,
    limit: int,
    before_id: int | None,
) -> list[Job]:
    """Jobs newest first (by id), filtered by states, machine and suite; ``before_id`` gives
    the page after the one that ended with that id. Raises UsageError for an unknown state
    or a limit < 1."""
    if limit < 1:
        raise UsageError(f"limit must be >= 1, got {limit}")
    j = t.jobs.c
    query = select(t.jobs).order_by(j.id.desc()).limit(limit)
    if states is not None:
        query = query.where(j.state.in_(_states(states)))
    if machine_id is not None:
        query = query.where(j.machine_id == machine_id)
    if suite is not None:
        query = query.where(j.suite == suite)
    if before_id is not None:
        query = query.where(j.id < before_id)
    return [_job(row) for row in conn.execute(query).mappings()]


def queue_stats(conn: Connection, machine_id: str | None, now: datetime) -> QueueStats:
    """Counts by state, the age of the longest-waiting due QUEUED job, and RUNNING jobs
    with a live or an expired lease, of one machine or all."""
    j = t.jobs.c
    where: list[ColumnElement[bool]] = [] if machine_id is None else [j.machine_id == machine_id]
    by_state = dict.fromkeys(JOB_STATES, 0)
    for state, count in conn.execute(
        select(j.state, func.count()).where(*where).group_by(j.state)
    ):
        by_state[state] = count
    # A job deferred to later (not_before ahead) is not waiting yet.
    oldest = conn.execute(
        select(func.min(j.created_at)).where(
            *where, j.state == "QUEUED", or_(j.not_before.is_(None), j.not_before <= now)
        )
    ).scalar_one()
    expired = conn.execute(
        select(func.count()).where(*where, j.state == "RUNNING", j.lease_expires_at <= now)
    ).scalar_one()
    attempts, retries = dict.fromkeys(JOB_KINDS, 0), dict.fromkeys(JOB_KINDS, 0)
    retried = case((j.attempts > 1, j.attempts - 1), else_=0)
    for kind, made, again in conn.execute(
        select(j.kind, func.sum(j.attempts), func.sum(retried)).where(*where).group_by(j.kind)
    ):
        attempts[kind], retries[kind] = int(made or 0), int(again or 0)
    return QueueStats(
        by_state=by_state,
        oldest_queued_age_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        running=by_state["RUNNING"] - expired,
        expired_leases=expired,
        attempts_by_kind=attempts,
        retries_by_kind=retries,
    )


def last_job(
    conn: Connection,
    suite: str,
    tier: str,
    machine_id: str,
    *,
    kinds: Sequence[str],
    states: Sequence[str],
) -> Job | None:
    """The newest job (by created_at) of suite x tier x machine of one of ``kinds`` in one
    of ``states``; None if there is none. Raises UsageError for an unknown state."""
    j = t.jobs.c
    row = conn.execute(
        select(t.jobs)
        .where(
            j.suite == suite,
            j.tier == tier,
            j.machine_id == machine_id,
            j.kind.in_(list(kinds)),
            j.state.in_(_states(states)),
        )
        .order_by(j.created_at.desc(), j.id.desc())
        .limit(1)
    ).mappings().one_or_none()
    return None if row is None else _job(row)


# ----------------------------------------------------------------------------- helpers


def _find_active(conn: Connection, draft: JobDraft) -> Job | None:
    j = t.jobs.c
    row = conn.execute(
        select(t.jobs).where(
            j.suite == draft.suite,
            j.commit_sha == draft.commit_sha,
            j.tier == draft.tier,
            j.kind == draft.kind,
            j.machine_id == draft.machine_id,
            j.state.in_(JOB_ACTIVE_STATES),
        )
    ).mappings().one_or_none()
    return None if row is None else _job(row)


def _locked(conn: Connection, job_id: int) -> RowMapping:
    """The job's row, locked until the transaction ends (PostgreSQL; SQLite's write
    transaction holds the whole database). Raises NotFoundError."""
    row = conn.execute(
        select(t.jobs).where(t.jobs.c.id == job_id).with_for_update()
    ).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"no job with id {job_id}")
    return row


def _held(conn: Connection, job_id: int, owner: str, doing: str) -> RowMapping:
    """The row of a job RUNNING under ``owner``'s lease, locked. Raises NotFoundError, or
    ConflictError saying why ``owner`` may not change it."""
    row = _locked(conn, job_id)
    if row["state"] == "RUNNING" and row["lease_owner"] == owner:
        return row
    if row["state"] == "RUNNING":
        raise ConflictError(
            f"job {job_id} cannot be {doing} by {owner}: it is RUNNING under "
            f"{row['lease_owner']} (once a lease expires, another worker may claim the job)"
        )
    why = f" ({row['note']})" if row["note"] else ""
    raise ConflictError(
        f"job {job_id} cannot be {doing} by {owner}: it is {row['state']}, not RUNNING{why}"
    )


def _states(states: Sequence[str]) -> list[str]:
    if isinstance(states, str):
        states = (states,)
    wanted = [state.upper() for state in states]
    unknown = [state for state in wanted if state not in JOB_STATES]
    if unknown:
        raise UsageError(
            f"unknown job state {unknown[0]!r}: expected one of {', '.join(JOB_STATES)}"
        )
    return wanted


def _lease(lease_s: float) -> timedelta:
    if not (math.isfinite(lease_s) and lease_s > 0):
        raise ValueError(f"lease_s: must be > 0 seconds, got {lease_s!r}")
    return timedelta(seconds=lease_s)


def _require_owner(owner: str) -> None:
    if not owner.strip():
        raise ValueError("owner: must name the worker that claims the job")


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: must be timezone-aware (UTC), got naive {value!r}")


def _job(row: RowMapping) -> Job:
    return Job(**{name: row[name] for name in _JOB_COLUMNS}, payload=json.loads(row["payload"]))
