"""ResultStore alerts: lifecycle with who/when/why, one active alert per series, migration 2."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from perfd.errors import UsageError
from perfd.model import RunStatus
from perfd.store import (
    ACTIVE_STATES,
    SCHEMA_VERSION,
    Alert,
    AlertDraft,
    AlertEvent,
    ResultStore,
    SeriesKey,
    make_engine,
    upgrade,
)
from perfd.store import tables as t
from tests.unit import test_store
from tests.unit.conftest import CLOCK_START, FakeClock
from tests.unit.test_store import (
    HOST,
    SHA_A,
    SHA_B,
    make_result,
    make_start,
)
from tests.unit.test_store_migrations import old_database, write_old_run

# The databases test_store.py runs against (SQLite; PostgreSQL when configured).
store_url = test_store.store_url

T0 = CLOCK_START
SHA_C = "c3" * 20
KEY = SeriesKey("core", "hash_insert", "time", "bench-01-epyc", "hcfg-hash-insert")
OTHER_KEY = SeriesKey("core", "parse_json", "time", "bench-01-epyc", "hcfg-parse")
MACHINE_KEY = SeriesKey("core", "", "time", "bench-01-epyc", "cfg0123456789abc")


def make_draft(series: SeriesKey = KEY, **changes: Any) -> AlertDraft:
    values: dict[str, Any] = {
        "kind": "code" if series.benchmark else "infrastructure",
        "series": series,
        "baseline_commit": SHA_A,
        "first_bad_commit": SHA_B,
        "baseline_run_id": None,
        "last_run_id": None,
        "change_pct": 12.5,
        "confidence": "HIGH",
        "p_value": 0.001,
        "reason": "median 100 ns -> 112.5 ns (+12.5 %), Mann-Whitney p=0.001",
    }
    values.update(changes)
    return AlertDraft(**values)


def snapshot(store: ResultStore) -> tuple[list[Alert], int]:
    """Every alert and the number of events: what a refused call must leave unchanged."""
    with store.engine.connect() as conn:
        n_events = conn.execute(select(func.count()).select_from(t.alert_events)).scalar_one()
    return store.list_alerts(limit=1000), n_events


# ---------------------------------------------------------------------------- lifecycle


def test_open_acknowledge_resolve_records_who_when_why(store: ResultStore, clock: FakeClock) -> None:
    alert_id = store.open_alert(make_draft())
    opened = store.get_alert(alert_id)[0]
    assert opened == Alert(
        id=alert_id,
        created_at=T0,
        updated_at=T0,
        kind="code",
        state="OPEN",
        series=KEY,
        baseline_commit=SHA_A,
        first_bad_commit=SHA_B,
        last_commit=SHA_B,
        baseline_run_id=None,
        last_run_id=None,
        change_pct=12.5,
        confidence="HIGH",
        p_value=0.001,
        reason="median 100 ns -> 112.5 ns (+12.5 %), Mann-Whitney p=0.001",
        runs_seen=1,
        parent_alert_id=None,
        evidence_path=None,
    )
    assert opened.created_at.tzinfo is UTC and opened.active

    acked_at = clock.advance(30)
    acked = store.transition(alert_id, "ACKNOWLEDGED", actor="alice", reason="bisecting")
    assert (acked.state, acked.updated_at, acked.created_at) == ("ACKNOWLEDGED", acked_at, T0)
    assert store.active_alert(KEY) == acked

    resolved_at = clock.advance(90)
    resolved = store.transition(
        alert_id, "resolved", actor="alice", reason="fixed by c3c3c3c (hash seed)"
    )
    assert resolved.state == "RESOLVED" and not resolved.active
    assert store.active_alert(KEY) is None

    alert, events = store.get_alert(alert_id)
    assert alert == resolved
    assert events == [
        AlertEvent(T0, "perfd", None, "OPEN", opened.reason),
        AlertEvent(acked_at, "alice", "OPEN", "ACKNOWLEDGED", "bisecting"),
        AlertEvent(resolved_at, "alice", "ACKNOWLEDGED", "RESOLVED", "fixed by c3c3c3c (hash seed)"),
    ]
    assert all(event.at.tzinfo is UTC for event in events)


@pytest.mark.parametrize("to_state", ["RESOLVED", "FALSE_POSITIVE", "INVALID"])
def test_open_alert_can_close_without_acknowledgement(store: ResultStore, to_state: str) -> None:
    alert_id = store.open_alert(make_draft(), actor="ci")
    alert = store.transition(alert_id, to_state, actor="bob", reason="seen on the dashboard")
    assert alert.state == to_state
    events = store.get_alert(alert_id)[1]
    assert [(e.actor, e.from_state, e.to_state) for e in events] == [
        ("ci", None, "OPEN"), ("bob", "OPEN", to_state),
    ]


def test_resolved_may_have_an_empty_reason(store: ResultStore) -> None:
    alert_id = store.open_alert(make_draft())
    assert store.transition(alert_id, "RESOLVED", actor="perfd", reason="").state == "RESOLVED"


def test_downstream_names_its_parent(store: ResultStore) -> None:
    machine = store.open_alert(make_draft(MACHINE_KEY, change_pct=30.0))
    code = store.open_alert(make_draft())
    store.transition(code, "ACKNOWLEDGED", actor="alice", reason="")

    alert = store.transition(
        code, "DOWNSTREAM", actor="alice", reason="the governor changed", parent_alert_id=machine
    )
    assert (alert.state, alert.parent_alert_id) == ("DOWNSTREAM", machine)
    assert store.get_alert(code)[1][-1] == AlertEvent(
        T0, "alice", "ACKNOWLEDGED", "DOWNSTREAM", "the governor changed"
    )
    # A parent may be closed already; it is still the cause.
    store.transition(machine, "RESOLVED", actor="bob", reason="governor back to performance")
    other = store.open_alert(make_draft(OTHER_KEY))
    store.transition(other, "DOWNSTREAM", actor="bob", reason="same cause", parent_alert_id=machine)
    assert store.get_alert(other)[0].parent_alert_id == machine


# ---------------------------------------------------------------------------- refusals


def _closed(store: ResultStore, to_state: str) -> int:
    alert_id = store.open_alert(make_draft())
    parent = None
    if to_state == "DOWNSTREAM":
        parent = store.open_alert(make_draft(OTHER_KEY))
    store.transition(alert_id, to_state, actor="alice", reason="why", parent_alert_id=parent)
    return alert_id


@pytest.mark.parametrize("closed_state", ["RESOLVED", "FALSE_POSITIVE", "INVALID", "DOWNSTREAM"])
@pytest.mark.parametrize("to_state", ["OPEN", "ACKNOWLEDGED", "RESOLVED", "INVALID"])
def test_terminal_states_are_final(store: ResultStore, closed_state: str, to_state: str) -> None:
    alert_id = _closed(store, closed_state)
    before = snapshot(store)
    with pytest.raises(UsageError) as err:
        store.transition(alert_id, to_state, actor="alice", reason="reopen")
    assert str(err.value) == f"alert {alert_id} is {closed_state}: a new regression opens a new alert"
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("from_state", "to_state", "kwargs", "message"),
    [
        ("OPEN", "OPEN", {}, "alert 1 is OPEN: it can move to ACKNOWLEDGED, RESOLVED, "
         "FALSE_POSITIVE, INVALID, DOWNSTREAM, not OPEN"),
        ("ACKNOWLEDGED", "ACKNOWLEDGED", {}, "alert 1 is ACKNOWLEDGED: it can move to RESOLVED, "
         "FALSE_POSITIVE, INVALID, DOWNSTREAM, not ACKNOWLEDGED"),
        ("ACKNOWLEDGED", "OPEN", {}, "not OPEN"),
        ("OPEN", "CLOSED", {}, "alert state must be one of OPEN, ACKNOWLEDGED, RESOLVED, "
         "FALSE_POSITIVE, INVALID, DOWNSTREAM, got 'CLOSED'"),
        ("OPEN", "DOWNSTREAM", {}, "moving alert 1 to DOWNSTREAM needs the parent alert"),
        ("OPEN", "DOWNSTREAM", {"parent_alert_id": 1}, "alert 1 cannot be DOWNSTREAM of itself"),
        ("OPEN", "DOWNSTREAM", {"parent_alert_id": 99}, "no alert with id 99 (parent of alert 1)"),
        ("OPEN", "RESOLVED", {"parent_alert_id": 2},
         "parent alert 2: only a DOWNSTREAM alert has a parent, not a RESOLVED one"),
        ("OPEN", "FALSE_POSITIVE", {"reason": ""}, "moving alert 1 to FALSE_POSITIVE needs a reason"),
        ("ACKNOWLEDGED", "INVALID", {"reason": "  "}, "moving alert 1 to INVALID needs a reason"),
        ("OPEN", "DOWNSTREAM", {"reason": "", "parent_alert_id": 2},
         "moving alert 1 to DOWNSTREAM needs a reason"),
        ("OPEN", "RESOLVED", {"actor": " "}, "an alert change needs an actor"),
    ],
)
def test_forbidden_transitions_write_nothing(
    store: ResultStore, from_state: str, to_state: str, kwargs: dict[str, Any], message: str
) -> None:
    assert store.open_alert(make_draft()) == 1
    assert store.open_alert(make_draft(OTHER_KEY)) == 2
    if from_state == "ACKNOWLEDGED":
        store.transition(1, "ACKNOWLEDGED", actor="alice", reason="")
    before = snapshot(store)
    arguments: dict[str, Any] = {"actor": "alice", "reason": "because", **kwargs}
    with pytest.raises(UsageError) as err:
        store.transition(1, to_state, **arguments)
    assert message in str(err.value)
    assert snapshot(store) == before


def test_downstream_cycles_are_refused(store: ResultStore) -> None:
    first = store.open_alert(make_draft())
    second = store.open_alert(make_draft(OTHER_KEY))
    store.transition(second, "DOWNSTREAM", actor="alice", reason="same", parent_alert_id=first)
    with pytest.raises(UsageError, match=f"alert {second} already follows from alert {first}"):
        store.transition(first, "DOWNSTREAM", actor="alice", reason="same", parent_alert_id=second)
    assert store.get_alert(first)[0].state == "OPEN"


def test_unknown_alert_ids_are_usage_errors(store: ResultStore) -> None:
    message = "no alert with id 999"
    with pytest.raises(UsageError, match=message):
        store.transition(999, "RESOLVED", actor="alice", reason="")
    with pytest.raises(UsageError, match=message):
        store.get_alert(999)
    with pytest.raises(UsageError, match=message):
        store.set_evidence_path(999, "/tmp/evidence")
    with pytest.raises(UsageError, match=message):
        store.update_alert(999, last_commit=SHA_C, last_run_id=None, change_pct=1.0,
                           confidence="LOW", p_value=None, reason="still slow")


# ---------------------------------------------------------------------------- one per series


def test_one_active_alert_per_series(store: ResultStore) -> None:
    assert store.active_alert(KEY) is None
    first = store.open_alert(make_draft())
    other = store.open_alert(make_draft(OTHER_KEY))
    machine = store.open_alert(make_draft(MACHINE_KEY))
    assert first_id(store.active_alert(KEY)) == first
    assert first_id(store.active_alert(OTHER_KEY)) == other
    # The machine-wide key matches whether its benchmark is spelled "" or None.
    assert first_id(store.active_alert(SeriesKey("core", None, "time", "bench-01-epyc",  # type: ignore[arg-type]
                                                 "cfg0123456789abc"))) == machine
    assert store.get_alert(machine)[0].series == MACHINE_KEY
    # Another config or machine is another series.
    assert store.active_alert(replace(KEY, machine_id="bench-02")) is None
    assert store.active_alert(replace(KEY, config_hash="new")) is None

    before = snapshot(store)
    with pytest.raises(UsageError) as err:
        store.open_alert(make_draft(first_bad_commit=SHA_C))
    assert str(err.value) == (
        f"series {KEY} already has active alert {first} (OPEN): update that one instead of "
        "opening another"
    )
    assert snapshot(store) == before

    store.transition(first, "ACKNOWLEDGED", actor="alice", reason="")
    with pytest.raises(UsageError, match=r"already has active alert \d+ \(ACKNOWLEDGED\)"):
        store.open_alert(make_draft())

    # Once closed, the same regression coming back opens a new alert.
    store.transition(first, "RESOLVED", actor="alice", reason="fixed")
    again = store.open_alert(make_draft(first_bad_commit=SHA_C))
    assert again not in (first, other, machine)
    assert first_id(store.active_alert(KEY)) == again


def first_id(alert: Alert | None) -> int | None:
    return None if alert is None else alert.id


def test_update_alert_counts_runs_and_keeps_the_start(store: ResultStore, clock: FakeClock) -> None:
    baseline_run = store.begin_run(make_start(commit=SHA_A), hostname=HOST)
    first_bad_run = store.begin_run(make_start(commit=SHA_B), hostname=HOST)
    later_run = store.begin_run(make_start(commit=SHA_C), hostname=HOST)
    alert_id = store.open_alert(
        make_draft(baseline_run_id=baseline_run, last_run_id=first_bad_run)
    )
    for n in range(2):
        clock.advance(60)
        store.update_alert(
            alert_id, last_commit=SHA_C, last_run_id=later_run, change_pct=14.0 + n,
            confidence="MEDIUM", p_value=None, reason=f"still +{14 + n} %",
        )
    alert, events = store.get_alert(alert_id)
    assert alert.runs_seen == 3
    assert (alert.first_bad_commit, alert.last_commit) == (SHA_B, SHA_C)
    assert (alert.baseline_run_id, alert.last_run_id) == (baseline_run, later_run)
    assert (alert.change_pct, alert.confidence, alert.p_value) == (15.0, "MEDIUM", None)
    assert alert.reason == "still +15 %"
    assert (alert.created_at, alert.updated_at) == (T0, T0 + timedelta(minutes=120))
    assert len(events) == 1  # updates are not state changes

    with pytest.raises(ValueError, match="update_alert.confidence: must be one of HIGH"):
        store.update_alert(alert_id, last_commit=SHA_C, last_run_id=None, change_pct=1.0,
                           confidence="SURE", p_value=None, reason="x")
    with pytest.raises(UsageError, match="no run with id 777"):
        store.update_alert(alert_id, last_commit=SHA_C, last_run_id=777, change_pct=1.0,
                           confidence="LOW", p_value=None, reason="x")
    store.transition(alert_id, "INVALID", actor="alice", reason="noisy neighbour")
    with pytest.raises(UsageError, match=f"alert {alert_id} is INVALID: a new regression"):
        store.update_alert(alert_id, last_commit=SHA_C, last_run_id=None, change_pct=1.0,
                           confidence="LOW", p_value=None, reason="x")
    assert store.get_alert(alert_id)[0].runs_seen == 3


def test_open_alert_with_an_unknown_run_writes_nothing(store: ResultStore) -> None:
    with pytest.raises(UsageError, match="no run with id 5"):
        store.open_alert(make_draft(last_run_id=5))
    assert snapshot(store) == ([], 0)


def test_evidence_path_is_linked_in_any_state(store: ResultStore, clock: FakeClock) -> None:
    alert_id = store.open_alert(make_draft())
    store.transition(alert_id, "RESOLVED", actor="alice", reason="")
    linked_at = clock.advance(5)
    store.set_evidence_path(alert_id, "/var/lib/perfd/evidence/1")
    alert = store.get_alert(alert_id)[0]
    assert (alert.evidence_path, alert.updated_at) == ("/var/lib/perfd/evidence/1", linked_at)
    with pytest.raises(UsageError, match="must not be empty"):
        store.set_evidence_path(alert_id, "")


# ---------------------------------------------------------------------------- listing


def test_list_alerts_newest_first_with_filters(store: ResultStore, clock: FakeClock) -> None:
    ids = []
    for key in (KEY, OTHER_KEY, MACHINE_KEY,
                SeriesKey("io", "read_4k", "time", "bench-01-epyc", "c"),
                SeriesKey("core", "hash_insert", "time", "bench-02", "hcfg-hash-insert")):
        ids.append(store.open_alert(make_draft(key)))
        clock.advance(1)
    store.transition(ids[1], "ACKNOWLEDGED", actor="alice", reason="")
    store.transition(ids[2], "FALSE_POSITIVE", actor="alice", reason="reboot")

    assert [a.id for a in store.list_alerts()] == ids[::-1]
    assert [a.id for a in store.list_alerts(limit=2)] == [ids[4], ids[3]]
    assert [a.id for a in store.list_alerts(state="OPEN")] == [ids[4], ids[3], ids[0]]
    assert [a.id for a in store.list_alerts(state="false_positive")] == [ids[2]]
    assert [a.id for a in store.list_alerts(state=ACTIVE_STATES, suite="core")] == [
        ids[4], ids[1], ids[0],
    ]
    assert [a.id for a in store.list_alerts(machine_id="bench-02")] == [ids[4]]
    assert [a.id for a in store.list_alerts(suite="io", machine_id="bench-01-epyc")] == [ids[3]]
    assert store.list_alerts(state=[]) == []
    assert store.list_alerts(suite="nope") == []
    with pytest.raises(UsageError, match="alert state must be one of OPEN, .*got 'CLOSED'"):
        store.list_alerts(state=["OPEN", "CLOSED"])
    with pytest.raises(UsageError, match="limit must be >= 1"):
        store.list_alerts(limit=0)


# ---------------------------------------------------------------------------- drafts


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "hardware"}, "AlertDraft.kind: must be one of code, infrastructure"),
        ({"series": MACHINE_KEY, "kind": "code"}, "a code alert needs a benchmark"),
        ({"kind": "infrastructure"}, "an infrastructure alert is machine-wide"),
        ({"baseline_commit": "HEAD"}, "AlertDraft.baseline_commit: must be 40 lowercase hex"),
        ({"first_bad_commit": SHA_B.upper()}, "AlertDraft.first_bad_commit"),
        ({"confidence": "high"}, "AlertDraft.confidence: must be one of HIGH, MEDIUM, LOW"),
        ({"p_value": 1.5}, r"AlertDraft.p_value: must be within \[0, 1\]"),
        ({"change_pct": float("nan")}, "AlertDraft.change_pct: must be finite"),
        ({"reason": " "}, "AlertDraft.reason: must say why"),
    ],
)
def test_alert_drafts_validate_themselves(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_draft(**changes)


def test_series_keys_validate_and_normalise() -> None:
    assert SeriesKey("core", None, "time", "m", "c") == SeriesKey("core", "", "time", "m", "c")  # type: ignore[arg-type]
    assert str(KEY) == "core/hash_insert/time on bench-01-epyc (config hcfg-hash-insert)"
    assert str(MACHINE_KEY) == "core/*/time on bench-01-epyc (config cfg0123456789abc)"
    with pytest.raises(ValueError, match="SeriesKey.machine_id: must not be empty"):
        SeriesKey("core", "b", "time", "", "c")


# ---------------------------------------------------------------------------- migration 2


def test_version_1_database_upgrades_with_its_data(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    # A database as perfd with schema version 1 left it: migration 1 only, with a run.
    engine = old_database(store_url, 1)
    run_id = write_old_run(engine, make_start(), make_result())
    # what today's reads can take from a version-1 database (get_run also reads later columns)
    old = ResultStore(engine)
    before = (old.list_runs(), old.statistics(run_id))
    assert not inspect(engine).has_table("alerts")
    engine.dispose()

    monkeypatch.chdir(tmp_path)  # no perfd.yaml from the working directory
    monkeypatch.delenv("PERFD_CONFIG", raising=False)
    code, out, err = cli("--db", store_url, "db", "upgrade")
    assert (code, err) == (0, "")
    assert out.strip() == f"schema version 1 -> {SCHEMA_VERSION}"

    store = ResultStore.open(store_url)
    assert store.schema_version() == SCHEMA_VERSION
    assert (store.list_runs(), store.statistics(run_id)) == before
    assert store.process_values(run_id, "hash_insert", "time") == [100.0, 100.0, 120.0]
    assert store.get_run(run_id).info.status is RunStatus.COMPLETED
    assert {"alerts", "alert_events"} <= set(inspect(store.engine).get_table_names())
    assert "ix_statistics_benchmark_metric_config_hash" in {
        index["name"] for index in inspect(store.engine).get_indexes("statistics")
    }
    assert [p.run_id for p in store.series_points(KEY)] == [run_id]
    alert_id = store.open_alert(make_draft(baseline_run_id=run_id, last_run_id=run_id))
    assert store.get_alert(alert_id)[0].baseline_run_id == run_id
    store.close()
    # Upgrading again is a no-op.
    engine = make_engine(store_url)
    assert upgrade(engine) == (SCHEMA_VERSION, SCHEMA_VERSION)
    engine.dispose()
