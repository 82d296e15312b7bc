"""ResultStore reference builds (history with who/why) and run ratios, migration 6."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from perfd.errors import ConflictError, NotFoundError, UsageError
from perfd.store import RatioRecord, ReferenceRecord, ResultStore, make_engine, upgrade
from perfd.store import tables as t
from tests.unit import test_store
from tests.unit.test_store import HOST, SHA_A, SHA_B, make_result, make_start
from tests.unit.test_store_migrations import old_database
from tests.unit.test_store_schema import describe_schema

store_url = test_store.store_url

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
# Not exactly representable in decimal: JSON must still give back the very same floats.
PAIRS = (1.0 / 3.0, 0.1 + 0.2, 1.0000000000000002, 2.5e-7 * 4e6)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[ResultStore]:
    store = ResultStore.open(store_url, clock=clock)
    yield store
    store.close()


def completed_run(store: ResultStore, commit: str = SHA_A) -> int:
    run_id = store.begin_run(make_start(commit=commit), hostname=HOST)
    store.complete_run(run_id, make_result())
    return run_id


def make_ratio(run_id: int, reference_id: int, **changes: Any) -> RatioRecord:
    values: dict[str, Any] = {
        "run_id": run_id,
        "reference_run_id": None,
        "reference_id": reference_id,
        "benchmark": "hash_insert",
        "metric": "time",
        "ratio": 1.05,
        "ci_low": 1.01,
        "ci_high": 1.09,
        "n_pairs": len(PAIRS),
        "pair_ratios": PAIRS,
    }
    values.update(changes)
    return RatioRecord(**values)


# ----------------------------------------------------------------------------- references


def test_setting_twice_keeps_history_and_the_newest_is_current(
    store: ResultStore, clock: FakeClock
) -> None:
    first = store.set_reference("core", "main", "v1.2", SHA_A, set_by="ana",
                                reason="release 1.2 is the floor")
    clock.now = T0 + timedelta(hours=1)
    second = store.set_reference("core", "main", "v1.3", SHA_B, set_by="bo",
                                 reason="1.3 shipped")
    store.set_reference("other", "main", "v9", SHA_A, set_by="cy", reason="other suite")

    assert second == ReferenceRecord(
        id=second.id, suite="core", branch="main", rev="v1.3", commit_sha=SHA_B,
        set_at=T0 + timedelta(hours=1), set_by="bo", reason="1.3 shipped",
    )
    assert store.current_reference("core", "main") == second
    assert store.current_reference("core", "release") is None
    assert store.list_references("core") == [second, first]
    assert [(r.set_by, r.reason) for r in store.list_references("core")] == [
        ("bo", "1.3 shipped"), ("ana", "release 1.2 is the floor"),
    ]
    assert len(store.list_references()) == 3
    with store.reading() as r:
        assert r.current_reference("core", "main") == second
        assert r.list_references("core") == [second, first]


@pytest.mark.parametrize("field", ["reason", "set_by"])
def test_a_blank_reason_or_actor_is_refused(store: ResultStore, field: str) -> None:
    kwargs = {"set_by": "ana", "reason": "why not", field: "  "}
    with pytest.raises(UsageError, match=field.replace("set_by", "actor")):
        store.set_reference("core", "main", "v1.2", SHA_A, **kwargs)
    assert store.list_references() == []


def test_a_malformed_commit_is_refused(store: ResultStore) -> None:
    with pytest.raises(ValueError, match="40 lowercase hex"):
        store.set_reference("core", "main", "v1.2", "ABC", set_by="ana", reason="r")


# ----------------------------------------------------------------------------- ratios


def test_ratios_round_trip_and_only_asked_runs_come_back(store: ResultStore) -> None:
    ref = store.set_reference("core", "main", "v1.2", SHA_A, set_by="ana", reason="floor")
    reference_run = completed_run(store, SHA_A)
    run_1, run_2, run_3 = (completed_run(store, SHA_B) for _ in range(3))
    ratios = [
        make_ratio(run_1, ref.id, reference_run_id=reference_run),
        make_ratio(run_2, ref.id, ratio=0.9, ci_low=0.8, ci_high=1.0),
        make_ratio(run_3, ref.id),
        make_ratio(run_1, ref.id, metric="throughput", ratio=0.5, ci_low=0.4, ci_high=0.6),
    ]
    store.save_ratios(ratios)

    with store.reading() as r:
        got = r.ratios_for_runs([run_1, run_2, 999], "hash_insert", "time")
    assert got == {run_1: ratios[0], run_2: ratios[1]}
    assert got[run_1].pair_ratios == PAIRS  # the same floats, bit for bit, as a tuple
    assert isinstance(got[run_1].pair_ratios, tuple)
    assert got[run_1].reference_run_id == reference_run
    with store.reading() as r:
        assert r.ratios_for_runs([], "hash_insert", "time") == {}


def test_ratios_of_an_unknown_run_or_reference_are_refused(store: ResultStore) -> None:
    ref = store.set_reference("core", "main", "v1.2", SHA_A, set_by="ana", reason="floor")
    run_id = completed_run(store)
    with pytest.raises(NotFoundError, match="no run with id 999"):
        store.save_ratios([make_ratio(run_id, ref.id), make_ratio(999, ref.id)])
    with pytest.raises(NotFoundError, match="no run with id 998"):
        store.save_ratios([make_ratio(run_id, ref.id, reference_run_id=998)])
    with pytest.raises(NotFoundError, match=f"no reference with id {ref.id + 1}"):
        store.save_ratios([make_ratio(run_id, ref.id + 1)])
    with store.reading() as r:  # nothing of the refused batches was stored
        assert r.ratios_for_runs([run_id], "hash_insert", "time") == {}


def test_a_ratio_stored_twice_is_a_conflict(store: ResultStore) -> None:
    ref = store.set_reference("core", "main", "v1.2", SHA_A, set_by="ana", reason="floor")
    run_id = completed_run(store)
    store.save_ratios([make_ratio(run_id, ref.id)])
    with pytest.raises(ConflictError, match=f"run {run_id} already has a ratio"):
        store.save_ratios([make_ratio(run_id, ref.id)])


def test_a_ratio_record_checks_its_pairs() -> None:
    with pytest.raises(ValueError, match="n_pairs"):
        make_ratio(1, 1, n_pairs=3)
    with pytest.raises(ValueError, match="pair_ratios"):
        make_ratio(1, 1, pair_ratios=(1.0, float("nan"), 1.0, 1.0))
    assert make_ratio(1, 1, pair_ratios=list(PAIRS)).pair_ratios == PAIRS


def test_deleting_a_run_deletes_its_ratios_and_unlinks_it_as_reference_run(
    store: ResultStore,
) -> None:
    ref = store.set_reference("core", "main", "v1.2", SHA_A, set_by="ana", reason="floor")
    reference_run = completed_run(store, SHA_A)
    run_1, run_2 = completed_run(store, SHA_B), completed_run(store, SHA_B)
    store.save_ratios([make_ratio(run_1, ref.id, reference_run_id=reference_run),
                       make_ratio(run_2, ref.id, reference_run_id=reference_run)])

    with store.engine.begin() as conn:
        conn.execute(delete(t.benchmark_runs).where(t.benchmark_runs.c.id == run_1))
        conn.execute(delete(t.benchmark_runs).where(t.benchmark_runs.c.id == reference_run))
        remaining = conn.execute(select(func.count()).select_from(t.run_ratios)).scalar_one()
    assert remaining == 1
    with store.reading() as r:
        got = r.ratios_for_runs([run_1, run_2], "hash_insert", "time")
    assert list(got) == [run_2]
    assert got[run_2].reference_run_id is None


# ----------------------------------------------------------------------------- migration


def test_migration_6_adds_the_tables_of_tables_py(tmp_path: Path) -> None:
    old = old_database(f"sqlite:///{tmp_path / 'old.db'}", 5)
    assert upgrade(old) == (5, 6)
    declared = make_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    t.metadata.create_all(declared)
    schema = describe_schema(old)
    assert schema == describe_schema(declared)
    assert schema["run_ratios"]["unique"] == [
        ("uq_run_ratios_run_id_benchmark_metric", ("run_id", "benchmark", "metric"))
    ]
    old.dispose()
    declared.dispose()
