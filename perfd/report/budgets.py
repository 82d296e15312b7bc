"""Budget verdicts for the terminal and for JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perfd.records import BudgetRecord
from perfd.report.text import fmt_value, table


def budgets_table(results: Sequence[BudgetRecord]) -> str:
    """One row per budget x benchmark; the reasons of broken ones below the table."""
    if not results:
        return "budgets: none apply to this run"
    rows = [[r.status, r.benchmark, r.metric, r.statistic,
             fmt_value(r.value) if r.value is not None else "-", r.limit_text,
             f"{r.change_pct:+.1f}%" if r.change_pct is not None else "-",
             r.confidence or "-", r.action, r.owner or "-"] for r in results]
    out = table(["budget", "benchmark", "metric", "statistic", "value", "limit", "vs baseline",
                 "confidence", "action", "owner"], rows, right=[4, 6])
    broken = [r for r in results if r.status in ("FAIL", "WARN")]
    if broken:
        out += "\n" + "\n".join(f"{r.status}: {r.benchmark} {r.metric}: {r.reason}" for r in broken)
    return out


def budget_dicts(results: Sequence[BudgetRecord]) -> list[dict[str, Any]]:
    return [{"budget_index": r.budget_index, "suite": r.suite, "benchmark": r.benchmark,
             "metric": r.metric, "statistic": r.statistic, "limit": r.limit_text,
             "action": r.action, "min_confidence": r.min_confidence, "owner": r.owner,
             "status": r.status, "value": r.value, "baseline_run_id": r.baseline_run_id,
             "baseline_value": r.baseline_value, "change_pct": r.change_pct,
             "confidence": r.confidence, "reason": r.reason} for r in results]
