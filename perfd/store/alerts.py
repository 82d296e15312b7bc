"""Alerts in SQL: one row per regression with its lifecycle in ``alert_events``.

An alert opens OPEN; people (or perfd) move it on::

    OPEN -> ACKNOWLEDGED -> RESOLVED | FALSE_POSITIVE | INVALID | DOWNSTREAM
    OPEN ---------------> RESOLVED | FALSE_POSITIVE | INVALID | DOWNSTREAM

The last four are final: a regression that comes back opens a new alert, so every alert
tells one story. Each change, the creation included, is an event with who, when and why.
At most one alert per series is active (OPEN or ACKNOWLEDGED); later runs that still show
the regression update it (``runs_seen``) instead of opening another.

Functions here take a ``Connection`` inside the caller's transaction and the time to
write; ``ResultStore`` wraps them with its error handling and clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from perfd.errors import UsageError
from perfd.store import tables as t
from perfd.store.series import SeriesKey

ALERT_KINDS = ("code", "infrastructure")
ALERT_STATES = ("OPEN", "ACKNOWLEDGED", "RESOLVED", "FALSE_POSITIVE", "INVALID", "DOWNSTREAM")
ACTIVE_STATES = ("OPEN", "ACKNOWLEDGED")
TERMINAL_STATES = ("RESOLVED", "FALSE_POSITIVE", "INVALID", "DOWNSTREAM")
CONFIDENCES = ("HIGH", "MEDIUM", "LOW")

# Where each active state may go. Terminal states go nowhere.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "OPEN": ("ACKNOWLEDGED", *TERMINAL_STATES),
    "ACKNOWLEDGED": TERMINAL_STATES,
}
# Closing an alert as not-a-regression must say why, or nobody can review it later.
REASON_REQUIRED = ("FALSE_POSITIVE", "INVALID", "DOWNSTREAM")

_SHA = re.compile(r"[0-9a-f]{40}")


def _check_sha(value: str, what: str) -> None:
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        raise ValueError(f"{what}: must be 40 lowercase hex digits, got {value!r}")


def _check_measure(
    owner: str, change_pct: float, confidence: str, p_value: float | None
) -> None:
    if not math.isfinite(change_pct):
        raise ValueError(f"{owner}.change_pct: must be finite, got {change_pct!r}")
    if confidence not in CONFIDENCES:
        raise ValueError(
            f"{owner}.confidence: must be one of {', '.join(CONFIDENCES)}, got {confidence!r}"
        )
    if p_value is not None and not 0.0 <= p_value <= 1.0:
        raise ValueError(f"{owner}.p_value: must be within [0, 1] or None, got {p_value!r}")


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """What the detector knows when it opens an alert. ``change_pct`` is signed, in percent
    of the baseline (+12.5 = 12.5 % higher); an infrastructure alert has no benchmark."""

    kind: str
    series: SeriesKey
    baseline_commit: str
    first_bad_commit: str
    baseline_run_id: int | None
    last_run_id: int | None
    change_pct: float
    confidence: str
    p_value: float | None
    reason: str

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise ValueError(
                f"AlertDraft.kind: must be one of {', '.join(ALERT_KINDS)}, got {self.kind!r}"
            )
        if self.kind == "code" and not self.series.benchmark:
            raise ValueError("AlertDraft.series.benchmark: a code alert needs a benchmark")
        if self.kind == "infrastructure" and self.series.benchmark:
            raise ValueError(
                "AlertDraft.series.benchmark: an infrastructure alert is machine-wide, "
                f"got benchmark {self.series.benchmark!r}"
            )
        _check_sha(self.baseline_commit, "AlertDraft.baseline_commit")
        _check_sha(self.first_bad_commit, "AlertDraft.first_bad_commit")
        _check_measure("AlertDraft", self.change_pct, self.confidence, self.p_value)
        if not self.reason.strip():
            raise ValueError("AlertDraft.reason: must say why the alert opens")


@dataclass(frozen=True, slots=True)
class Alert:
    """One stored alert. ``last_commit`` / ``last_run_id`` are the latest evaluated run that
    still showed the change, ``runs_seen`` how many evaluated runs did."""

    id: int
    created_at: datetime
    updated_at: datetime
    kind: str
    state: str
    series: SeriesKey
    baseline_commit: str
    first_bad_commit: str
    last_commit: str
    baseline_run_id: int | None
    last_run_id: int | None
    change_pct: float
    confidence: str
    p_value: float | None
    reason: str
    runs_seen: int
    parent_alert_id: int | None
    evidence_path: str | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One step of an alert's lifecycle; ``from_state`` is None for its creation."""

    at: datetime
    actor: str
    from_state: str | None
    to_state: str
    reason: str


# ----------------------------------------------------------------------------- writing


def insert_alert(conn: Connection, draft: AlertDraft, *, actor: str, now: datetime) -> int:
    """Insert an OPEN alert and its creation event; returns its id. Raises UsageError when
    the series already has an active alert or a run id does not exist."""
    _check_actor(actor)
    existing = find_active(conn, draft.series)
    if existing is not None:
        raise UsageError(
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
    UsageError for an unknown or closed alert or an unknown run."""
    _check_sha(last_commit, "update_alert.last_commit")
    _check_measure("update_alert", change_pct, confidence, p_value)
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
    Raises UsageError for a move the lifecycle does not allow."""
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
        raise UsageError(
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
    """Link an evidence directory to an alert (in any state). Raises UsageError."""
    if not path:
        raise UsageError(f"evidence path of alert {alert_id} must not be empty")
    _lock(conn, alert_id)
    conn.execute(
        update(t.alerts)
        .where(t.alerts.c.id == alert_id)
        .values(evidence_path=path, updated_at=now)
    )


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


def query_alerts(
    conn: Connection,
    *,
    states: Sequence[str] | None,
    suite: str | None,
    machine_id: str | None,
    limit: int,
) -> list[Alert]:
    """Alerts newest first, filtered."""
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
    """An alert and its events, oldest first. Raises UsageError for an unknown id."""
    row = conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().one_or_none()
    if row is None:
        raise UsageError(f"no alert with id {alert_id}")
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


def _closed(alert_id: int, state: str) -> UsageError:
    return UsageError(f"alert {alert_id} is {state}: a new regression opens a new alert")


def _check_actor(actor: str) -> None:
    if not actor.strip():
        raise UsageError("an alert change needs an actor (who made it)")


def _lock(conn: Connection, alert_id: int) -> RowMapping:
    """The alert's row, locked for the rest of the transaction. Raises UsageError."""
    row = (
        conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id).with_for_update())
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise UsageError(f"no alert with id {alert_id}")
    return row


def _require_runs(conn: Connection, *run_ids: int | None) -> None:
    wanted = {run_id for run_id in run_ids if run_id is not None}
    if not wanted:
        return
    runs = t.benchmark_runs
    found = set(conn.execute(select(runs.c.id).where(runs.c.id.in_(wanted))).scalars())
    missing = sorted(wanted - found)
    if missing:
        raise UsageError(f"no run with id {missing[0]}")


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
            raise UsageError(f"no alert with id {current} (parent of alert {alert_id})")
        if current in seen:
            raise UsageError(
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
