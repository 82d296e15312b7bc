"""ResultStore history: series keys and points from completed runs, runs of a commit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from perfd.errors import UsageError
from perfd.model import RunStatus
from perfd.store import ResultStore, SeriesKey, SeriesPoint
from tests.unit import test_store
from tests.unit.test_store import (
    HOST,
    SHA_A,
    SHA_B,
    T0,
    make_env,
    make_result,
    make_start,
    make_summary,
)

# The databases test_store.py runs against (SQLite; PostgreSQL when configured).
store_url = test_store.store_url

MACHINE = "bench-01-epyc"
HASH_TIME = SeriesKey("core", "hash_insert", "time", MACHINE, "hcfg-hash-insert")


@pytest.fixture
def store(store_url: str) -> Iterator[ResultStore]:
    store = ResultStore.open(store_url)
    yield store
    store.close()


def completed(
    store: ResultStore,
    commit: str,
    started_at: datetime,
    *,
    hash_insert_ns: float = 100.0,
    kernel: str = "6.8.0-45-generic",
    **start_changes: Any,
) -> int:
    """A COMPLETED run of suite core; hash_insert/time has median ``hash_insert_ns``."""
    run_id = store.begin_run(
        replace(make_start(commit=commit, started_at=started_at), **start_changes), hostname=HOST
    )
    statistics = (
        replace(make_summary("hash_insert", "time", hash_insert_ns), cv=hash_insert_ns / 4000),
        make_summary("hash_insert", "throughput", 1e9 / hash_insert_ns),
        make_summary("parse_json", "time", 205.0),
        make_summary("parse_json", "instructions", 911.0),
    )
    store.complete_run(
        run_id,
        make_result(
            statistics=statistics,
            env=make_env(kernel=kernel),
            finished_at=started_at + timedelta(minutes=5),
        ),
    )
    return run_id


# ---------------------------------------------------------------------------- series


def test_series_keys_are_distinct_series_of_completed_runs(store: ResultStore) -> None:
    completed(store, SHA_A, T0)
    completed(store, SHA_B, T0 + timedelta(hours=1))
    completed(store, SHA_A, T0, machine_id="bench-02")
    store.fail_run(store.begin_run(replace(make_start(suite="io"))), "boom")
    store.begin_run(make_start(suite="net"))  # still RUNNING

    core = [
        ("hash_insert", "throughput", "hcfg-hash-insert"),
        ("hash_insert", "time", "hcfg-hash-insert"),
        ("parse_json", "instructions", "hcfg-parse"),
        ("parse_json", "time", "hcfg-parse"),
    ]
    assert store.series_keys(machine_id=MACHINE) == [
        SeriesKey("core", benchmark, metric, MACHINE, config) for benchmark, metric, config in core
    ]
    assert store.series_keys() == [
        SeriesKey("core", benchmark, metric, machine, config)
        for benchmark, metric, config in core
        for machine in ("bench-01-epyc", "bench-02")
    ]
    assert len(store.series_keys(suite="core", machine_id="bench-02")) == 4
    assert store.series_keys(suite="io") == []
    assert store.series_keys(suite="net") == []


def test_series_points_are_ordered_by_start_time(store: ResultStore) -> None:
    # Stored out of order: the later commit's run has the lower id.
    later = completed(store, SHA_B, T0 + timedelta(hours=2), hash_insert_ns=120.0,
                      kernel="6.9.1")
    earlier = completed(store, SHA_A, T0, hash_insert_ns=100.0)
    store.fail_run(store.begin_run(make_start(started_at=T0 + timedelta(hours=1))), "boom")
    completed(store, SHA_A, T0 + timedelta(hours=3), machine_id="bench-02")

    points = store.series_points(HASH_TIME)
    assert points == [
        SeriesPoint(
            run_id=earlier,
            commit_sha=SHA_A,
            started_at=T0,
            finished_at=T0 + timedelta(minutes=5),
            median=100.0,
            cv=0.025,
            n_processes=3,
            environment_hash=make_env().fingerprint_hash,
        ),
        SeriesPoint(
            run_id=later,
            commit_sha=SHA_B,
            started_at=T0 + timedelta(hours=2),
            finished_at=T0 + timedelta(hours=2, minutes=5),
            median=120.0,
            cv=0.03,
            n_processes=3,
            environment_hash=make_env(kernel="6.9.1").fingerprint_hash,
        ),
    ]
    assert points[0].environment_hash != points[1].environment_hash
    parse = store.series_points(SeriesKey("core", "parse_json", "time", MACHINE, "hcfg-parse"))
    assert [(p.run_id, p.median) for p in parse] == [(earlier, 205.0), (later, 205.0)]
    # Another config hash is another series.
    assert store.series_points(replace(HASH_TIME, config_hash="hcfg-parse")) == []


def test_series_points_are_in_commit_order_when_a_commit_is_measured_again_later(
    store: ResultStore,
) -> None:
    # commit A (made at T0) was contended and re-measured after commit B (made an hour
    # later) had been measured: history is A then B all the same
    sha_c = "c" * 40
    b = completed(store, SHA_B, T0 + timedelta(hours=3), commit_time=T0 + timedelta(hours=1))
    a = completed(store, SHA_A, T0 + timedelta(hours=4), commit_time=T0)
    legacy = completed(store, sha_c, T0 + timedelta(hours=2))  # before schema 9: no commit time
    again = completed(store, SHA_A, T0 + timedelta(hours=5), commit_time=T0)
    assert [p.run_id for p in store.series_points(HASH_TIME)] == [a, again, b, legacy]


def test_series_points_by_tier(store: ResultStore) -> None:
    nightly = completed(store, SHA_A, T0)
    per_commit = completed(store, SHA_B, T0 + timedelta(hours=1), tier="per-commit")
    manual = completed(store, SHA_B, T0 + timedelta(hours=2), tier="manual")

    def ids(**kwargs: object) -> list[int]:
        return [p.run_id for p in store.series_points(HASH_TIME, **kwargs)]  # type: ignore[arg-type]

    assert ids() == [nightly, per_commit, manual]
    assert ids(tier="nightly") == [nightly]
    assert ids(exclude_tiers=("manual",)) == [nightly, per_commit]
    assert ids(exclude_tiers=["manual", "nightly"]) == [per_commit]
    assert ids(tier="weekly") == []


def test_series_points_need_a_benchmark(store: ResultStore) -> None:
    with pytest.raises(ValueError, match="is a machine-wide key"):
        store.series_points(replace(HASH_TIME, benchmark=""))


# ---------------------------------------------------------------------------- runs


def test_runs_for_commit_newest_first(store: ResultStore) -> None:
    first = completed(store, SHA_A, T0)
    second = completed(store, SHA_A, T0 + timedelta(hours=1))
    failed = store.begin_run(make_start(started_at=T0 + timedelta(hours=2)))
    store.fail_run(failed, "boom")
    completed(store, SHA_B, T0)
    completed(store, SHA_A, T0, machine_id="bench-02")
    completed(store, SHA_A, T0, suite="io")

    assert [r.id for r in store.runs_for_commit("core", SHA_A, MACHINE)] == [second, first]
    assert [r.id for r in store.runs_for_commit("core", SHA_A.upper(), MACHINE)] == [second, first]
    assert [r.id for r in store.runs_for_commit("core", SHA_A, MACHINE, status="failed")] == [
        failed
    ]
    assert [r.id for r in store.runs_for_commit("core", SHA_A, MACHINE, status=None)] == [
        failed, second, first,
    ]
    info = store.runs_for_commit("core", SHA_A, MACHINE)[0]
    assert (info.status, info.n_benchmarks, info.commit_sha) == (RunStatus.COMPLETED, 2, SHA_A)
    assert store.runs_for_commit("core", SHA_A[:12], MACHINE) == []  # full sha only
    with pytest.raises(UsageError, match="status must be one of RUNNING, COMPLETED, FAILED"):
        store.runs_for_commit("core", SHA_A, MACHINE, status="DONE")


def test_environment_hash_of_a_run(store: ResultStore) -> None:
    done = completed(store, SHA_A, T0, kernel="6.9.1")
    running = store.begin_run(make_start())
    assert store.environment_hash(done) == make_env(kernel="6.9.1").fingerprint_hash
    assert store.environment_hash(running) is None
    with pytest.raises(UsageError, match="no run with id 999"):
        store.environment_hash(999)
