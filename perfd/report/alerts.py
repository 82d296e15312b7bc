"""Alerts for the terminal and for JSON: the list, one alert with its history, an evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perfd.analysis.results import Decision
from perfd.records import Alert, AlertEvent
from perfd.report.text import table


def alert_json(a: Alert) -> dict[str, object]:
    return {"id": a.id, "state": a.state, "kind": a.kind, "suite": a.series.suite,
            "benchmark": a.series.benchmark or None, "metric": a.series.metric,
            "machine_id": a.series.machine_id, "change_pct": a.change_pct,
            "confidence": a.confidence, "p_value": a.p_value, "baseline_commit": a.baseline_commit,
            "first_bad_commit": a.first_bad_commit, "last_commit": a.last_commit,
            "runs_seen": a.runs_seen, "parent_alert_id": a.parent_alert_id,
            "evidence_path": a.evidence_path, "reason": a.reason,
            "created_at": a.created_at.isoformat(), "updated_at": a.updated_at.isoformat()}


def alerts_table(alerts: Sequence[Alert]) -> str:
    rows = [[str(a.id), a.state, a.series.suite, a.series.benchmark or "(machine)", a.series.metric,
             f"{a.change_pct:+.1f}%", a.confidence, a.first_bad_commit[:12], str(a.runs_seen),
             f"{a.updated_at:%Y-%m-%d %H:%M}", a.evidence_path or "-"] for a in alerts]
    return table(["id", "state", "suite", "benchmark", "metric", "change", "confidence",
                  "first bad", "runs", "updated (UTC)", "evidence"], rows, right=[0, 5, 8])


def alert_text(a: Alert, events: Sequence[AlertEvent] = ()) -> str:
    """One alert, and its history (who/when/why) when events are given."""
    lines = [
        f"alert {a.id}: {a.state} ({a.kind})",
        f"series:      {a.series.suite} / {a.series.benchmark or '(machine)'} / {a.series.metric} "
        f"on {a.series.machine_id}",
        f"change:      {a.change_pct:+.2f}% ({a.confidence} confidence"
        + (f", p={a.p_value:.2g})" if a.p_value is not None else ")"),
        f"baseline:    {a.baseline_commit} (run {a.baseline_run_id})",
        f"first bad:   {a.first_bad_commit}",
        f"latest:      {a.last_commit} (run {a.last_run_id}, seen in {a.runs_seen} run(s))",
        f"why:         {a.reason}",
    ]
    if a.parent_alert_id:
        lines.append(f"downstream of alert {a.parent_alert_id}")
    if a.evidence_path:
        lines.append(f"evidence:    {a.evidence_path}")
    if events:
        lines += ["", "history:"]
        lines += [f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.from_state or '-':>12} -> {e.to_state:<14} "
                  f"by {e.actor}: {e.reason}" for e in events]
    return "\n".join(lines)


def decision_dicts(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """`perfd alert --json`: what the evaluation did to each series."""
    def comparison(d: Decision) -> dict[str, Any] | None:
        c = d.comparison
        if c is None:
            return None
        return {"status": c.status.value, "confidence": c.confidence.value if c.confidence else None,
                "change_pct": c.change_pct, "ratio_ci": list(c.ratio_ci),
                "p_value": c.p_adjusted if c.p_adjusted is not None else c.p_value,
                "n_baseline": c.n_baseline, "n_current": c.n_current}

    return [{"suite": d.series.suite, "benchmark": d.series.benchmark, "metric": d.series.metric,
             "action": d.action.value, "alert_id": d.alert_id, "note": d.note,
             "comparison": comparison(d)} for d in decisions]


def decisions_table(decisions: Sequence[Decision]) -> str:
    """`perfd alert`: one row per evaluated series."""
    if not decisions:
        return "no series with stored runs on this machine"
    rows = [[d.series.suite, d.series.benchmark or "(machine)", d.series.metric, d.action.value,
             str(d.alert_id or ""), d.note[:90]] for d in decisions]
    return table(["suite", "benchmark", "metric", "action", "alert", "why"], rows)
