"""Migration 3: process summaries, backfilled from measurements, so history never reads samples."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from sqlalchemy import Engine, delete, event, func, insert, inspect, select

from perfd.errors import StorageError
from perfd.model import RunResult, RunStart, RunStatus, Summary
from perfd.store import SCHEMA_VERSION, ResultStore, SeriesKey, make_engine, upgrade
from perfd.store import tables as t
from perfd.store.migrations import MIGRATIONS, VERSION_KEY, write_transaction
from tests.unit import test_store
from tests.unit.test_store import (
    HARNESS,
    HOST,
    PROCESSES,
    SHA_A,
    SHA_B,
    T0,
    make_env,
    make_process,
    make_result,
    make_start,
    make_summary,
)

# The databases test_store.py runs against (SQLite; PostgreSQL when configured).
store_url = test_store.store_url


# ---------------------------------------------------------------------------- old databases


def old_database(url: str, version: int) -> Engine:
    """An engine on a database as perfd at schema ``version`` left it: migrations 1..version."""
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        for number, _description, migrate in MIGRATIONS[:version]:
            assert number <= version
            migrate(conn)
        conn.execute(t.schema_meta.insert().values(key=VERSION_KEY, value=str(version)))
    return engine


def write_old_run(engine: Engine, start: RunStart, result: RunResult, hostname: str = HOST) -> int:
    """A COMPLETED run stored the way perfd before schema version 3 stored it (runs,
    environment, processes, measurements, statistics; no process summaries); returns its id.

    Written with plain inserts, because today's ResultStore writes what today's schema has.
    The tables used here have not changed since version 1.
    """
    stored = {(s.benchmark, s.metric) for s in result.statistics}
    summary_columns = [f.name for f in fields(Summary) if f.name not in ("direction",)]
    with write_transaction(engine) as conn:
        env = result.environment
        environment_id = conn.execute(
            select(t.environments.c.id).where(t.environments.c.fingerprint_hash == env.fingerprint_hash)
        ).scalar_one_or_none() or conn.execute(
            insert(t.environments)
            .values(fingerprint_hash=env.fingerprint_hash,
                    data=json.dumps(env.hashed_fields(), sort_keys=True),
                    first_seen_at=result.finished_at)
            .returning(t.environments.c.id)
        ).scalar_one()
        run_id = conn.execute(
            insert(t.benchmark_runs)
            .values(suite=start.suite, commit_sha=start.commit_sha, machine_id=start.machine_id,
                    config_hash=start.config_hash, build_hash=start.build_hash,
                    environment_id=environment_id, status=RunStatus.COMPLETED.value,
                    tier=start.tier, started_at=start.started_at,
                    finished_at=result.finished_at, pid=start.pid, hostname=hostname,
                    load_avg_1m=env.load_avg_1m, harness_version=result.harness.harness_version,
                    harness_context=json.dumps({"harness_version": "old"}))
            .returning(t.benchmark_runs.c.id)
        ).scalar_one()
        for process in result.processes:
            samples = process.samples
            process_id = conn.execute(
                insert(t.processes)
                .values(run_id=run_id, benchmark=process.benchmark,
                        repetition=process.repetition, round_index=process.round_index,
                        cpu=process.cpu, exit_code=process.exit_code,
                        duration_s=process.duration_s,
                        iterations_per_sample=samples.iterations_per_sample,
                        n_samples=len(samples.samples_ns),
                        counters_unavailable_reason=process.counters_unavailable_reason)
                .returning(t.processes.c.id)
            ).scalar_one()
            for benchmark, metric in sorted(stored):
                values = samples.metric_values(metric)
                if benchmark != process.benchmark or values is None:
                    continue
                conn.execute(insert(t.measurements), [
                    {"run_id": run_id, "process_id": process_id, "benchmark": benchmark,
                     "metric": metric, "sample_index": index, "value": value}
                    for index, value in enumerate(values)
                ])
        for s in result.statistics:
            conn.execute(insert(t.statistics).values(
                run_id=run_id, direction=s.direction.value,
                config_hash=result.benchmark_config_hashes.get(s.benchmark, start.config_hash),
                **{name: getattr(s, name) for name in summary_columns},
            ))
    return int(run_id)


def literal_result(processes: tuple[Any, ...], statistics: tuple[Summary, ...]) -> RunResult:
    return RunResult(
        environment=make_env(), harness=HARNESS, processes=processes, statistics=statistics,
        finished_at=T0, benchmark_config_hashes={"parse": "cfg-parse", "hash": "cfg-hash"},
    )


# Literal samples; the expected process values below are their medians, worked out by hand.
FIRST_RUN = literal_result(
    (
        make_process("parse", 0, (30.0, 10.0, 20.0), {"instructions": (7.0, 9.0, 8.0)}),
        make_process("parse", 1, (4.0, 1.0, 3.0, 2.0), {"instructions": (5.0, 5.0, 6.0, 6.0)}),
        make_process("parse", 2, (9.0,), {"instructions": (1.0,)}),
        make_process("hash", 0, (50.0, 70.0, 60.0)),
        make_process("hash", 1, (80.0, 42.0)),
    ),
    (make_summary("parse", "time"), make_summary("parse", "instructions"),
     make_summary("hash", "time")),
)
SECOND_RUN = literal_result(
    (make_process("parse", 0, (11.0, 13.0)), make_process("parse", 1, (15.0,))),
    (make_summary("parse", "time"),),
)
EXPECTED = {
    ("first", "parse", "time"): [20.0, 2.5, 9.0],  # 10 20 30 | 1 2 3 4 -> (2+3)/2 | 9
    ("first", "parse", "instructions"): [8.0, 5.5, 1.0],  # 7 8 9 | 5 5 6 6 -> (5+6)/2 | 1
    ("first", "hash", "time"): [60.0, 61.0],  # 50 60 70 | 42 80 -> (42+80)/2
    ("first", "parse", "throughput"): [],  # a metric without statistics was never stored
    ("second", "parse", "time"): [12.0, 15.0],  # 11 13 -> 12 | 15
}


@pytest.fixture
def v2_database(store_url: str) -> Iterator[dict[str, int]]:
    """A version-2 database holding FIRST_RUN and SECOND_RUN; yields their run ids."""
    engine = old_database(store_url, 2)
    run_ids = {
        "first": write_old_run(engine, make_start(commit=SHA_A), FIRST_RUN),
        "second": write_old_run(engine, make_start(commit=SHA_B), SECOND_RUN),
    }
    assert not inspect(engine).has_table("process_summaries")
    engine.dispose()
    yield run_ids


def process_values_from_samples(store: ResultStore, run_id: int, benchmark: str,
                                metric: str) -> list[float]:
    """process_values as perfd computed them up to version 2: medians of the raw samples."""
    per_process: dict[int, list[float]] = {}
    for repetition, _index, value in store.measurements(run_id, benchmark, metric):
        per_process.setdefault(repetition, []).append(value)
    return [median(values) for values in per_process.values()]


# ---------------------------------------------------------------------------- migration 3


def test_version_2_database_keeps_its_process_values_after_db_upgrade(
    store_url: str, v2_database: dict[str, int]
) -> None:
    needs = rf"schema version 2, perfd needs {SCHEMA_VERSION}: run `perfd db upgrade`"
    with pytest.raises(StorageError, match=needs):
        ResultStore.open(store_url)

    store = ResultStore.open_for_upgrade(store_url)
    assert store.upgrade() == (2, SCHEMA_VERSION)
    store.close()

    store = ResultStore.open(store_url)
    for (run, benchmark, metric), expected in EXPECTED.items():
        run_id = v2_database[run]
        assert store.process_values(run_id, benchmark, metric) == expected, (run, benchmark, metric)
        assert process_values_from_samples(store, run_id, benchmark, metric) == expected
    first, second = v2_database["first"], v2_database["second"]
    with store.reading() as r:
        assert r.process_values_for_runs([second, first, 999], "parse", "time") == {
            second: [12.0, 15.0], first: [20.0, 2.5, 9.0], 999: [],
        }
    with store.engine.connect() as conn:
        counts = sorted(conn.execute(
            select(t.process_summaries.c.metric, t.process_summaries.c.n_samples)
        ).all())
    assert counts == sorted([
        ("time", 3), ("time", 4), ("time", 1), ("instructions", 3), ("instructions", 4),
        ("instructions", 1), ("time", 3), ("time", 2), ("time", 2), ("time", 1),
    ])

    # The values come from the summaries alone: without the raw samples they stay the same.
    with store.engine.begin() as conn:
        conn.execute(delete(t.measurements))
    for (run, benchmark, metric), expected in EXPECTED.items():
        assert store.process_values(v2_database[run], benchmark, metric) == expected
    store.close()

    engine = make_engine(store_url)
    assert upgrade(engine) == (SCHEMA_VERSION, SCHEMA_VERSION)
    engine.dispose()


def test_empty_database_gets_process_summaries(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'perfd.db'}")
    assert upgrade(engine) == (0, SCHEMA_VERSION)
    assert inspect(engine).get_pk_constraint("process_summaries")["constrained_columns"] == [
        "process_id", "metric",
    ]
    engine.dispose()


# ---------------------------------------------------------------------------- writing them


def summaries_of(store: ResultStore, run_id: int) -> list[tuple[str, int, str, float, int]]:
    """(benchmark, repetition, metric, median, n_samples) of a run's process summaries."""
    p, s = t.processes, t.process_summaries
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(p.c.benchmark, p.c.repetition, s.c.metric, s.c.median, s.c.n_samples)
            .join(p, p.c.id == s.c.process_id)
            .where(p.c.run_id == run_id)
            .order_by(p.c.benchmark, s.c.metric, p.c.repetition)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_complete_run_writes_a_summary_per_process_and_stored_metric(store_url: str) -> None:
    store = ResultStore.open(store_url)
    run_id = store.begin_run(make_start())
    store.complete_run(run_id, make_result())
    # test_store.PROCESSES: hash_insert (time, throughput), parse_json (time, instructions).
    assert summaries_of(store, run_id) == [
        ("hash_insert", 0, "throughput", median(1e9 / v for v in (100.0, 110.0, 90.0)), 3),
        ("hash_insert", 1, "throughput", median(1e9 / v for v in (105.0, 95.0, 100.0)), 3),
        ("hash_insert", 2, "throughput", median(1e9 / v for v in (120.0, 80.0, 125.0)), 3),
        ("hash_insert", 0, "time", 100.0, 3),
        ("hash_insert", 1, "time", 100.0, 3),
        ("hash_insert", 2, "time", 120.0, 3),
        ("parse_json", 0, "instructions", 901.0, 3),
        ("parse_json", 1, "instructions", 911.0, 3),
        ("parse_json", 2, "instructions", 921.0, 3),
        ("parse_json", 0, "time", 200.0, 3),
        ("parse_json", 1, "time", 215.0, 3),
        ("parse_json", 2, "time", 200.0, 3),
    ]
    for benchmark, metric in (("hash_insert", "time"), ("hash_insert", "throughput"),
                              ("parse_json", "instructions")):
        assert store.process_values(run_id, benchmark, metric) == process_values_from_samples(
            store, run_id, benchmark, metric
        )
    store.close()


