"""ResultStore's job queue (schema 8): enqueue, claims under a lease, heartbeats, finishing,
failing, cancelling, the burst policy, and the reads of the queue, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from perfd.errors import ConflictError, NotFoundError, UsageError
from perfd.store import (
    JOB_KINDS,
    JOB_STATES,
    SCHEMA_VERSION,
    Job,
    JobDraft,
    QueueStats,
    ResultStore,
    make_engine,
    upgrade,
)
from perfd.store import tables as t
from tests.unit import test_store
from tests.unit.conftest import CLOCK_START, FakeClock
from tests.unit.test_store import SHA_A, SHA_B, make_start
from tests.unit.test_store_migrations import old_database
from tests.unit.test_store_schema import describe_schema

# The databases test_store.py runs against (SQLite and PostgreSQL); ``clock`` and ``store``
# (on that clock) come from conftest.py.
store_url = test_store.store_url

T0 = CLOCK_START
LEASE_S = 90.0  # a claim at T0 expires between T0 + 1 and T0 + 2 minutes


def sha(n: int) -> str:
    return f"{n:040x}"


def draft(**overrides: Any) -> JobDraft:
    values: dict[str, Any] = {"suite": "core", "commit_sha": SHA_A, "tier": "commit",
                              "kind": "run", "machine_id": "m1", "branch": "main"}
    return JobDraft(**{**values, **overrides})


def enqueue(store: ResultStore, **overrides: Any) -> Job:
    job, created = store.enqueue(draft(**overrides))
    assert created
    return job


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# ----------------------------------------------------------------------------- enqueue


def test_enqueue_stores_a_queued_job_at_its_kinds_priority(store: ResultStore) -> None:
    job, created = store.enqueue(draft(payload={"b": [1, 2], "a": "x"}, requested_by="poll"))
    assert created
    assert job == Job(
        id=job.id, suite="core", commit_sha=SHA_A, branch="main", tier="commit", kind="run",
        machine_id="m1", state="QUEUED", priority=0, attempts=0, max_attempts=3,
        lease_owner=None, lease_expires_at=None, not_before=None, error=None, note="",
        run_id=None, payload={"a": "x", "b": [1, 2]}, requested_by="poll", created_at=T0,
        started_at=None, finished_at=None, heartbeat_at=None,
    )
    assert store.get_job(job.id) == job
    assert enqueue(store, kind="confirm").priority == 20
    assert enqueue(store, kind="evidence", priority=99, branch=None).priority == 99


def test_enqueue_is_idempotent_while_the_job_is_queued_or_running(store: ResultStore) -> None:
    first = enqueue(store)
    assert store.enqueue(draft(requested_by="webhook")) == (first, False)
    claimed = store.claim_job("m1", "w1", LEASE_S)
    assert claimed is not None and claimed.id == first.id
    assert store.enqueue(draft()) == (claimed, False)
    # Another tier, kind or machine is another job.
    others = [enqueue(store, tier="nightly"), enqueue(store, kind="confirm"),
              enqueue(store, machine_id="m2"), enqueue(store, commit_sha=SHA_B)]
    assert len({job.id for job in others} | {first.id}) == 5
    # Once it has ended, the same job can be queued again.
    store.finish_job(first.id, "w1")
    again, created = store.enqueue(draft())
    assert created and again.id not in {first.id, *(job.id for job in others)}


def test_the_database_refuses_a_second_active_job_with_the_same_key(store: ResultStore) -> None:
    job = enqueue(store)
    row = {"suite": "core", "commit_sha": SHA_A, "tier": "commit", "kind": "run",
           "machine_id": "m1", "priority": 0, "attempts": 0, "max_attempts": 1, "note": "",
           "payload": "{}", "requested_by": "t", "created_at": T0}
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert(t.jobs).values(state="QUEUED", **row))
    with store.engine.begin() as conn:  # ended jobs do not count
        conn.execute(insert(t.jobs).values(state="SKIPPED", **row))
    assert [j.id for j in store.list_jobs(states=["QUEUED"])] == [job.id]


def test_concurrent_enqueues_of_one_job_store_one_row(store_url: str) -> None:
    stores = [ResultStore.open(store_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[tuple[Job, bool]] = []
    errors: list[BaseException] = []

    def enqueue_many(store: ResultStore) -> None:
        try:
            barrier.wait()
            for n in range(10):
                results.append(store.enqueue(draft(commit_sha=sha(n))))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=enqueue_many, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(created for _, created in results) == 10
    assert len({job.id for job, _ in results}) == 10
    for store in stores:
        store.close()


def test_a_draft_is_checked_before_anything_is_stored(store: ResultStore) -> None:
    with pytest.raises(ValueError, match="JobDraft.commit_sha"):
        draft(commit_sha="HEAD")
    with pytest.raises(ValueError, match="JobDraft.kind: must be one of run, confirm"):
        draft(kind="bench")
    with pytest.raises(ValueError, match="JobDraft.max_attempts: must be >= 1"):
        draft(max_attempts=0)
    with pytest.raises(ValueError, match="JobDraft.not_before: must be timezone-aware"):
        store.enqueue(draft(not_before=datetime(2026, 3, 4, 10, 0)))
    with pytest.raises(ValueError, match="JobDraft.payload: must be JSON-serialisable"):
        store.enqueue(draft(payload={"path": Path("/tmp")}))
    with pytest.raises(UsageError, match="a job needs a suite"):
        store.enqueue(draft(suite=" "))
    assert store.list_jobs() == []


# ----------------------------------------------------------------------------- claims


def test_claim_takes_the_highest_priority_first_then_the_oldest(store: ResultStore) -> None:
    first_run, second_run = enqueue(store, commit_sha=sha(1)), enqueue(store, commit_sha=sha(2))
    confirm = enqueue(store, kind="confirm", commit_sha=sha(3))
    evidence = enqueue(store, kind="evidence", commit_sha=sha(4))
    urgent_run = enqueue(store, commit_sha=sha(5), priority=50)
    enqueue(store, machine_id="m2")  # another machine's worker runs that one
    claimed = [store.claim_job("m1", "w1", LEASE_S) for _ in range(5)]
    assert [job.id for job in claimed if job] == [
        urgent_run.id, confirm.id, evidence.id, first_run.id, second_run.id
    ]
    assert store.claim_job("m1", "w1", LEASE_S) is None


def test_a_claim_sets_the_lease_and_counts_the_attempt(
    store: ResultStore, clock: FakeClock
) -> None:
    job = enqueue(store)
    clock.advance(3)
    claimed = store.claim_job("m1", "host:42", LEASE_S)
    assert claimed is not None
    assert (claimed.state, claimed.lease_owner, claimed.attempts) == ("RUNNING", "host:42", 1)
    assert claimed.lease_expires_at == at(3) + timedelta(seconds=LEASE_S)
    assert claimed.heartbeat_at == claimed.started_at == at(3)
    assert claimed.created_at == job.created_at == T0
    assert store.get_job(job.id) == claimed
    with pytest.raises(ValueError, match="lease_s: must be > 0"):
        store.claim_job("m1", "w1", 0)
    with pytest.raises(ValueError, match="owner: must name the worker"):
        store.claim_job("m1", "", LEASE_S)


def test_a_job_is_not_claimed_before_its_not_before(store: ResultStore, clock: FakeClock) -> None:
    later = enqueue(store, not_before=at(10))
    assert store.claim_job("m1", "w1", LEASE_S) is None
    clock.advance(9)
    assert store.claim_job("m1", "w1", LEASE_S) is None
    clock.advance(1)
    claimed = store.claim_job("m1", "w1", LEASE_S)
    assert claimed is not None and claimed.id == later.id


def test_a_dead_workers_job_is_claimed_again_once_its_lease_expires(
    store: ResultStore, clock: FakeClock
) -> None:
    job = enqueue(store)
    store.claim_job("m1", "w1", LEASE_S)
    clock.advance(1)
    assert store.claim_job("m1", "w2", LEASE_S) is None  # w1's lease still runs
    clock.advance(1)
    again = store.claim_job("m1", "w2", LEASE_S)
    assert again is not None and again.id == job.id
    assert (again.lease_owner, again.attempts, again.started_at) == ("w2", 2, T0)
    assert again.error is not None and "worker w1 stopped answering" in again.error
    # The first worker comes back: the job is not its any more.
    assert store.heartbeat_job(job.id, "w1", LEASE_S) is False
    with pytest.raises(ConflictError, match=f"job {job.id} cannot be finished by w1: it is "
                                            "RUNNING under w2"):
        store.finish_job(job.id, "w1")
    assert store.get_job(job.id) == again


def test_a_job_whose_workers_all_died_fails_and_the_claim_goes_on(
    store: ResultStore, clock: FakeClock
) -> None:
    doomed = enqueue(store, kind="confirm", max_attempts=2)
    for worker in ("w1", "w2"):
        claimed = store.claim_job("m1", worker, LEASE_S)
        assert claimed is not None and claimed.id == doomed.id
        clock.advance(2)
    routine = enqueue(store, commit_sha=SHA_B)
    claimed = store.claim_job("m1", "w3", LEASE_S)
    assert claimed is not None and claimed.id == routine.id
    failed = store.get_job(doomed.id)
    assert (failed.state, failed.attempts, failed.finished_at) == ("FAILED", 2, at(4))
    assert failed.error == "its worker stopped answering 2 times (lease expired)"
    assert (failed.lease_owner, failed.lease_expires_at) == (None, None)


def test_a_heartbeat_extends_the_lease(store: ResultStore, clock: FakeClock) -> None:
    job = enqueue(store)
    store.claim_job("m1", "w1", LEASE_S)
    clock.advance(1)
    assert store.heartbeat_job(job.id, "w1", LEASE_S) is True
    beaten = store.get_job(job.id)
    assert beaten.heartbeat_at == at(1)
    assert beaten.lease_expires_at == at(1) + timedelta(seconds=LEASE_S)
    clock.advance(1)  # past the first lease, within the extended one
    assert store.claim_job("m1", "w2", LEASE_S) is None
    assert store.heartbeat_job(job.id, "w2", LEASE_S) is False  # not w2's
    assert store.heartbeat_job(10_000, "w1", LEASE_S) is False  # no such job
    with pytest.raises(ValueError, match="lease_s"):
        store.heartbeat_job(job.id, "w1", -1)


def test_two_stores_claiming_concurrently_get_distinct_jobs(store_url: str) -> None:
    # Two ResultStores (as two daemons on one database would have), two claiming threads
    # each, race for 50 jobs: every job is claimed exactly once.
    first, second = ResultStore.open(store_url), ResultStore.open(store_url)
    expected = {enqueue(first, commit_sha=sha(n)).id for n in range(50)}
    workers = [(first, "a1"), (first, "a2"), (second, "b1"), (second, "b2")]
    barrier = threading.Barrier(len(workers))
    claimed: dict[str, list[int]] = {owner: [] for _, owner in workers}
    errors: list[BaseException] = []

    def claim_all(store: ResultStore, owner: str) -> None:
        try:
            barrier.wait()
            while (job := store.claim_job("m1", owner, 600)) is not None:
                claimed[owner].append(job.id)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=claim_all, args=worker) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [job_id for ids in claimed.values() for job_id in ids]
    assert sorted(every) == sorted(expected)  # all of them, none twice
    jobs = first.list_jobs(limit=100)
    assert {(job.state, job.attempts) for job in jobs} == {("RUNNING", 1)}
    assert {job.id: job.lease_owner for job in jobs} == {
        job_id: owner for owner, ids in claimed.items() for job_id in ids
    }
    first.close()
    second.close()


# ----------------------------------------------------------------------------- ending jobs


def test_finish_marks_the_job_done_with_its_run(store: ResultStore, clock: FakeClock) -> None:
    job = enqueue(store)
    store.claim_job("m1", "w1", LEASE_S)
    run_id = store.begin_run(make_start())
    clock.advance(5)
    with pytest.raises(NotFoundError, match="no run with id 999"):
        store.finish_job(job.id, "w1", run_id=999)
    assert store.get_job(job.id).state == "RUNNING"
    done = store.finish_job(job.id, "w1", run_id=run_id, note="measured 2 benchmarks")
    assert (done.state, done.run_id, done.note, done.finished_at) == (
        "DONE", run_id, "measured 2 benchmarks", at(5)
    )
    assert (done.lease_owner, done.lease_expires_at) == (None, None)
    assert store.get_job(job.id) == done
    with pytest.raises(ConflictError, match=f"job {job.id} cannot be finished by w1: it is "
                                            "DONE, not RUNNING"):
        store.finish_job(job.id, "w1")
    with pytest.raises(NotFoundError, match="no job with id 999"):
        store.finish_job(999, "w1")
    # Deleting the run keeps the job's record.
    with store.engine.begin() as conn:
        conn.execute(delete(t.benchmark_runs))
    assert store.get_job(job.id).run_id is None


def test_a_failed_attempt_is_retried_while_attempts_are_left(
    store: ResultStore, clock: FakeClock
) -> None:
    job = enqueue(store, max_attempts=2)
    store.claim_job("m1", "w1", LEASE_S)
    retry = store.fail_job(job.id, "w1", "build failed: cc exited 1", retry_in_s=300)
    assert (retry.state, retry.not_before, retry.error) == (
        "QUEUED", at(5), "build failed: cc exited 1"
    )
    assert (retry.lease_owner, retry.lease_expires_at, retry.finished_at) == (None, None, None)
    assert store.claim_job("m1", "w1", LEASE_S) is None
    clock.advance(5)
    claimed = store.claim_job("m1", "w1", LEASE_S)
    assert claimed is not None and claimed.attempts == 2
    final = store.fail_job(job.id, "w1", "build failed again")  # no attempts left
    assert (final.state, final.error, final.finished_at) == ("FAILED", "build failed again", at(5))
    assert store.claim_job("m1", "w1", LEASE_S) is None


def test_a_failure_without_retry_fails_the_job_at_once(store: ResultStore) -> None:
    job = enqueue(store)
    store.claim_job("m1", "w1", LEASE_S)
    failed = store.fail_job(job.id, "w1", "suite core no longer exists", retry_in_s=None)
    assert (failed.state, failed.attempts, failed.finished_at) == ("FAILED", 1, T0)


def test_fail_job_refuses_a_job_it_does_not_hold(store: ResultStore) -> None:
    job = enqueue(store)
    with pytest.raises(ConflictError, match="cannot be failed by w1: it is QUEUED, not RUNNING"):
        store.fail_job(job.id, "w1", "boom")
    store.claim_job("m1", "w1", LEASE_S)
    with pytest.raises(ConflictError, match="RUNNING under w1"):
        store.fail_job(job.id, "w2", "boom")
    with pytest.raises(NotFoundError, match="no job with id 999"):
        store.fail_job(999, "w1", "boom")
    with pytest.raises(ValueError, match="needs an error"):
        store.fail_job(job.id, "w1", " ")
    with pytest.raises(ValueError, match="retry_in_s: must be >= 0 or None"):
        store.fail_job(job.id, "w1", "boom", retry_in_s=-1)
    assert store.get_job(job.id).state == "RUNNING"


def test_cancelling_a_running_job_ends_its_lease(store: ResultStore, clock: FakeClock) -> None:
    job = enqueue(store)
    store.claim_job("m1", "w1", LEASE_S)
    clock.advance(1)
    cancelled = store.cancel_job(job.id, "ana", "wrong commit")
    assert (cancelled.state, cancelled.note, cancelled.finished_at) == (
        "CANCELLED", "cancelled by ana: wrong commit", at(1)
    )
    assert store.heartbeat_job(job.id, "w1", LEASE_S) is False
    with pytest.raises(ConflictError, match=r"it is CANCELLED, not RUNNING \(cancelled by ana"):
        store.finish_job(job.id, "w1")
    with pytest.raises(ConflictError, match=f"job {job.id} is CANCELLED already"):
        store.cancel_job(job.id, "ana", "again")
    assert store.get_job(job.id) == cancelled


def test_a_cancelled_queued_job_is_never_claimed(store: ResultStore) -> None:
    job = enqueue(store)
    with pytest.raises(UsageError, match="needs a reason"):
        store.cancel_job(job.id, "ana", "")
    with pytest.raises(UsageError, match="needs an actor"):
        store.cancel_job(job.id, " ", "why")
    with pytest.raises(NotFoundError, match="no job with id 999"):
        store.cancel_job(999, "ana", "why")
    store.cancel_job(job.id, "ana", "not needed")
    assert store.claim_job("m1", "w1", LEASE_S) is None


def test_skip_queued_supersedes_the_other_queued_runs_of_a_branch(
    store: ResultStore, clock: FakeClock
) -> None:
    running = enqueue(store, commit_sha=sha(1))
    store.claim_job("m1", "w1", LEASE_S)
    queued = [enqueue(store, commit_sha=sha(n)) for n in (2, 3, 4)]
    untouched = [
        enqueue(store, commit_sha=sha(2), kind="confirm"),
        enqueue(store, commit_sha=sha(6), branch="release"),
        enqueue(store, commit_sha=sha(2), tier="nightly"),
        enqueue(store, commit_sha=sha(2), machine_id="m2"),
    ]
    newest = enqueue(store, commit_sha=sha(5))
    clock.advance(1)
    reason = f"superseded by job {newest.id} at {sha(5)[:12]}; kept as unmeasured for bisection"
    skipped = store.skip_queued("core", "main", "commit", "m1", keep_job_id=newest.id,
                                reason=reason)
    assert skipped == [job.id for job in queued]
    for job_id in skipped:
        job = store.get_job(job_id)
        assert (job.state, job.note, job.finished_at) == ("SKIPPED", reason, at(1))
    assert store.get_job(running.id).state == "RUNNING"
    assert {store.get_job(job.id).state for job in [*untouched, newest]} == {"QUEUED"}
    assert store.skip_queued("core", "main", "commit", "m1", keep_job_id=newest.id,
                             reason=reason) == []
    # A skipped commit can still be measured later (bisection enqueues it again).
    assert store.enqueue(draft(commit_sha=sha(2)))[1] is True
    with pytest.raises(NotFoundError, match="no job with id 999"):
        store.skip_queued("core", "main", "commit", "m1", keep_job_id=999, reason=reason)
    with pytest.raises(UsageError, match="needs a reason"):
        store.skip_queued("core", "main", "commit", "m1", keep_job_id=newest.id, reason="")


# ----------------------------------------------------------------------------- reads


def test_list_jobs_newest_first_a_page_at_a_time(store: ResultStore) -> None:
    ids = [enqueue(store, commit_sha=sha(n), machine_id=f"m{n % 2}").id for n in range(7)]
    first_page = store.list_jobs(limit=3)
    assert [job.id for job in first_page] == ids[::-1][:3]
    second_page = store.list_jobs(limit=3, before_id=first_page[-1].id)
    assert [job.id for job in second_page] == ids[::-1][3:6]
    assert [job.id for job in store.list_jobs(limit=3, before_id=second_page[-1].id)] == [ids[0]]
    assert [job.id for job in store.list_jobs(machine_id="m1")] == ids[1::2][::-1]
    store.claim_job("m0", "w1", LEASE_S)
    assert [job.id for job in store.list_jobs(states=["running"])] == [ids[0]]
    assert len(store.list_jobs(states=("QUEUED", "RUNNING"), suite="core")) == 7
    assert store.list_jobs(suite="other") == []
    with store.reading() as r:
        assert r.list_jobs(limit=2) == store.list_jobs(limit=2)
    with pytest.raises(UsageError, match="unknown job state 'WAITING'"):
        store.list_jobs(states=["WAITING"])
    with pytest.raises(UsageError, match="limit must be >= 1"):
        store.list_jobs(limit=0)
    with pytest.raises(NotFoundError, match="no job with id 999"):
        store.get_job(999)


def test_queue_stats_count_states_waiting_time_and_leases(
    store: ResultStore, clock: FakeClock
) -> None:
    empty = store.queue_stats("m1")
    none = dict.fromkeys(JOB_KINDS, 0)
    assert empty == QueueStats(by_state=dict.fromkeys(JOB_STATES, 0), oldest_queued_age_s=None,
                               running=0, expired_leases=0, attempts_by_kind=none,
                               retries_by_kind=none)
    first = enqueue(store, commit_sha=sha(1))
    clock.advance(1)
    enqueue(store, commit_sha=sha(2))
    enqueue(store, commit_sha=sha(3), not_before=at(60))  # not waiting yet
    enqueue(store, machine_id="m2")
    clock.advance(1)
    claimed = store.claim_job("m1", "w1", LEASE_S)
    assert claimed is not None and claimed.id == first.id
    stats = store.queue_stats("m1")
    assert stats.by_state == {**dict.fromkeys(JOB_STATES, 0), "QUEUED": 2, "RUNNING": 1}
    assert (stats.oldest_queued_age_s, stats.running, stats.expired_leases) == (60.0, 1, 0)
    clock.advance(2)  # w1 died
    stats = store.queue_stats("m1")
    assert (stats.oldest_queued_age_s, stats.running, stats.expired_leases) == (180.0, 0, 1)
    everywhere = store.queue_stats(None)
    assert everywhere.by_state["QUEUED"] == 3
    assert everywhere.oldest_queued_age_s == 180.0
    with store.reading() as r:
        assert r.queue_stats("m1") == stats


def test_last_job_is_the_newest_done_run_of_a_tier(store: ResultStore, clock: FakeClock) -> None:
    assert store.last_job("core", "nightly", "m1") is None

    def done(**overrides: Any) -> Job:
        job = enqueue(store, **overrides)
        claimed = store.claim_job(job.machine_id, "w1", LEASE_S)
        assert claimed is not None and claimed.id == job.id
        return store.finish_job(job.id, "w1")

    done(tier="nightly", commit_sha=sha(1))
    clock.advance(60)
    newest = done(tier="nightly", commit_sha=sha(2))
    clock.advance(60)
    done(tier="nightly", commit_sha=sha(3), machine_id="m2")
    done(tier="weekly", commit_sha=sha(4))
    confirm = done(tier="nightly", commit_sha=sha(5), kind="confirm")
    queued = enqueue(store, tier="nightly", commit_sha=sha(6))
    assert store.last_job("core", "nightly", "m1") == newest
    assert store.last_job("core", "nightly", "m1", kinds=("run", "confirm")) == confirm
    assert store.last_job("core", "nightly", "m1", states=("QUEUED", "DONE")) == queued
    assert store.last_job("other", "nightly", "m1") is None
    with store.reading() as r:
        assert r.last_job("core", "nightly", "m1") == newest
    with pytest.raises(UsageError, match="unknown job state"):
        store.last_job("core", "nightly", "m1", states=("FINISHED",))


# ----------------------------------------------------------------------------- migration


def test_migration_8_adds_the_jobs_table_of_tables_py(tmp_path: Path) -> None:
    old = old_database(f"sqlite:///{tmp_path / 'old.db'}", 7)
    assert upgrade(old) == (7, SCHEMA_VERSION)
    declared = make_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    t.metadata.create_all(declared)
    schema = describe_schema(old)
    assert schema == describe_schema(declared)
    assert ("uq_jobs_active", ("suite", "commit_sha", "tier", "kind", "machine_id"), True) in (
        schema["jobs"]["indexes"]
    )
    old.dispose()
    declared.dispose()


def test_a_version_7_database_gets_an_empty_queue_on_db_upgrade(store_url: str) -> None:
    old = old_database(store_url, 7)
    assert upgrade(old) == (7, SCHEMA_VERSION)
    with old.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.jobs)).scalar_one() == 0
    old.dispose()
    store = ResultStore.open(store_url)
    assert store.enqueue(draft())[1] is True
    store.close()
