"""ResultStore gate verdicts (schema 10: gate_verdicts), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfd.errors import NotFoundError, UsageError
from perfd.store import SCHEMA_VERSION, ResultStore, make_engine, upgrade
from perfd.store import tables as t
from perfd.store.gates import GateDraft
from tests.unit import test_store
from tests.unit.conftest import CLOCK_START, FakeClock
from tests.unit.test_store import SHA_A, SHA_B
from tests.unit.test_store_migrations import old_database
from tests.unit.test_store_schema import describe_schema

store_url = test_store.store_url


def draft(**changes) -> GateDraft:
    fields = {"suite": "example", "machine_id": "bench-01", "baseline_commit": SHA_A,
              "current_commit": SHA_B, "verdict": "PASS", "overridden": True,
              "override_reason": "accepted: strict parsing", "override_source": "trailer",
              "summary": {"schema": "perfd-gate/1", "verdict": "PASS", "ratio": 1.0 / 3.0}}
    fields.update(changes)
    return GateDraft(**fields)


def test_a_verdict_is_stored_and_read_back(store: ResultStore, clock: FakeClock) -> None:
    stored = store.save_gate_verdict(draft())
    assert stored.id >= 1 and stored.created_at == CLOCK_START
    assert (stored.verdict, stored.overridden, stored.override_source) == ("PASS", True,
                                                                           "trailer")
    assert stored.override_reason == "accepted: strict parsing"
    assert stored.summary["ratio"] == 1.0 / 3.0  # the document comes back as written
    assert store.gate_verdict(stored.id) == stored
    clock.advance(5)
    blocked = store.save_gate_verdict(draft(verdict="BLOCKED", overridden=False,
                                            override_reason=None, override_source=None))
    other = store.save_gate_verdict(draft(suite="core", current_commit=SHA_A,
                                          baseline_commit=SHA_B))
    assert [v.id for v in store.gate_verdicts()] == [other.id, blocked.id, stored.id]
    assert [v.id for v in store.gate_verdicts(suite="example")] == [blocked.id, stored.id]
    assert [v.id for v in store.gate_verdicts(current_commit=SHA_A)] == [other.id]
    assert [v.id for v in store.gate_verdicts(machine_id="elsewhere")] == []
    assert [v.id for v in store.gate_verdicts(limit=1)] == [other.id]
    assert store.gate_verdicts(suite="example")[0].overridden is False
    with pytest.raises(NotFoundError):
        store.gate_verdict(9999)
    with pytest.raises(UsageError):
        store.gate_verdicts(limit=0)


@pytest.mark.parametrize("changes, message", [
    ({"verdict": "OK"}, "GateDraft.verdict"),
    ({"current_commit": "abc"}, "current_commit"),
    ({"override_source": None}, "go together"),
    ({"override_source": "label"}, "override_source"),
    ({"verdict": "BLOCKED"}, "only a PASS"),
    ({"override_reason": None, "override_source": None}, "only a PASS"),
])
def test_drafts_are_checked(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        draft(**changes)


def test_drafts_need_a_suite_and_an_override_reason() -> None:
    with pytest.raises(UsageError, match="suite"):
        draft(suite=" ")
    with pytest.raises(UsageError, match="reason"):
        draft(override_reason=" ")


def test_migration_10_adds_the_table_of_tables_py(tmp_path: Path) -> None:
    old = old_database(f"sqlite:///{tmp_path / 'old.db'}", 9)
    assert upgrade(old) == (9, SCHEMA_VERSION)
    declared = make_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    t.metadata.create_all(declared)
    schema = describe_schema(old)
    assert schema == describe_schema(declared)
    assert "gate_verdicts" in schema
    store = ResultStore(old)
    assert store.save_gate_verdict(draft()).id == 1
