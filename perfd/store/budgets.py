"""Budget results in SQL: each run's budget verdicts, replaced whole on re-evaluation.

Functions here take a ``Connection`` inside the caller's transaction; ``ResultStore`` and
``Reader`` wrap them with their error handling and clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from perfd.records import BudgetRecord
from perfd.store import tables as t
from perfd.store.runs import require_run

_COLUMNS = tuple(f.name for f in fields(BudgetRecord))


def replace_budget_results(conn: Connection, run_id: int, results: Sequence[BudgetRecord], *,
                           now: datetime) -> None:
    """Store ``results`` as the run's budget verdicts (dropping earlier ones). Raises
    NotFoundError for an unknown run, ValueError for a result of another run."""
    require_run(conn, run_id)
    wrong = [r.run_id for r in results if r.run_id != run_id]
    if wrong:
        raise ValueError(f"budget results of run {wrong[0]} given for run {run_id}")
    conn.execute(delete(t.budget_results).where(t.budget_results.c.run_id == run_id))
    if results:
        conn.execute(insert(t.budget_results),
                     [asdict(replace(r, evaluated_at=now)) for r in results])


def query_budget_results(conn: Connection, run_id: int) -> list[BudgetRecord]:
    """The run's budget verdicts in budget order, then by benchmark and metric."""
    b = t.budget_results.c
    rows = conn.execute(
        select(*(b[name] for name in _COLUMNS)).where(b.run_id == run_id)
        .order_by(b.budget_index, b.benchmark, b.metric)
    ).mappings()
    return [BudgetRecord(**dict(row)) for row in rows]
