"""Alerts in SQL: one row per regression with its lifecycle in ``alert_events``.

An alert opens OPEN; people (or perfd) move it on::

    OPEN -> ACKNOWLEDGED -> RESOLVED | FALSE_POSITIVE | INVALID | DOWNSTREAM
    OPEN ---------------> RESOLVED | FALSE_POSITIVE | INVALID | DOWNSTREAM

The last four are final: a regression that comes back opens a new alert, so every alert
tells one story. Each change, the creation included, is an event with who, when and why.
At most one alert per series is active (OPEN or ACKNOWLEDGED); later runs that still show
the regression update it (``runs_seen``) instead of opening another.

Functions here take a ``Connection`` inside the caller's transaction and the time to
write; ``ResultStore`` and ``Reader`` wrap them with their error handling and clock. An
alert or run id that does not exist is a ``NotFoundError``; a change the stored state does
not allow (a second active alert, a move the lifecycle forbids) a ``ConflictError``; other
bad arguments a ``UsageError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from perfd.errors import ConflictError, NotFoundError, UsageError
from perfd.records import (
    ACTIVE_STATES,
    ALERT_STATES,
    TERMINAL_STATES,
    Alert,
    AlertDraft,
    AlertEvent,
    SeriesKey,
    check_measure,
    check_sha,
)
from perfd.store import tables as t

# Where each active state may go. Terminal states go nowhere.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "OPEN": ("ACKNOWLEDGED", *TERMINAL_STATES),
    "ACKNOWLEDGED": TERMINAL_STATES,
}
# Closing an alert as not-a-regression must say why, or nobody can review it later.
REASON_REQUIRED = ("FALSE_POSITIVE", "INVALID", "DOWNSTREAM")

# ----------------------------------------------------------------------------- writing


def insert_alert(conn: Connection, draft: AlertDraft, *, actor: str, now: datetime) -> int:
    """Insert an OPEN alert and its creation event; returns its id. Raises ConflictError when
    the series already has an active alert, NotFoundError for an unknown run id."""
    _check_actor(actor)
    existing = find_active(conn, draft.series)
    if existing is not None:
        raise ConflictError(
            f"series {draft.series} already has active alert {existing.id} "
            f"({existing.state}): update that one instead of opening another"
        )
    _require_runs(conn, draft.baseline_run_id, draft.last_run_id)
    key = draft.series
    alert_id = int(
        conn.execute(
            insert(t.alerts)
            .values(
                created_at=now,
                updated_at=now,
                kind=draft.kind,
                state="OPEN",
                suite=key.suite,
                benchmark=key.benchmark or None,
                metric=key.metric,
                machine_id=key.machine_id,
                config_hash=key.config_hash,
                baseline_commit=draft.baseline_commit,
                first_bad_commit=draft.first_bad_commit,
                last_commit=draft.first_bad_commit,
                baseline_run_id=draft.baseline_run_id,
                last_run_id=draft.last_run_id,
                change_pct=draft.change_pct,
                confidence=draft.confidence,
                p_value=draft.p_value,
                reason=draft.reason,
                runs_seen=1,
            )
            .returning(t.alerts.c.id)
        ).scalar_one()
    )
    _insert_event(conn, alert_id, now, actor, None, "OPEN", draft.reason)
    return alert_id


def update_active(
    conn: Connection,
    alert_id: int,
    *,
    now: datetime,
    last_commit: str,
    last_run_id: int | None,
    change_pct: float,
    confidence: str,
    p_value: float | None,
    reason: str,
) -> None:
    """Record one more evaluated run that shows an active alert's change. Raises
    NotFoundError for an unknown alert or run, ConflictError for a closed alert."""
    check_sha(last_commit, "update_alert.last_commit")
    check_measure("update_alert", change_pct, confidence, p_value)
    if not reason.strip():
        raise ValueError("update_alert.reason: must say why the alert still holds")
    current = _lock(conn, alert_id)
    if current["state"] not in ACTIVE_STATES:
        raise _closed(alert_id, current["state"])
    _require_runs(conn, last_run_id)
    alerts = t.alerts
    conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id)
        .values(
            last_commit=last_commit,
            last_run_id=last_run_id,
            change_pct=change_pct,
            confidence=confidence,
            p_value=p_value,
            reason=reason,
            runs_seen=alerts.c.runs_seen + 1,
            updated_at=now,
        )
    )


def apply_transition(
    conn: Connection,
    alert_id: int,
    to_state: str,
    *,
    actor: str,
    reason: str,
    parent_alert_id: int | None,
    now: datetime,
) -> Alert:
    """Move an alert to ``to_state`` and record the event; returns the changed alert.
    Raises NotFoundError, ConflictError for a move the lifecycle does not allow, UsageError
    for bad arguments."""
    _check_actor(actor)
    if to_state not in ALERT_STATES:
        raise UsageError(
            f"alert state must be one of {', '.join(ALERT_STATES)}, got {to_state!r}"
        )
    current = _lock(conn, alert_id)
    from_state = current["state"]
    allowed = TRANSITIONS.get(from_state, ())
    if not allowed:
        raise _closed(alert_id, from_state)
    if to_state not in allowed:
        raise ConflictError(
            f"alert {alert_id} is {from_state}: it can move to {', '.join(allowed)}, "
            f"not {to_state}"
        )
    if to_state in REASON_REQUIRED and not reason.strip():
        raise UsageError(f"moving alert {alert_id} to {to_state} needs a reason")
    if to_state == "DOWNSTREAM":
        _check_parent(conn, alert_id, parent_alert_id)
    elif parent_alert_id is not None:
        raise UsageError(
            f"parent alert {parent_alert_id}: only a DOWNSTREAM alert has a parent, "
            f"not a {to_state} one"
        )
    values: dict[str, Any] = {"state": to_state, "updated_at": now}
    if to_state == "DOWNSTREAM":
        values["parent_alert_id"] = parent_alert_id
    conn.execute(update(t.alerts).where(t.alerts.c.id == alert_id).values(**values))
    _insert_event(conn, alert_id, now, actor, from_state, to_state, reason)
    return _alert(_lock(conn, alert_id))


def set_evidence(conn: Connection, alert_id: int, path: str, *, now: datetime) -> None:
    """Link an evidence directory to an alert (in any state). Raises NotFoundError,
    UsageError for an empty path."""
    if not path:
        raise UsageError(f"evidence path of alert {alert_id} must not be empty")
    _lock(conn, alert_id)
    conn.execute(
        update(t.alerts)
        .where(t.alerts.c.id == alert_id)
        .values(evidence_path=path, updated_at=now)
    )


def annotate(
    conn: Connection,
    alert_id: int,
    *,
    actor: str,
    note: str,
    reason: str | None,
    now: datetime,
) -> Alert:
    """Add ``note`` to an alert's history without moving it (an event from its state to the
    same state), in any state, and replace its reason when ``reason`` is given (e.g. what a
    bisection found). Raises NotFoundError, UsageError for a blank actor, note or reason."""
    _check_actor(actor)
    if not note.strip():
        raise UsageError(f"a note on alert {alert_id} must say something")
    if reason is not None and not reason.strip():
        raise UsageError(f"the reason of alert {alert_id} must not be blank")
    state = _lock(conn, alert_id)["state"]
    values: dict[str, Any] = {"updated_at": now}
    if reason is not None:
        values["reason"] = reason
    conn.execute(update(t.alerts).where(t.alerts.c.id == alert_id).values(**values))
    _insert_event(conn, alert_id, now, actor, state, state, note)
    return _alert(_lock(conn, alert_id))


# ----------------------------------------------------------------------------- reading


def find_active(conn: Connection, series: SeriesKey) -> Alert | None:
    """The active alert of a series (the newest, should there ever be two)."""
    alerts = t.alerts
    query = (
        select(alerts)
        .where(
            alerts.c.suite == series.suite,
            # NULL for a machine-wide series: "== None" compiles to IS NULL.
            alerts.c.benchmark == (series.benchmark or None),
            alerts.c.metric == series.metric,
            alerts.c.machine_id == series.machine_id,
            alerts.c.config_hash == series.config_hash,
            alerts.c.state.in_(ACTIVE_STATES),
        )
        .order_by(alerts.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().one_or_none()
    return None if row is None else _alert(row)


def query_active(
    conn: Connection, *, suite: str | None, machine_id: str | None
) -> dict[SeriesKey, Alert]:
    """The active alert of every series that has one (the newest, should there ever be two),
    optionally of one suite and machine."""
    alerts = t.alerts
    # Oldest first, so a newer alert of the same series replaces an older one below.
    query = select(alerts).where(alerts.c.state.in_(ACTIVE_STATES)).order_by(alerts.c.id)
    if suite is not None:
        query = query.where(alerts.c.suite == suite)
    if machine_id is not None:
        query = query.where(alerts.c.machine_id == machine_id)
    active: dict[SeriesKey, Alert] = {}
    for row in conn.execute(query).mappings():
        alert = _alert(row)
        active[alert.series] = alert
    return active


def query_alerts(
    conn: Connection,
    *,
    state: str | Sequence[str] | None,
    suite: str | None,
    machine_id: str | None,
    limit: int,
) -> list[Alert]:
    """Alerts newest first, filtered by state(s), suite and machine. Raises UsageError for
    bad filters."""
    if limit < 1:
        raise UsageError(f"limit must be >= 1, got {limit}")
    states = parse_states(state)
    alerts = t.alerts
    query = select(alerts).order_by(alerts.c.created_at.desc(), alerts.c.id.desc())
    if states is not None:
        query = query.where(alerts.c.state.in_(list(states)))
    if suite is not None:
        query = query.where(alerts.c.suite == suite)
    if machine_id is not None:
        query = query.where(alerts.c.machine_id == machine_id)
    return [_alert(row) for row in conn.execute(query.limit(limit)).mappings()]


def read_alert(conn: Connection, alert_id: int) -> tuple[Alert, list[AlertEvent]]:
    """An alert and its events, oldest first. Raises NotFoundError for an unknown id."""
    row = conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"no alert with id {alert_id}")
    events = t.alert_events
    rows = conn.execute(
        select(events.c.at, events.c.actor, events.c.from_state, events.c.to_state,
               events.c.reason)
        .where(events.c.alert_id == alert_id)
        .order_by(events.c.at, events.c.id)
    )
    return _alert(row), [AlertEvent(*event) for event in rows]


def parse_states(state: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """State filter as upper-case names (None: any). Raises UsageError for unknown ones."""
    if state is None:
        return None
    wanted = (state,) if isinstance(state, str) else tuple(state)
    names = tuple(s.upper() for s in wanted)
    unknown = [s for s, name in zip(wanted, names, strict=True) if name not in ALERT_STATES]
    if unknown:
        raise UsageError(
            f"alert state must be one of {', '.join(ALERT_STATES)}, got {unknown[0]!r}"
        )
    return names


# ----------------------------------------------------------------------------- helpers


def _closed(alert_id: int, state: str) -> ConflictError:
    return ConflictError(f"alert {alert_id} is {state}: a new regression opens a new alert")


def _check_actor(actor: str) -> None:
    if not actor.strip():
        raise UsageError("an alert change needs an actor (who made it)")


def _lock(conn: Connection, alert_id: int) -> RowMapping:
    """The alert's row, locked for the rest of the transaction. Raises NotFoundError."""
    row = (
        conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id).with_for_update())
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFoundError(f"no alert with id {alert_id}")
    return row


