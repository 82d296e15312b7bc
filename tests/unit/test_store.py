"""ResultStore: writing runs (begin / complete / fail / recover) and reading them back."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
    text,
)

from perfd.errors import StorageError, UsageError
from perfd.model import (
    BenchmarkSamples,
    Direction,
    EnvFingerprint,
    HarnessContext,
    ProcessResult,
    RunResult,
    RunStart,
    RunStatus,
    Summary,
)
from perfd.store import ResultStore, make_engine
from perfd.store import tables as t
from perfd.store.runs import _insert_many, _passes_through

T0 = datetime(2026, 3, 2, 12, 0, 0, 250_000, tzinfo=UTC)
SHA_A = "a1" * 20
SHA_B = "b2" * 20
HOST = "bench-01"


def make_env(kernel: str = "6.8.0-45-generic", load: float | None = 0.12) -> EnvFingerprint:
    return EnvFingerprint(
        hostname=HOST,
        kernel=kernel,
        cpu_model="AMD EPYC 7763",
        cpu_count=16,
        governor="performance",
        boost=False,
        smt=False,
        isolated_cpus="2-7",
        nohz_full=None,
        compiler="gcc 13.2.0",
        memory_total_bytes=64 * 2**30,
        load_avg_1m=load,
    )


HARNESS = HarnessContext(
    format_version="1.0",
    harness_version="0.3.1",
    host=HOST,
    pinned_cpu=3,
    timer_resolution_ns=1.0,
    timer_overhead_ns=18.5,
    counters_available=("cycles", "instructions"),
    counters_unavailable_reason=None,
    raw={"format_version": "1.0", "extra": {"nested": True}},
)


def make_process(
    benchmark: str,
    repetition: int,
    samples_ns: tuple[float, ...],
    counters: dict[str, tuple[float, ...]] | None = None,
) -> ProcessResult:
    return ProcessResult(
        benchmark=benchmark,
        repetition=repetition,
        round_index=repetition,
        cpu=3,
        exit_code=0,
        duration_s=0.5 + repetition,
        samples=BenchmarkSamples(
            name=benchmark,
            iterations_per_sample=1000,
            samples_ns=samples_ns,
            counters=counters or {},
        ),
        counters_unavailable_reason=None if counters else "perf_event_paranoid is 3",
    )


def make_summary(benchmark: str, metric: str, median: float = 100.0) -> Summary:
    return Summary(
        benchmark=benchmark,
        metric=metric,
        unit="ns" if metric == "time" else "ops/s" if metric == "throughput" else "count",
        direction=Direction.HIGHER if metric == "throughput" else Direction.LOWER,
        n_processes=3,
        n_samples=9,
        median=median,
        mean=median * 1.01,
        stddev=2.5,
        cv=0.025,
        min=median * 0.9,
        max=median * 1.1,
        p95=median * 1.08,
        p99=median * 1.09,
        sample_cv=0.04,
    )


# Benchmark "hash_insert": 3 processes with counters, stored metrics time + throughput.
# Benchmark "parse_json": 3 processes with counters, stored metrics time + instructions.
PROCESSES = (
    make_process("parse_json", 0, (200.0, 210.0, 190.0), {"instructions": (900.0, 901.0, 902.0)}),
    make_process("hash_insert", 0, (100.0, 110.0, 90.0), {"instructions": (1.0, 2.0, 3.0)}),
    make_process("hash_insert", 1, (105.0, 95.0, 100.0), {"instructions": (1.0, 2.0, 3.0)}),
    make_process("hash_insert", 2, (120.0, 80.0, 125.0), {"instructions": (1.0, 2.0, 3.0)}),
    make_process("parse_json", 1, (220.0, 205.0, 215.0), {"instructions": (910.0, 911.0, 912.0)}),
    make_process("parse_json", 2, (199.0, 201.0, 200.0), {"instructions": (920.0, 921.0, 922.0)}),
)
SUMMARIES = (
    make_summary("hash_insert", "time", 100.0),
    make_summary("hash_insert", "throughput", 1e7),
    make_summary("parse_json", "time", 205.0),
    make_summary("parse_json", "instructions", 911.0),
)


def make_start(
    suite: str = "core",
    commit: str = SHA_A,
    started_at: datetime = T0,
    pid: int = 4242,
) -> RunStart:
    return RunStart(
        suite=suite,
        commit_sha=commit,
        machine_id="bench-01-epyc",
        config_hash="cfg0123456789abc",
        build_hash="bld0123456789abc",
        started_at=started_at,
        pid=pid,
        tier="nightly",
    )


def make_result(
    statistics: tuple[Summary, ...] = SUMMARIES,
    env: EnvFingerprint | None = None,
    finished_at: datetime = T0 + timedelta(minutes=5),
) -> RunResult:
    return RunResult(
        environment=env or make_env(),
        harness=HARNESS,
        processes=PROCESSES,
        statistics=statistics,
        finished_at=finished_at,
        benchmark_config_hashes={"hash_insert": "hcfg-hash-insert", "parse_json": "hcfg-parse"},
    )


# The store tests run on SQLite and on PostgreSQL: a fresh database per test on the session's
# own server (tests/postgres.py). Set this to a scratch PostgreSQL database instead
# (everything in its public schema is dropped), e.g. postgresql://perfd@127.0.0.1:5432/perfd_test.
POSTGRES_URL = os.environ.get("PERFD_TEST_POSTGRES_URL")


def _empty_postgres(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (on PostgreSQL, for a test that also uses ``store``: one with
    the current schema and no rows, which is what the store would make of an empty one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'perfd.db'}"
    elif POSTGRES_URL:
        _empty_postgres(POSTGRES_URL)
        yield POSTGRES_URL
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        # A test that opens ``store`` has it create the schema first thing: copying a database
        # migrated once per session gives the same state (the store finds it current) and
        # costs a few tens of ms instead of migrating every test's database again.
        template = cluster.template("perfd_current", _create_schema) if (
            "store" in request.fixturenames
        ) else None
        url = cluster.create_database(template=template)
        yield url
        cluster.drop_database(url)


def _create_schema(url: str) -> None:
    ResultStore.open(url).close()


@pytest.fixture
def store(store_url: str) -> Iterator[ResultStore]:
    store = ResultStore.open(store_url)
    yield store
    store.close()


def count_rows(store: ResultStore, table: Table, run_id: int) -> int:
    with store.engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(table).where(table.c.run_id == run_id)
        ).scalar_one()


def count_all(store: ResultStore, table: Table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# ---------------------------------------------------------------------------- metric_values


def test_metric_values_derives_throughput_and_reads_counters() -> None:
    process = make_process("b", 0, (100.0, 200.0), {"cycles": (300.0, 600.0)})
    assert process.samples.metric_values("time") == (100.0, 200.0)
    assert process.samples.metric_values("throughput") == (1e7, 5e6)
    assert process.samples.metric_values("cycles") == (300.0, 600.0)
    assert process.samples.metric_values("instructions") is None
    assert process.samples.metric_values("no_such_metric") is None


# ---------------------------------------------------------------------------- round trip


def test_round_trip_of_a_completed_run(store: ResultStore) -> None:
    run_id = store.begin_run(make_start(), hostname=HOST)
    running = store.get_run(run_id)
    assert running.info.status is RunStatus.RUNNING
    assert running.environment is None and running.info.finished_at is None

    store.complete_run(run_id, make_result(), output_dir="/var/lib/perfd/runs/1")

    detail = store.get_run(run_id)
    info = detail.info
    assert (info.id, info.suite, info.commit_sha, info.machine_id) == (
        run_id, "core", SHA_A, "bench-01-epyc",
    )
    assert info.status is RunStatus.COMPLETED
    assert info.tier == "nightly"
    assert info.started_at == T0 and info.started_at.tzinfo is UTC
    assert info.finished_at == T0 + timedelta(minutes=5)
    assert info.error is None
    assert info.n_benchmarks == 2
    assert (detail.config_hash, detail.build_hash) == ("cfg0123456789abc", "bld0123456789abc")
    assert (detail.hostname, detail.pid) == (HOST, 4242)
    assert detail.load_avg_1m == 0.12
    assert detail.harness_version == "0.3.1"
    assert detail.environment == make_env().hashed_fields()
    assert detail.harness_context is not None
    assert detail.harness_context["counters_available"] == ["cycles", "instructions"]
    assert detail.harness_context["timer_overhead_ns"] == 18.5
    assert detail.harness_context["raw"] == {"format_version": "1.0", "extra": {"nested": True}}
    assert detail.output_dir == "/var/lib/perfd/runs/1"

    assert [(p.benchmark, p.repetition) for p in detail.processes] == [
        ("hash_insert", 0), ("hash_insert", 1), ("hash_insert", 2),
        ("parse_json", 0), ("parse_json", 1), ("parse_json", 2),
    ]
    first = detail.processes[0]
    assert (first.cpu, first.exit_code, first.duration_s) == (3, 0, 0.5)
    assert (first.iterations_per_sample, first.n_samples) == (1000, 3)
    assert first.counters_unavailable_reason is None

    expected = sorted(SUMMARIES, key=lambda s: (s.benchmark, s.metric))
    assert list(detail.statistics) == expected
    assert store.statistics(run_id) == expected

    assert store.measurements(run_id, "hash_insert", "time") == [
        (0, 0, 100.0), (0, 1, 110.0), (0, 2, 90.0),
        (1, 0, 105.0), (1, 1, 95.0), (1, 2, 100.0),
        (2, 0, 120.0), (2, 1, 80.0), (2, 2, 125.0),
    ]
    throughput = store.measurements(run_id, "hash_insert", "throughput")
    assert throughput[:3] == [(0, 0, 1e7), (0, 1, 1e9 / 110.0), (0, 2, 1e9 / 90.0)]
    assert [v for _, _, v in store.measurements(run_id, "parse_json", "instructions")] == [
        900.0, 901.0, 902.0, 910.0, 911.0, 912.0, 920.0, 921.0, 922.0,
    ]
    # Only metrics the run has statistics for are stored.
    assert store.measurements(run_id, "hash_insert", "instructions") == []
    assert store.measurements(run_id, "parse_json", "throughput") == []
    assert count_rows(store, t.measurements, run_id) == 9 * 4

    assert store.process_values(run_id, "hash_insert", "time") == [100.0, 100.0, 120.0]
    assert store.process_values(run_id, "parse_json", "time") == [200.0, 215.0, 200.0]
    assert store.process_values(run_id, "nope", "time") == []

    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.statistics.c.benchmark, t.statistics.c.config_hash).where(
                t.statistics.c.run_id == run_id
            )
        ).all()
    hashes = {benchmark: config_hash for benchmark, config_hash in rows}
    assert hashes == {"hash_insert": "hcfg-hash-insert", "parse_json": "hcfg-parse"}


def test_benchmark_without_config_hash_gets_the_runs(store: ResultStore) -> None:
    run_id = store.begin_run(make_start(), hostname=HOST)
    result = make_result()
    result = RunResult(
        environment=result.environment,
        harness=result.harness,
        processes=result.processes,
        statistics=result.statistics,
        finished_at=result.finished_at,
        benchmark_config_hashes={"hash_insert": "hcfg-hash-insert"},
    )
    store.complete_run(run_id, result)
    with store.engine.connect() as conn:
        hashes = set(conn.execute(select(t.statistics.c.config_hash)).scalars())
    assert hashes == {"hcfg-hash-insert", "cfg0123456789abc"}


def test_timestamps_are_returned_as_utc(store: ResultStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    run_id = store.begin_run(make_start(started_at=datetime(2026, 3, 2, 14, 0, tzinfo=plus_two)))
    started = store.get_run(run_id).info.started_at
    assert started == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert started.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(store: ResultStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.begin_run(make_start(started_at=datetime(2026, 3, 2, 12, 0)))
    run_id = store.begin_run(make_start())
    with pytest.raises(ValueError, match="RunResult.finished_at"):
        store.complete_run(run_id, make_result(finished_at=datetime(2026, 3, 2, 12, 5)))


# ---------------------------------------------------------------------------- atomicity


def test_complete_run_is_atomic(store: ResultStore) -> None:
    run_id = store.begin_run(make_start(), hostname=HOST)
    # The duplicate summary violates unique(run_id, benchmark, metric) after the processes
    # and measurements have been inserted in the same transaction.
    broken = make_result(statistics=(*SUMMARIES, SUMMARIES[0]))

    with pytest.raises(StorageError, match=f"storing run {run_id}: database refused the data"):
        store.complete_run(run_id, broken)

    for table in (t.processes, t.measurements, t.statistics):
        assert count_rows(store, table, run_id) == 0, table.name
    assert count_all(store, t.environments) == 0
    detail = store.get_run(run_id)
    assert detail.info.status is RunStatus.RUNNING
    assert detail.info.finished_at is None and detail.harness_version is None

    # The run can still be completed afterwards.
    store.complete_run(run_id, make_result())
    assert store.get_run(run_id).info.status is RunStatus.COMPLETED


def test_only_running_runs_can_be_completed_or_failed(store: ResultStore) -> None:
    run_id = store.begin_run(make_start())
    store.complete_run(run_id, make_result())
    with pytest.raises(StorageError, match=f"run {run_id} is COMPLETED"):
        store.complete_run(run_id, make_result())
    with pytest.raises(StorageError, match="only a RUNNING run can be failed"):
        store.fail_run(run_id, "boom")
    assert count_rows(store, t.measurements, run_id) == 36
    with pytest.raises(UsageError, match="no run with id 999"):
        store.complete_run(999, make_result())
    with pytest.raises(UsageError, match="no run with id 999"):
        store.fail_run(999, "boom")


# ---------------------------------------------------------------------------- failures


def test_fail_run_keeps_processes_and_environment_but_no_results(store_url: str) -> None:
    failed_at = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    store = ResultStore.open(store_url, clock=lambda: failed_at)
    run_id = store.begin_run(make_start())
    error = "harness parse_json exited with status 139 (SIGSEGV)\nstderr:\n  free(): bad pointer"

    store.fail_run(run_id, error, processes=PROCESSES[:2], environment=make_env(load=3.5))

    detail = store.get_run(run_id)
    assert detail.info.status is RunStatus.FAILED
    assert detail.info.error == error
    assert detail.info.finished_at == failed_at
    assert detail.info.n_benchmarks == 0
    assert [(p.benchmark, p.repetition) for p in detail.processes] == [
        ("hash_insert", 0), ("parse_json", 0),
    ]
    assert detail.environment == make_env().hashed_fields()
    assert detail.load_avg_1m == 3.5
    assert count_rows(store, t.measurements, run_id) == 0
    assert count_rows(store, t.statistics, run_id) == 0
    assert store.statistics(run_id) == []
    store.close()


def test_fail_run_without_details(store: ResultStore) -> None:
    run_id = store.begin_run(make_start())
    store.fail_run(run_id, "build failed: make exited with status 2")
    detail = store.get_run(run_id)
    assert detail.info.status is RunStatus.FAILED
    assert detail.processes == () and detail.environment is None


def test_recover_interrupted_fails_dead_runs_of_this_host(store_url: str) -> None:
    now = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    store = ResultStore.open(store_url, clock=lambda: now)
    dead = store.begin_run(make_start(pid=111), hostname=HOST)
    alive = store.begin_run(make_start(pid=222), hostname=HOST)
    other_host = store.begin_run(make_start(pid=111), hostname="bench-02")
    finished = store.begin_run(make_start(pid=111), hostname=HOST)
    store.complete_run(finished, make_result())
    # Defensive clean-up: leftovers of the dead run must go.
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.statistics).values(
                run_id=dead, benchmark="x", metric="time", unit="ns",
                direction=Direction.LOWER.value, config_hash="c", n_processes=1,
                n_samples=1, median=1.0, mean=1.0, stddev=0.0, cv=0.0, min=1.0, max=1.0,
                p95=1.0, p99=1.0, sample_cv=0.0, mad=0.0, sample_median=1.0, sample_mean=1.0,
                sample_mad=0.0,
            )
        )
    asked: list[int] = []

    def is_alive(pid: int) -> bool:
        asked.append(pid)
        return pid == 222

    assert store.recover_interrupted(HOST, is_alive) == [dead]
    assert sorted(asked) == [111, 222]

    info = store.get_run(dead).info
    assert info.status is RunStatus.FAILED
    assert info.error == "interrupted: perfd process 111 is gone"
    assert info.finished_at == now
    assert count_rows(store, t.statistics, dead) == 0
    assert store.get_run(alive).info.status is RunStatus.RUNNING
    assert store.get_run(other_host).info.status is RunStatus.RUNNING
    assert store.get_run(finished).info.status is RunStatus.COMPLETED
    assert count_rows(store, t.measurements, finished) == 36
    assert store.recover_interrupted(HOST, lambda pid: False) == [alive]
    assert store.recover_interrupted(HOST, lambda pid: False) == []
    store.close()


# ---------------------------------------------------------------------------- listing


def test_list_runs_newest_first_with_filters(store: ResultStore) -> None:
    ids = {}
    for n, (suite, commit) in enumerate(
        [("core", SHA_A), ("core", SHA_B), ("io", SHA_A), ("core", SHA_A)]
    ):
        ids[n] = store.begin_run(
            make_start(suite=suite, commit=commit, started_at=T0 + timedelta(hours=n))
        )
    store.complete_run(ids[0], make_result())
    store.fail_run(ids[1], "boom")

    assert [r.id for r in store.list_runs()] == [ids[3], ids[2], ids[1], ids[0]]
    assert [r.id for r in store.list_runs(limit=2)] == [ids[3], ids[2]]
    assert [r.id for r in store.list_runs(suite="core")] == [ids[3], ids[1], ids[0]]
    assert [r.id for r in store.list_runs(commit=SHA_A)] == [ids[3], ids[2], ids[0]]
    assert [r.id for r in store.list_runs(commit="B2B2B2")] == [ids[1]]
    assert [r.id for r in store.list_runs(status="running")] == [ids[3], ids[2]]
    assert [r.id for r in store.list_runs(suite="core", commit=SHA_A, status="COMPLETED")] == [
        ids[0]
    ]
    completed = store.list_runs(status="COMPLETED")[0]
    assert completed.n_benchmarks == 2 and completed.finished_at is not None
    failed = store.list_runs(status="FAILED")[0]
    assert failed.error == "boom" and failed.n_benchmarks == 0
    assert store.list_runs(suite="nope") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "DONE"}, "status must be one of RUNNING, COMPLETED, FAILED"),
        ({"commit": "xyz"}, "commit must be 4 to 40 hex digits"),
        ({"commit": "a1%"}, "commit must be 4 to 40 hex digits"),
        ({"limit": 0}, "limit must be >= 1"),
    ],
)
def test_list_runs_refuses_bad_filters(store: ResultStore, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        store.list_runs(**kwargs)


def test_get_run_of_unknown_id_is_a_usage_error(store: ResultStore) -> None:
    with pytest.raises(UsageError, match="no run with id 42"):
        store.get_run(42)


# ---------------------------------------------------------------------------- environments


def test_environments_are_deduplicated_by_fingerprint(store: ResultStore) -> None:
    first = store.begin_run(make_start())
    store.complete_run(first, make_result(env=make_env(load=0.1)))
    second = store.begin_run(make_start())
    store.complete_run(second, make_result(env=make_env(load=7.9)))  # load is not hashed
    assert count_all(store, t.environments) == 1
    assert store.get_run(second).load_avg_1m == 7.9

    third = store.begin_run(make_start())
    store.complete_run(third, make_result(env=make_env(kernel="6.9.1")))
    assert count_all(store, t.environments) == 2
    with store.engine.connect() as conn:
        env_ids = conn.execute(
            select(t.benchmark_runs.c.environment_id).order_by(t.benchmark_runs.c.id)
        ).scalars().all()
    assert env_ids[0] == env_ids[1] != env_ids[2]
    environment = store.get_run(third).environment
    assert environment is not None and environment["kernel"] == "6.9.1"


# ---------------------------------------------------------------------------- bulk insert


def test_measurements_take_the_direct_insert_path_on_sqlite(tmp_path: Path) -> None:
    # The ingest target (>= 200k measurements/s) depends on it: see benchmarks/bench_ingest.py.
    dialect = make_engine(f"sqlite:///{tmp_path / 'perfd.db'}").dialect
    assert all(_passes_through(column.type, dialect) for column in t.measurements.c)


def test_bulk_insert_falls_back_to_dicts_when_types_convert(store: ResultStore) -> None:
    md = MetaData()
    plain = Table("plain", md, Column("id", Integer, primary_key=True), Column("s", String(10)))
    stamped = Table(
        "stamped", md, Column("id", Integer, primary_key=True), Column("at", t.UtcDateTime)
    )
    md.create_all(store.engine)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with store.engine.begin() as conn:
        assert _insert_many(conn, plain, ("s",), [[("x",)] * 25_000]) == 25_000
        assert _insert_many(conn, stamped, ("at",), [[(at,)], [(at,)]]) == 2
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(plain)).scalar_one() == 25_000
        assert set(conn.execute(select(stamped.c.at)).scalars()) == {at}


def test_concurrent_writers_wait_for_each_other(store_url: str) -> None:
    # Two stores (as two perfd processes would have) complete runs from several threads at
    # once: every write transaction waits for the lock instead of failing half-way.
    first, second = ResultStore.open(store_url), ResultStore.open(store_url)
    run_ids = [first.begin_run(make_start()) for _ in range(6)]
    errors: list[BaseException] = []

    def complete(store: ResultStore, run_id: int) -> None:
        try:
            store.complete_run(run_id, make_result())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=complete, args=(first if n % 2 else second, run_id))
        for n, run_id in enumerate(run_ids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [r.status for r in first.list_runs()] == [RunStatus.COMPLETED] * 6
    assert count_all(first, t.measurements) == 6 * 36
    assert count_all(first, t.environments) == 1
    first.close()
    second.close()
