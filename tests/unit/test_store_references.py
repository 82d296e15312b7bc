"""ResultStore reference builds (history with who/why), run ratios and the links between
successive references, migrations 6 and 7."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select

from perfd.errors import ConflictError, NotFoundError, UsageError
from perfd.store import (
    SCHEMA_VERSION,
    LinkMeasure,
    LinkRecord,
    RatioRecord,
    ReferenceRecord,
    ResultStore,
    make_engine,
    upgrade,
)
from perfd.store import tables as t
from tests.unit import test_store
from tests.unit.conftest import CLOCK_START, FakeClock
from tests.unit.test_store import HOST, SHA_A, SHA_B, make_result, make_start
from tests.unit.test_store_migrations import FIRST_RUN, old_database, write_old_run
from tests.unit.test_store_schema import describe_schema

# The databases test_store.py runs against (SQLite; PostgreSQL when configured); ``clock``
# and ``store`` (on that clock) come from conftest.py.
store_url = test_store.store_url

T0 = CLOCK_START
SHA_C = "c3" * 20
# Not exactly representable in decimal: JSON must still give back the very same floats.
PAIRS = (1.0 / 3.0, 0.1 + 0.2, 1.0000000000000002, 2.5e-7 * 4e6)


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


def make_link(benchmark: str = "hash_insert", metric: str = "time", **changes: Any) -> LinkMeasure:
    values: dict[str, Any] = {
        "benchmark": benchmark,
        "metric": metric,
        "factor": 0.1 + 0.7,  # 0.7999999999999999
        "ci_low": 0.75,
        "ci_high": 0.85,
        "n_pairs": len(PAIRS),
        "pair_ratios": PAIRS,
        "previous_run_id": None,
        "reference_run_id": None,
    }
    values.update(changes)
    return LinkMeasure(**values)


def stored(link: LinkMeasure, link_id: int, reference_id: int,
           previous_reference_id: int) -> LinkRecord:
    """The LinkRecord ``link`` becomes when stored with reference ``reference_id``."""
    return LinkRecord(
        id=link_id, reference_id=reference_id, previous_reference_id=previous_reference_id,
        benchmark=link.benchmark, metric=link.metric, factor=link.factor, ci_low=link.ci_low,
        ci_high=link.ci_high, n_pairs=link.n_pairs, pair_ratios=link.pair_ratios,
        previous_run_id=link.previous_run_id, reference_run_id=link.reference_run_id,
    )


def count_rows(store: ResultStore) -> tuple[int, int]:
    """(reference settings, reference links) stored."""
    with store.engine.connect() as conn:
        references, links = (
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (t.suite_references, t.reference_links)
        )
    return references, links


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
    kwargs: dict[str, Any] = {"set_by": "ana", "reason": "why not", field: "  "}
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


# ----------------------------------------------------------------------------- links


def test_links_are_stored_with_the_new_reference(store: ResultStore, clock: FakeClock) -> None:
    first = store.set_reference("core", "main", "v1.2", SHA_A, set_by="ana", reason="floor")
    previous_run, reference_run = completed_run(store, SHA_A), completed_run(store, SHA_B)
    links = [
        make_link("parse_json", "time", previous_run_id=previous_run,
                  reference_run_id=reference_run),
        make_link("hash_insert", "time", factor=1.25, ci_low=1.2, ci_high=1.3),
        make_link("hash_insert", "instructions", factor=1.0 / 3.0, ci_low=0.3, ci_high=0.4),
    ]
    clock.advance(60)
    second = store.set_reference("core", "main", "v1.3", SHA_B, set_by="bo", reason="1.3 shipped",
                                 links=links, previous_reference_id=first.id)

    assert store.current_reference("core", "main") == second
    got = store.list_links()
    # Ordered by benchmark and metric; the ids are the insertion order.
    assert [(link.benchmark, link.metric) for link in got] == [
        ("hash_insert", "instructions"), ("hash_insert", "time"), ("parse_json", "time"),
    ]
    by_key = {(link.benchmark, link.metric): link for link in got}
    for link in links:
        record = by_key[link.benchmark, link.metric]
        assert record == stored(link, record.id, second.id, first.id)
        assert record.pair_ratios == PAIRS  # the same floats, bit for bit, as a tuple
    assert by_key["hash_insert", "instructions"].factor == 1.0 / 3.0
    assert by_key["hash_insert", "time"].factor == 1.25
    assert by_key["parse_json", "time"].factor == 0.1 + 0.7
    assert by_key["parse_json", "time"].previous_run_id == previous_run
    assert by_key["parse_json", "time"].reference_run_id == reference_run


def test_links_are_listed_by_suite_in_reference_order(store: ResultStore) -> None:
    core_1 = store.set_reference("core", "main", "v1", SHA_A, set_by="ana", reason="floor")
    other_1 = store.set_reference("other", "main", "v1", SHA_A, set_by="ana", reason="floor")
    core_2 = store.set_reference("core", "main", "v2", SHA_B, set_by="ana", reason="v2",
                                 links=[make_link()], previous_reference_id=core_1.id)
    other_2 = store.set_reference("other", "main", "v2", SHA_B, set_by="ana", reason="v2",
                                  links=[make_link()], previous_reference_id=other_1.id)
    core_3 = store.set_reference("core", "main", "v3", SHA_C, set_by="ana", reason="v3",
                                 links=[make_link("b"), make_link("a")],
                                 previous_reference_id=core_2.id)

    assert [(link.reference_id, link.benchmark) for link in store.list_links("core")] == [
        (core_2.id, "hash_insert"), (core_3.id, "a"), (core_3.id, "b"),
    ]
    assert [link.previous_reference_id for link in store.list_links("core")] == [
        core_1.id, core_2.id, core_2.id,
    ]
    with store.reading() as r:
        assert [link.reference_id for link in r.list_links("other")] == [other_2.id]
        assert len(r.list_links()) == 4
        assert r.list_links("nope") == []


def test_a_reference_that_moved_meanwhile_stores_neither_reference_nor_links(
    store: ResultStore,
) -> None:
    first = store.set_reference("core", "main", "v1", SHA_A, set_by="ana", reason="floor")
    # Someone moves the reference while the link to ``first`` is being measured.
    moved = store.set_reference("core", "main", "v2", SHA_B, set_by="bo", reason="moved")
    before = store.list_references()

    with pytest.raises(ConflictError,
                       match=rf"core on main moved meanwhile \(now id {moved.id}\), measure"):
        store.set_reference("core", "main", "v3", SHA_C, set_by="cy", reason="linked",
                            links=[make_link()], previous_reference_id=first.id)
    assert store.list_references() == before
    assert store.list_links() == []
    assert count_rows(store) == (2, 0)


def test_links_from_a_branch_without_reference_are_a_conflict(store: ResultStore) -> None:
    other = store.set_reference("core", "release", "v1", SHA_A, set_by="ana", reason="floor")
    with pytest.raises(ConflictError, match=r"core on main moved meanwhile \(now none set\)"):
        store.set_reference("core", "main", "v1", SHA_B, set_by="ana", reason="linked",
                            links=[make_link()], previous_reference_id=other.id)
    assert count_rows(store) == (1, 0)


def test_a_link_given_twice_or_of_an_unknown_run_stores_nothing(store: ResultStore) -> None:
    first = store.set_reference("core", "main", "v1", SHA_A, set_by="ana", reason="floor")
    with pytest.raises(ConflictError, match="link of hash_insert/time given twice"):
        store.set_reference("core", "main", "v2", SHA_B, set_by="ana", reason="twice",
                            links=[make_link(), make_link("parse_json"), make_link(factor=2.0)],
                            previous_reference_id=first.id)
    with pytest.raises(NotFoundError, match="no run with id 999"):
        store.set_reference("core", "main", "v2", SHA_B, set_by="ana", reason="unknown run",
                            links=[make_link(reference_run_id=999)],
                            previous_reference_id=first.id)
    assert count_rows(store) == (1, 0)
    assert store.current_reference("core", "main") == first


def test_links_need_the_previous_reference(store: ResultStore) -> None:
    store.set_reference("core", "main", "v1", SHA_A, set_by="ana", reason="floor")
    with pytest.raises(UsageError, match="need the previous reference's id"):
        store.set_reference("core", "main", "v2", SHA_B, set_by="ana", reason="no previous",
                            links=[make_link()])
    assert count_rows(store) == (1, 0)


def test_a_link_measure_checks_its_pairs() -> None:
    with pytest.raises(ValueError, match=r"LinkMeasure\.factor: must be finite and > 0"):
        make_link(factor=0.0)
    with pytest.raises(ValueError, match=r"LinkMeasure\.ci_low: must be <= ci_high"):
        make_link(ci_low=0.9)
    with pytest.raises(ValueError, match=r"LinkMeasure\.n_pairs"):
        make_link(n_pairs=3)
    assert make_link(pair_ratios=list(PAIRS)).pair_ratios == PAIRS


def test_deleting_the_paired_runs_unlinks_them_and_keeps_the_link(store: ResultStore) -> None:
    first = store.set_reference("core", "main", "v1", SHA_A, set_by="ana", reason="floor")
    previous_run, reference_run = completed_run(store, SHA_A), completed_run(store, SHA_B)
    store.set_reference("core", "main", "v2", SHA_B, set_by="ana", reason="v2",
                        links=[make_link(previous_run_id=previous_run,
                                         reference_run_id=reference_run)],
                        previous_reference_id=first.id)
    with store.engine.begin() as conn:
        conn.execute(delete(t.benchmark_runs))
    [link] = store.list_links()
    assert (link.previous_run_id, link.reference_run_id) == (None, None)
    assert link.factor == 0.1 + 0.7


# ----------------------------------------------------------------------------- migrations


def test_migrations_6_and_7_add_the_tables_of_tables_py(tmp_path: Path) -> None:
    old = old_database(f"sqlite:///{tmp_path / 'old.db'}", 5)
    assert upgrade(old) == (5, SCHEMA_VERSION)
    declared = make_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    t.metadata.create_all(declared)
    schema = describe_schema(old)
    assert schema == describe_schema(declared)
    assert schema["run_ratios"]["unique"] == [
        ("uq_run_ratios_run_id_benchmark_metric", ("run_id", "benchmark", "metric"))
    ]
    assert schema["reference_links"]["unique"] == [
        ("uq_reference_links_reference_id_benchmark_metric",
         ("reference_id", "benchmark", "metric"))
    ]
    old.dispose()
    declared.dispose()


def test_version_6_database_keeps_its_references_and_ratios_after_db_upgrade(
    store_url: str,
) -> None:
    old = old_database(store_url, 6)
    run_id = write_old_run(old, make_start(commit=SHA_B), FIRST_RUN)
    with old.begin() as conn:
        reference_id = conn.execute(
            insert(t.suite_references)
            .values(suite="core", branch="main", rev="v1.2", commit_sha=SHA_A, set_at=T0,
                    set_by="ana", reason="floor")
            .returning(t.suite_references.c.id)
        ).scalar_one()
        ratio = make_ratio(run_id, reference_id, benchmark="parse", ratio=1.0 / 3.0,
                           ci_low=0.3, ci_high=0.4)
        # Plain inserts: suite_references and run_ratios have not changed since schema 6.
        conn.execute(insert(t.run_ratios).values(
            run_id=run_id, reference_run_id=None, reference_id=reference_id,
            benchmark=ratio.benchmark, metric=ratio.metric, ratio=ratio.ratio,
            ci_low=ratio.ci_low, ci_high=ratio.ci_high, n_pairs=ratio.n_pairs,
            pair_ratios=json.dumps(list(PAIRS)),
        ))
    assert upgrade(old) == (6, SCHEMA_VERSION)
    old.dispose()

    store = ResultStore.open(store_url)
    reference = ReferenceRecord(id=reference_id, suite="core", branch="main", rev="v1.2",
                                commit_sha=SHA_A, set_at=T0, set_by="ana", reason="floor")
    assert store.list_references() == [reference]
    with store.reading() as r:
        assert r.ratios_for_runs([run_id], "parse", "time") == {run_id: ratio}
    assert store.list_links() == []
    # The old reference is the one the first link starts from.
    second = store.set_reference("core", "main", "v1.3", SHA_B, set_by="bo", reason="1.3",
                                 links=[make_link()], previous_reference_id=reference_id)
    assert [link.previous_reference_id for link in store.list_links("core")] == [reference_id]
    assert store.current_reference("core", "main") == second
    store.close()