def _require_runs(conn: Connection, *run_ids: int | None) -> None:
    wanted = {run_id for run_id in run_ids if run_id is not None}
    if not wanted:
        return
    runs = t.benchmark_runs
    found = set(conn.execute(select(runs.c.id).where(runs.c.id.in_(wanted))).scalars())
    missing = sorted(wanted - found)
    if missing:
        raise NotFoundError(f"no run with id {missing[0]}")


def _check_parent(conn: Connection, alert_id: int, parent_alert_id: int | None) -> None:
    """A DOWNSTREAM alert names another existing alert, and following parents from there
    must not lead back to it."""
    if parent_alert_id is None:
        raise UsageError(
            f"moving alert {alert_id} to DOWNSTREAM needs the parent alert it follows from"
        )
    if parent_alert_id == alert_id:
        raise UsageError(f"alert {alert_id} cannot be DOWNSTREAM of itself")
    alerts = t.alerts
    seen = {alert_id}
    current: int | None = parent_alert_id
    while current is not None:
        parent = conn.execute(
            select(alerts.c.parent_alert_id).where(alerts.c.id == current)
        ).one_or_none()
        if parent is None:
            raise NotFoundError(f"no alert with id {current} (parent of alert {alert_id})")
        if current in seen:
            # The stored parent links, not the arguments, make this move impossible.
            raise ConflictError(
                f"alert {alert_id} cannot be DOWNSTREAM of alert {parent_alert_id}: "
                f"alert {parent_alert_id} already follows from alert {alert_id}"
            )
        seen.add(current)
        current = parent.parent_alert_id


def _insert_event(
    conn: Connection,
    alert_id: int,
    at: datetime,
    actor: str,
    from_state: str | None,
    to_state: str,
    reason: str,
) -> None:
    conn.execute(
        insert(t.alert_events).values(
            alert_id=alert_id,
            at=at,
            actor=actor,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
        )
    )


def _alert(row: RowMapping) -> Alert:
    return Alert(
        id=row["id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        kind=row["kind"],
        state=row["state"],
        series=SeriesKey(
            suite=row["suite"],
            benchmark=row["benchmark"] or "",
            metric=row["metric"],
            machine_id=row["machine_id"],
            config_hash=row["config_hash"],
        ),
        baseline_commit=row["baseline_commit"],
        first_bad_commit=row["first_bad_commit"],
        last_commit=row["last_commit"],
        baseline_run_id=row["baseline_run_id"],
        last_run_id=row["last_run_id"],
        change_pct=row["change_pct"],
        confidence=row["confidence"],
        p_value=row["p_value"],
        reason=row["reason"],
        runs_seen=row["runs_seen"],
        parent_alert_id=row["parent_alert_id"],
        evidence_path=row["evidence_path"],
    )
