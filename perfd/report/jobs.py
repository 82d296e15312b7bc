"""Jobs of the daemon's queue, for the terminal and for JSON (the HTTP API's shape)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perfd.records import Job
from perfd.report.text import table


def job_dict(j: Job) -> dict[str, Any]:
    return {"id": j.id, "suite": j.suite, "commit": j.commit_sha, "branch": j.branch,
            "tier": j.tier, "kind": j.kind, "machine_id": j.machine_id, "state": j.state,
            "priority": j.priority, "attempts": j.attempts, "max_attempts": j.max_attempts,
            "error": j.error, "note": j.note, "run_id": j.run_id,
            "requested_by": j.requested_by, "created_at": j.created_at.isoformat(),
            "started_at": j.started_at.isoformat() if j.started_at else None,
            "finished_at": j.finished_at.isoformat() if j.finished_at else None}


def job_line(j: Job) -> str:
    return (f"job {j.id}: {j.kind} {j.suite} at {j.commit_sha[:12]} ({j.tier} tier) on "
            f"{j.machine_id}: {j.state}")


def jobs_table(jobs: Sequence[Job]) -> str:
    if not jobs:
        return "no jobs"
    rows = [[str(j.id), j.state, j.kind, j.suite, j.commit_sha[:12], j.tier,
             f"{j.attempts}/{j.max_attempts}", f"{j.created_at:%Y-%m-%d %H:%M:%S}",
             str(j.run_id or ""), (j.error or j.note)[:70]] for j in jobs]
    return table(["id", "state", "kind", "suite", "commit", "tier", "tries", "queued (UTC)",
                  "run", "note"], rows, right=[0, 9])


def job_text(j: Job) -> str:
    lines = [job_line(j), f"  requested by {j.requested_by} at {j.created_at:%Y-%m-%d %H:%M:%S}",
             f"  attempts {j.attempts} of {j.max_attempts}, priority {j.priority}"]
    if j.lease_owner:
        lines.append(f"  held by {j.lease_owner} until {j.lease_expires_at}")
    if j.run_id:
        lines.append(f"  run {j.run_id}")
    if j.note:
        lines.append(f"  note: {j.note}")
    if j.error:
        lines.append(f"  error: {j.error}")
    return "\n".join(lines)
