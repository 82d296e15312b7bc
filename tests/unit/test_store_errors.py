"""The store's refusals carry their kind: not found (404), conflict (409) or bad arguments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from perfd.errors import EXIT_CONFIG, ConflictError, NotFoundError, StorageError, UsageError
from perfd.store import ResultStore
from tests.unit import test_store
from tests.unit.test_store import SHA_B, make_result, make_start
from tests.unit.test_store_alerts import KEY, OTHER_KEY, make_draft

# The databases test_store.py runs against (SQLite; PostgreSQL when configured).
store_url = test_store.store_url


@pytest.fixture
def store(store_url: str) -> Iterator[ResultStore]:
    store = ResultStore.open(store_url)
    yield store
    store.close()


def raised(call: Callable[[], Any]) -> UsageError:
    with pytest.raises(UsageError) as err:
        call()
    return err.value


def test_unknown_ids_are_not_found(store: ResultStore) -> None:
    alert_id = store.open_alert(make_draft())
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: store.get_run(7), "no run with id 7"),
        (lambda: store.environment_hash(7), "no run with id 7"),
        (lambda: store.complete_run(7, make_result()), "no run with id 7"),
        (lambda: store.fail_run(7, "boom"), "no run with id 7"),
        (lambda: store.open_alert(make_draft(OTHER_KEY, last_run_id=7)), "no run with id 7"),
        (lambda: store.get_alert(9), "no alert with id 9"),
        (lambda: store.transition(9, "RESOLVED", actor="a", reason=""), "no alert with id 9"),
        (lambda: store.set_evidence_path(9, "/tmp/e"), "no alert with id 9"),
        (lambda: store.update_alert(9, last_commit=SHA_B, last_run_id=None, change_pct=1.0,
                                    confidence="LOW", p_value=None, reason="x"),
         "no alert with id 9"),
        (lambda: store.transition(alert_id, "DOWNSTREAM", actor="a", reason="why",
                                  parent_alert_id=9),
         "no alert with id 9 (parent of alert"),
    ]
    for call, message in cases:
        err = raised(call)
        assert type(err) is NotFoundError, message
        assert str(err).startswith(message)
        assert err.exit_code == EXIT_CONFIG


def test_changes_the_stored_state_forbids_are_conflicts(store: ResultStore) -> None:
    run_id = store.begin_run(make_start())
    store.complete_run(run_id, make_result())
    failed = store.begin_run(make_start())
    store.fail_run(failed, "boom")
    alert_id = store.open_alert(make_draft())
    other = store.open_alert(make_draft(OTHER_KEY))
    store.transition(other, "DOWNSTREAM", actor="a", reason="same cause", parent_alert_id=alert_id)
    closed = store.open_alert(make_draft(replace(KEY, config_hash="closed-series")))
    store.transition(closed, "INVALID", actor="a", reason="noisy")
    # finishing a run twice stays a StorageError (exit 6), as it always was
    for call, message in (
        (lambda: store.complete_run(run_id, make_result()),
         f"run {run_id} is COMPLETED: only a RUNNING run can be completed"),
        (lambda: store.fail_run(failed, "again"),
         f"run {failed} is FAILED: only a RUNNING run can be failed"),
    ):
        with pytest.raises(StorageError) as caught:
            call()
        assert type(caught.value) is StorageError and str(caught.value).startswith(message)
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: store.open_alert(make_draft()), f"series {KEY} already has active alert"),
        (lambda: store.transition(alert_id, "OPEN", actor="a", reason=""),
         f"alert {alert_id} is OPEN: it can move to"),
        (lambda: store.transition(closed, "RESOLVED", actor="a", reason=""),
         f"alert {closed} is INVALID: a new regression opens a new alert"),
        (lambda: store.update_alert(closed, last_commit=SHA_B, last_run_id=None, change_pct=1.0,
                                    confidence="LOW", p_value=None, reason="x"),
         f"alert {closed} is INVALID"),
        (lambda: store.transition(alert_id, "DOWNSTREAM", actor="a", reason="loop",
                                  parent_alert_id=other),
         f"alert {alert_id} cannot be DOWNSTREAM of alert {other}"),
    ]
    for call, message in cases:
        err = raised(call)
        assert type(err) is ConflictError, message
        assert str(err).startswith(message)
        assert err.exit_code == EXIT_CONFIG


def test_bad_arguments_stay_plain_usage_errors(store: ResultStore) -> None:
    alert_id = store.open_alert(make_draft())
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: store.list_runs(status="DONE"), "status must be one of"),
        (lambda: store.list_runs(commit="xyz"), "commit must be 4 to 40 hex digits"),
        (lambda: store.list_runs(limit=0), "limit must be >= 1"),
        (lambda: store.runs_for_commit("core", SHA_B, "m", status="DONE"), "status must be"),
        (lambda: store.list_alerts(state="CLOSED"), "alert state must be one of"),
        (lambda: store.list_alerts(limit=0), "limit must be >= 1"),
        (lambda: store.transition(alert_id, "CLOSED", actor="a", reason=""),
         "alert state must be one of"),
        (lambda: store.transition(alert_id, "INVALID", actor="a", reason=" "),
         f"moving alert {alert_id} to INVALID needs a reason"),
        (lambda: store.transition(alert_id, "RESOLVED", actor=" ", reason=""),
         "an alert change needs an actor"),
        (lambda: store.transition(alert_id, "DOWNSTREAM", actor="a", reason="why",
                                  parent_alert_id=alert_id),
         f"alert {alert_id} cannot be DOWNSTREAM of itself"),
        (lambda: store.set_evidence_path(alert_id, ""), "evidence path of alert"),
    ]
    for call, message in cases:
        err = raised(call)
        assert type(err) is UsageError, message
        assert str(err).startswith(message)
