"""Gate verdicts in SQL: every `perfd gate` decision, with its override, as it was shown.

A verdict row is written once and never changed: running the gate again on the same commits
adds a row, so the record says what CI was told each time. Functions here take a
``Connection`` inside the caller's transaction; ``ResultStore`` wraps them with its error
handling and clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select

from perfd.errors import NotFoundError, UsageError
from perfd.records import check_sha
from perfd.store import tables as t

GATE_VERDICTS = ("PASS", "BLOCKED", "ERROR")
OVERRIDE_SOURCES = ("trailer", "flag")


@dataclass(frozen=True, slots=True)
class GateDraft:
    """A gate decision to record. ``override_reason``/``override_source`` are set whenever an
    override was given; ``overridden`` only when it turned a block into a pass."""

    suite: str
    machine_id: str
    baseline_commit: str
    current_commit: str
    verdict: str  # GATE_VERDICTS
    overridden: bool
    override_reason: str | None
    override_source: str | None  # OVERRIDE_SOURCES
    summary: dict[str, Any]  # the perfd-gate/1 document (its id not known yet)

    def __post_init__(self) -> None:
        for name in ("suite", "machine_id"):
            if not getattr(self, name).strip():
                raise UsageError(f"a gate verdict needs a {name}")
        check_sha(self.baseline_commit, "GateDraft.baseline_commit")
        check_sha(self.current_commit, "GateDraft.current_commit")
        if self.verdict not in GATE_VERDICTS:
            raise ValueError(f"GateDraft.verdict: must be one of {', '.join(GATE_VERDICTS)}, "
                             f"got {self.verdict!r}")
        if (self.override_reason is None) != (self.override_source is None):
            raise ValueError("GateDraft: override_reason and override_source go together, got "
                             f"{self.override_reason!r} and {self.override_source!r}")
        if self.override_source is not None and self.override_source not in OVERRIDE_SOURCES:
            raise ValueError(f"GateDraft.override_source: must be one of "
                             f"{', '.join(OVERRIDE_SOURCES)}, got {self.override_source!r}")
        if self.override_reason is not None and not self.override_reason.strip():
            raise UsageError("an override needs a reason")
        if self.overridden and (self.override_reason is None or self.verdict != "PASS"):
            raise ValueError("GateDraft.overridden: only a PASS with an override reason can be "
                             f"overridden, got verdict {self.verdict} and reason "
                             f"{self.override_reason!r}")


@dataclass(frozen=True, slots=True)
class GateRecord:
    """A stored gate decision."""

    id: int
    suite: str
    machine_id: str
    baseline_commit: str
    current_commit: str
    verdict: str
    overridden: bool
    override_reason: str | None
    override_source: str | None
    summary: dict[str, Any]
    created_at: datetime


def insert_gate_verdict(conn: Connection, draft: GateDraft, now: datetime) -> GateRecord:
    """Record a gate decision; returns it as stored."""
    values = {
        "suite": draft.suite, "machine_id": draft.machine_id,
        "baseline_commit": draft.baseline_commit, "current_commit": draft.current_commit,
        "verdict": draft.verdict, "overridden": draft.overridden,
        "override_reason": draft.override_reason, "override_source": draft.override_source,
        "summary_json": json.dumps(draft.summary, sort_keys=True, default=str),
        "created_at": now,
    }
    new_id = conn.execute(
        insert(t.gate_verdicts).values(**values).returning(t.gate_verdicts.c.id)
    ).scalar_one()
    return read_gate_verdict(conn, new_id)


def read_gate_verdict(conn: Connection, verdict_id: int) -> GateRecord:
    """One stored gate decision. Raises NotFoundError."""
    row = conn.execute(
        select(t.gate_verdicts).where(t.gate_verdicts.c.id == verdict_id)
    ).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"no gate verdict with id {verdict_id}")
    return _record(row)


def query_gate_verdicts(conn: Connection, *, suite: str | None = None,
                        current_commit: str | None = None, machine_id: str | None = None,
                        limit: int = 50) -> list[GateRecord]:
    """Gate decisions newest first, filtered by suite, current commit (full id) and machine.
    Raises UsageError for a limit below 1."""
    if limit < 1:
        raise UsageError(f"limit must be >= 1, got {limit}")
    g = t.gate_verdicts.c
    query = select(t.gate_verdicts).order_by(g.id.desc()).limit(limit)
    for column, value in ((g.suite, suite), (g.current_commit, current_commit),
                          (g.machine_id, machine_id)):
        if value is not None:
            query = query.where(column == value)
    return [_record(row) for row in conn.execute(query).mappings()]


def _record(row: RowMapping) -> GateRecord:
    return GateRecord(
        id=row["id"], suite=row["suite"], machine_id=row["machine_id"],
        baseline_commit=row["baseline_commit"], current_commit=row["current_commit"],
        verdict=row["verdict"], overridden=bool(row["overridden"]),
        override_reason=row["override_reason"], override_source=row["override_source"],
        summary=json.loads(row["summary_json"]), created_at=row["created_at"],
    )
