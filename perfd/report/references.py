"""References and a run's ratios to its reference, for the terminal and for JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perfd.records import LinkRecord, RatioRecord, ReferenceRecord
from perfd.report.text import table


def rev_text(r: ReferenceRecord) -> str:
    """The rev as typed, with the commit when it was a name (a tag, a branch)."""
    return r.commit_sha[:12] if r.rev == r.commit_sha else f"{r.rev} ({r.commit_sha[:12]})"


def reference_line(r: ReferenceRecord) -> str:
    return (f"reference of {r.suite} on {r.branch}: {rev_text(r)}, set "
            f"{r.set_at:%Y-%m-%d %H:%M} by {r.set_by}: {r.reason}")


def references_table(refs: Sequence[ReferenceRecord]) -> str:
    if not refs:
        return "no references set (perfd reference set --suite S --commit REV --reason WHY)"
    rows = [[str(r.id), r.suite, r.branch, r.rev, r.commit_sha[:12], f"{r.set_at:%Y-%m-%d %H:%M}",
             r.set_by, r.reason] for r in refs]
    return table(["id", "suite", "branch", "rev", "commit", "set (UTC)", "by", "why"], rows,
                 right=[0])


def reference_dict(r: ReferenceRecord) -> dict[str, Any]:
    return {"id": r.id, "suite": r.suite, "branch": r.branch, "rev": r.rev,
            "commit": r.commit_sha, "set_at": r.set_at.isoformat(), "set_by": r.set_by,
            "reason": r.reason}


def ratios_table(reference: ReferenceRecord, ratios: Sequence[RatioRecord]) -> str:
    """Each benchmark x metric against the reference: ratio, its CI, pairs."""
    head = f"against the reference {rev_text(reference)}, in lock-step pairs:"
    rows = [[r.benchmark, r.metric, f"{(r.ratio - 1) * 100:+.2f}%",
             f"[{(r.ci_low - 1) * 100:+.2f}%, {(r.ci_high - 1) * 100:+.2f}%]", str(r.n_pairs)]
            for r in ratios]
    return head + "\n" + table(["benchmark", "metric", "vs reference", "95% CI", "pairs"], rows,
                               right=[2, 4])


def ratio_dicts(ratios: Sequence[RatioRecord]) -> list[dict[str, Any]]:
    return [{"benchmark": r.benchmark, "metric": r.metric, "ratio": r.ratio,
             "ci": [r.ci_low, r.ci_high], "pairs": r.n_pairs, "reference_id": r.reference_id,
             "reference_run_id": r.reference_run_id} for r in ratios]


def reference_set_text(reference: ReferenceRecord, previous: ReferenceRecord | None,
                       links: Sequence[LinkRecord]) -> str:
    """A new reference and, when it replaced another, the measured link to it."""
    out = reference_line(reference)
    if previous is None or previous.commit_sha == reference.commit_sha:
        return out
    if not links:
        return (out + f"\nnot linked to the previous reference {rev_text(previous)}: "
                "runs against it leave the ratio series")
    rows = [[link.benchmark, link.metric, f"x{link.factor:.4f}",
             f"[{link.ci_low:.4f}, {link.ci_high:.4f}]", str(link.n_pairs)]
            for link in links]
    return (out + f"\nlinked to the previous reference {rev_text(previous)} in lock-step "
            "pairs (new / previous; earlier runs are carried over by these factors):\n"
            + table(["benchmark", "metric", "link", "95% CI", "pairs"], rows, right=[2, 4]))


def link_dicts(links: Sequence[LinkRecord]) -> list[dict[str, Any]]:
    return [{"benchmark": link.benchmark, "metric": link.metric, "factor": link.factor,
             "ci": [link.ci_low, link.ci_high], "pairs": link.n_pairs,
             "previous_reference_id": link.previous_reference_id} for link in links]


def reference_set_dict(reference: ReferenceRecord, previous: ReferenceRecord | None,
                       links: Sequence[LinkRecord]) -> dict[str, Any]:
    return {**reference_dict(reference),
            "previous": reference_dict(previous) if previous else None,
            "links": link_dicts(links)}
