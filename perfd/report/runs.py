"""Runs for the terminal and for JSON: a finished run, the list of stored runs, one run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfd.model import RunOutcome, RunStatus
from perfd.records import RunDetail, RunInfo
from perfd.report.text import environment_line, fmt_value, statistics_table, table


def outcome_dict(outcome: RunOutcome) -> dict[str, Any]:
    """`perfd run --json`."""
    return {"run_id": outcome.run_id, "commit": outcome.commit_sha, "status": outcome.status.value,
            "contended_reason": outcome.contended_reason,
            "statistics": [s.to_dict() for s in outcome.result.statistics],
            "unavailable": dict(outcome.unavailable)}


def steal_line(fraction: float) -> str:
    return (f"steal: {fraction:.1%} of the benchmark CPUs' time went to the hypervisor while "
            "measuring")


def outcome_text(outcome: RunOutcome) -> str:
    """`perfd run`: what was measured, where, with which timer, and the statistics table."""
    ctx = outcome.result.harness
    lines = [
        f"run {outcome.run_id}: suite {outcome.suite} at {outcome.commit_sha[:12]} "
        f"on {outcome.machine_id} - {outcome.status}",
        f"environment: {environment_line(outcome.result.environment)}",
        *([steal_line(outcome.result.steal_fraction)]
          if outcome.result.steal_fraction is not None else []),
        f"timer: resolution {fmt_value(ctx.timer_resolution_ns)} ns, overhead "
        f"{fmt_value(ctx.timer_overhead_ns)} ns per reading",
        "",
        statistics_table(outcome.result.statistics),
    ]
    lines += [f"unavailable: {key}: {reason}" for key, reason in sorted(outcome.unavailable.items())]
    if outcome.data_path:
        lines.append(f"\nraw data: {outcome.data_path}")
    if outcome.contended_reason:
        lines.append(f"\ncontended: {outcome.contended_reason}\n(kept for diagnosis; a contended "
                     "run is not history and opens no alert: free the benchmark CPUs and run again)")
    return "\n".join(lines)


def runs_table(runs: Sequence[RunInfo]) -> str:
    """`perfd runs list`."""
    if not runs:
        return "no runs stored yet"
    rows = [[str(r.id), r.suite, r.commit_sha[:12], r.machine_id, r.status, r.tier,
             r.started_at.strftime("%Y-%m-%d %H:%M:%S"), str(r.n_benchmarks),
             (r.error or "").splitlines()[0][:60] if r.error else ""] for r in runs]
    return table(["id", "suite", "commit", "machine", "status", "tier", "started (UTC)",
                  "benchmarks", "error"], rows, right=[0, 7])


def run_dict(detail: RunDetail) -> dict[str, Any]:
    """`perfd runs show --json`."""
    info = detail.info
    return {
        "id": info.id, "suite": info.suite, "commit": info.commit_sha,
        "machine_id": info.machine_id, "status": info.status, "tier": info.tier,
        "started_at": info.started_at.isoformat(),
        "finished_at": info.finished_at.isoformat() if info.finished_at else None,
        "error": info.error, "config_hash": detail.config_hash,
        "build_hash": detail.build_hash, "environment": detail.environment,
        "steal_fraction": detail.steal_fraction,
        "statistics": [s.to_dict() for s in detail.statistics],
    }


def run_text(detail: RunDetail) -> str:
    """`perfd runs show`."""
    info = detail.info
    lines = [
        f"run {info.id}: suite {info.suite} at {info.commit_sha} on {info.machine_id}",
        f"status: {info.status}   tier: {info.tier}   started: {info.started_at:%Y-%m-%d %H:%M:%S}"
        + (f"   finished: {info.finished_at:%Y-%m-%d %H:%M:%S}" if info.finished_at else ""),
        f"config hash: {detail.config_hash}   build hash: {detail.build_hash}",
    ]
    if detail.steal_fraction is not None:
        lines.append(steal_line(detail.steal_fraction))
    if detail.environment:
        lines.append("environment:")
        lines += [f"  {key}: {'unknown' if value is None else value}"
                  for key, value in detail.environment.items()]
    if info.error:
        label = "contended" if info.status is RunStatus.CONTENDED else "error"
        lines.append(f"{label}:\n{info.error}")
    if detail.statistics:
        lines += ["", statistics_table(detail.statistics)]
    if detail.output_dir:
        lines.append(f"\nraw data: {Path(detail.output_dir) / 'benchmark_data.json'}")
    return "\n".join(lines)