def test_refused_complete_run_writes_no_summaries(store_url: str) -> None:
    store = ResultStore.open(store_url)
    run_id = store.begin_run(make_start())
    broken = make_result(statistics=(*test_store.SUMMARIES, test_store.SUMMARIES[0]))
    with pytest.raises(StorageError, match="database refused the data"):
        store.complete_run(run_id, broken)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.process_summaries)).scalar_one() == 0
    store.close()


def test_fail_run_keeps_the_summaries_of_its_processes(store_url: str) -> None:
    store = ResultStore.open(store_url)
    run_id = store.begin_run(make_start())
    store.fail_run(run_id, "harness crashed", processes=PROCESSES[:2])
    # What the kept processes measured: time and their counters (no derived throughput).
    assert summaries_of(store, run_id) == [
        ("hash_insert", 0, "instructions", 2.0, 3),
        ("hash_insert", 0, "time", 100.0, 3),
        ("parse_json", 0, "instructions", 901.0, 3),
        ("parse_json", 0, "time", 200.0, 3),
    ]
    assert store.measurements(run_id, "parse_json", "time") == []
    assert store.statistics(run_id) == []
    store.close()


# ---------------------------------------------------------------------------- no raw samples


def test_history_reads_never_query_measurements(store_url: str) -> None:
    store = ResultStore.open(store_url)
    run_ids = []
    for commit in (SHA_A, SHA_B):
        run_id = store.begin_run(make_start(commit=commit))
        store.complete_run(run_id, make_result())
        run_ids.append(run_id)
    key = SeriesKey("core", "hash_insert", "time", "bench-01-epyc", "hcfg-hash-insert")
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.reading() as r:
            r.list_runs()
            r.get_run(run_ids[0])
            r.statistics(run_ids[0])
            assert r.process_values(run_ids[1], "hash_insert", "time") == [100.0, 100.0, 120.0]
            r.process_values_for_runs(run_ids, "parse_json", "instructions")
            r.runs_for_commit("core", SHA_A, "bench-01-epyc")
            r.environment_hash(run_ids[0])
            assert r.series_keys()
            assert [p.run_id for p in r.series_points(key)] == run_ids
            r.active_alert(key)
            r.active_alerts()
            r.list_alerts()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert statements
    assert not [s for s in statements if "measurements" in s.lower()]
    store.close()
