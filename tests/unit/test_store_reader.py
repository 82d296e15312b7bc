"""store.reading(): one connection, one snapshot for every read of a flow; batch reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from perfd.errors import NotFoundError
from perfd.model import RunStatus
from perfd.store import Reader, ResultStore, SeriesKey
from tests.unit import test_store
from tests.unit.test_store import HOST, SHA_A, SHA_B, T0, make_result, make_start
from tests.unit.test_store_alerts import KEY, MACHINE_KEY, OTHER_KEY, make_draft

# The databases test_store.py runs against (SQLite; PostgreSQL when configured).
store_url = test_store.store_url


@pytest.fixture
def store(store_url: str) -> Iterator[ResultStore]:
    store = ResultStore.open(store_url)
    yield store
    store.close()


def completed_run(store: ResultStore, commit: str = SHA_A, hours: int = 0) -> int:
    run_id = store.begin_run(make_start(commit=commit, started_at=T0 + timedelta(hours=hours)),
                             hostname=HOST)
    store.complete_run(run_id, make_result())
    return run_id


# ---------------------------------------------------------------------------- one snapshot


def test_a_reading_block_does_not_see_runs_committed_after_its_first_read(
    store_url: str, store: ResultStore
) -> None:
    first = completed_run(store)
    other = ResultStore.open(store_url)  # another process
    try:
        with store.reading() as r:
            assert [run.id for run in r.list_runs()] == [first]
            second = other.begin_run(make_start(commit=SHA_B, started_at=T0 + timedelta(hours=1)))
            other.complete_run(second, make_result())
            assert other.get_run(second).info.status is RunStatus.COMPLETED  # committed

            # Still the snapshot of the first read, for every kind of query in the block.
            assert [run.id for run in r.list_runs()] == [first]
            with pytest.raises(NotFoundError, match=f"no run with id {second}"):
                r.get_run(second)
            assert r.runs_for_commit("core", SHA_B, "bench-01-epyc") == []
            assert [p.run_id for p in r.series_points(KEY)] == [first]
            assert r.process_values(second, "hash_insert", "time") == []

        with store.reading() as r:
            assert [run.id for run in r.list_runs()] == [second, first]
            assert [p.run_id for p in r.series_points(KEY)] == [first, second]
            assert r.process_values(second, "hash_insert", "time") == [100.0, 100.0, 120.0]
    finally:
        other.close()


def test_a_reading_block_does_not_see_alert_changes_of_others(
    store_url: str, store: ResultStore
) -> None:
    alert_id = store.open_alert(make_draft())
    other = ResultStore.open(store_url)
    try:
        with store.reading() as r:
            assert r.active_alerts()[KEY].id == alert_id
            other.transition(alert_id, "RESOLVED", actor="alice", reason="fixed")
            assert r.active_alert(KEY) is not None
            assert r.get_alert(alert_id)[0].state == "OPEN"
        assert store.active_alert(KEY) is None
    finally:
        other.close()


def test_one_connection_per_block_released_at_its_end(tmp_path: Path) -> None:
    store = ResultStore.open(f"sqlite:///{tmp_path / 'perfd.db'}")
    pool = store.engine.pool
    with store.reading() as r:
        assert isinstance(r, Reader)
        # Nothing asked yet, so nothing held.
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
        r.list_runs()
        r.list_alerts()
        r.series_keys()
        assert pool.checkedout() == 1  # type: ignore[attr-defined]
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match=r"only valid inside its `with store.reading\(\)` block"):
        r.list_runs()
    store.close()


def test_facade_reads_match_the_readers(store: ResultStore) -> None:
    run_id = completed_run(store)
    alert_id = store.open_alert(make_draft(baseline_run_id=run_id, last_run_id=run_id))
    with store.reading() as r:
        assert store.list_runs(suite="core") == r.list_runs(suite="core")
        assert store.get_run(run_id) == r.get_run(run_id)
        assert store.statistics(run_id) == r.statistics(run_id)
        assert store.process_values(run_id, "parse_json", "time") == r.process_values(
            run_id, "parse_json", "time"
        )
        assert store.runs_for_commit("core", SHA_A, "bench-01-epyc") == r.runs_for_commit(
            "core", SHA_A, "bench-01-epyc"
        )
        assert store.environment_hash(run_id) == r.environment_hash(run_id)
        assert store.series_keys() == r.series_keys()
        assert store.series_points(KEY) == r.series_points(KEY)
        assert store.active_alert(KEY) == r.active_alert(KEY)
        assert store.list_alerts() == r.list_alerts()
        assert store.get_alert(alert_id) == r.get_alert(alert_id)


# ---------------------------------------------------------------------------- batch reads


def test_active_alerts_maps_each_series_to_its_open_or_acknowledged_alert(
    store: ResultStore,
) -> None:
    key = store.open_alert(make_draft())
    other = store.open_alert(make_draft(OTHER_KEY))
    machine = store.open_alert(make_draft(MACHINE_KEY))
    elsewhere_key = replace(KEY, machine_id="bench-02")
    elsewhere = store.open_alert(make_draft(elsewhere_key))
    io_key = SeriesKey("io", "read_4k", "time", "bench-01-epyc", "c")
    io = store.open_alert(make_draft(io_key))
    store.transition(other, "ACKNOWLEDGED", actor="alice", reason="")
    closed = store.open_alert(make_draft(replace(KEY, config_hash="old")))
    store.transition(closed, "RESOLVED", actor="alice", reason="")

    with store.reading() as r:
        everything = r.active_alerts()
        assert {series: alert.id for series, alert in everything.items()} == {
            KEY: key, OTHER_KEY: other, MACHINE_KEY: machine, elsewhere_key: elsewhere,
            io_key: io,
        }
        assert everything[OTHER_KEY].state == "ACKNOWLEDGED"
        assert everything[KEY] == r.active_alert(KEY)
        assert set(r.active_alerts(suite="core", machine_id="bench-01-epyc")) == {
            KEY, OTHER_KEY, MACHINE_KEY,
        }
        assert set(r.active_alerts(machine_id="bench-02")) == {elsewhere_key}
        assert set(r.active_alerts("io")) == {io_key}
        assert r.active_alerts(suite="nope") == {}


def test_process_values_for_runs_reads_several_runs_at_once(store: ResultStore) -> None:
    first = completed_run(store)
    second = completed_run(store, SHA_B, hours=1)
    with store.reading() as r:
        values = r.process_values_for_runs([second, first, 404, second], "hash_insert", "time")
        assert values == {second: [100.0, 100.0, 120.0], first: [100.0, 100.0, 120.0], 404: []}
        assert list(values) == [second, first, 404]  # the order asked, each id once
        assert values[first] == r.process_values(first, "hash_insert", "time")
        assert r.process_values_for_runs([first], "hash_insert", "instructions") == {first: []}
        assert r.process_values_for_runs([], "hash_insert", "time") == {}
