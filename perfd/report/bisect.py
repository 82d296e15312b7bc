"""The report of a bisection: text (terminal), Markdown (issues, PR comments) and JSON."""

from __future__ import annotations

import json
from typing import Any

from perfd.analysis.bisect import Answer, BisectResult, Outcome, Probe
from perfd.analysis.compare import Comparison
from perfd.report.text import ci_pct, md_escape, pct, table

REPORT_VERSION = 1  # 1 - first JSON layout of the bisect report

_HEADERS = ["step", "commit", "subject", "answer", "vs good", "vs bad", "pairs"]
_RIGHT = [0, 4, 5, 6]


def _pct(c: Comparison | None) -> str:
    return "-" if c is None else pct(c.change_pct)


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


_LABELS = {Outcome.FOUND: "first bad commit", Outcome.RANGE: "range",
           Outcome.NOTHING: "nothing to bisect"}


def _finding(result: BisectResult) -> str:
    if result.outcome is Outcome.FOUND:
        return f"{result.first_bad.sha} {result.first_bad.subject}".rstrip()
    if result.outcome is Outcome.RANGE:
        return (f"the first bad commit is one of {len(result.suspects)} commits after "
                f"{result.last_good.sha[:12]} up to {result.first_bad.sha[:12]}: "
                f"{result.stop_reason}")
    return result.ends.reason


def headline(result: BisectResult) -> str:
    """What the bisection found, in one line."""
    return f"{_LABELS[result.outcome]}: {_finding(result)}"


def _ends_line(result: BisectResult) -> str:
    c = result.ends.vs_good
    if c is None:
        return f"ends: {result.ends.reason}"
    confidence = f" {c.confidence.value}" if c.confidence else ""
    return (f"ends: the bad end is {_pct(c)} {ci_pct(c.ratio_ci)} against the good end "
            f"({c.status.value}{confidence}, {result.ends.pairs} pairs, threshold {result.threshold_pct:g}%)")


def _step_rows(result: BisectResult) -> list[list[str]]:
    return [[str(i), p.commit.sha[:12], _short(p.commit.subject), p.answer.value,
             _pct(p.vs_good), _pct(p.vs_bad), str(p.pairs)]
            for i, p in enumerate(result.probes, start=1)]


def _line_marks(result: BisectResult) -> list[tuple[str, str, str]]:
    """(sha, subject, what is known) for the good end, every commit after it and the bad end."""
    answers = {p.commit.sha: p for p in result.probes}
    suspects = {c.sha for c in result.suspects}
    marks = [(result.good.sha, result.good.subject, "good end")]
    for c in result.commits:
        probe = answers.get(c.sha)
        what = ("bad end" if c.sha == result.bad.sha
                else probe.answer.value if probe is not None else "-")
        if probe is not None and probe.answer is Answer.SKIPPED:
            what = "skipped (does not build)"
        if result.outcome is Outcome.FOUND and c.sha == result.first_bad.sha:
            what += "  <- first bad commit"
        elif result.outcome is Outcome.RANGE and c.sha in suspects:
            what += "  <- may be the first bad commit"
        marks.append((c.sha, c.subject, what))
    return marks


def _commits(n: int) -> str:
    return f"{n} commit" if n == 1 else f"{n} commits"


def _cost(result: BisectResult) -> str:
    return (f"builds: {_commits(result.builds)} ({result.cached_builds} from the build cache); "
            f"pairs: {result.pairs}; wall time {result.wall_time_s:.1f} s")


def _method(result: BisectResult) -> str:
    return (f"lock-step pairs as `perfd compare` runs them; the ends at the "
            f"{result.threshold_pct:g}% threshold, the commits between against both ends at "
            f"+-{result.midpoint_threshold_pct:.3g}%")


def render_text(result: BisectResult) -> str:
    out = [
        "BISECTION",
        f"suite      {result.suite} on {result.machine_id}",
        f"benchmark  {result.benchmark} ({result.metric})",
        f"good       {result.good.sha[:12]}  {result.good.subject}".rstrip(),
        f"bad        {result.bad.sha[:12]}  {result.bad.subject}".rstrip(),
        f"range      {_commits(len(result.commits))} after good up to bad (first-parent history)",
        f"method     {_method(result)}",
        "",
        f"{_LABELS[result.outcome].upper()}: {_finding(result)}",
        "",
        _ends_line(result),
    ]
    if result.probes:
        out += ["", table(_HEADERS, _step_rows(result), right=_RIGHT), "", "why:"]
        out += [f"  {i}. {p.commit.sha[:12]}: {p.reason}" for i, p in enumerate(result.probes, 1)]
    if result.outcome is not Outcome.NOTHING:
        width = max(len(_short(s)) for _, s, _ in _line_marks(result))
        out += ["", "commits (oldest first):"]
        out += [f"  {sha[:12]}  {_short(subject).ljust(width)}  {what}".rstrip()
                for sha, subject, what in _line_marks(result)]
    out += ["", _cost(result)]
    if result.alert_id is not None:
        out.append(f"recorded on alert {result.alert_id}")
    return "\n".join(out) + "\n"


def render_markdown(result: BisectResult) -> str:
    icon = {Outcome.FOUND: ":mag:", Outcome.RANGE: ":warning:",
            Outcome.NOTHING: ":white_circle:"}[result.outcome]
    out = [
        f"## {icon} perfd bisect: {result.benchmark} ({result.metric})",
        "",
        f"**{md_escape(headline(result))}**",
        "",
        f"- suite `{result.suite}` on `{result.machine_id}`",
        f"- good `{result.good.sha[:12]}` {md_escape(result.good.subject)}".rstrip(),
        f"- bad `{result.bad.sha[:12]}` {md_escape(result.bad.subject)}".rstrip(),
        f"- {_commits(len(result.commits))} after good up to bad (first-parent history)",
        f"- method: {md_escape(_method(result))}",
        f"- {md_escape(_ends_line(result))}",
        f"- {_cost(result)}",
    ]
    if result.alert_id is not None:
        out.append(f"- recorded on alert {result.alert_id}")
    if result.probes:
        out += ["", "| " + " | ".join(_HEADERS) + " |",
                "|" + "|".join("---:" if i in _RIGHT else "---" for i in range(len(_HEADERS)))
                + "|"]
        out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in _step_rows(result)]
        out += ["", "<details><summary>why</summary>", ""]
        out += [f"{i}. `{p.commit.sha[:12]}`: {md_escape(p.reason)}"
                for i, p in enumerate(result.probes, 1)]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


def _comparison_dict(c: Comparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"status": c.status.value, "confidence": c.confidence.value if c.confidence else None,
            "change_pct": c.change_pct, "ratio_ci": list(c.ratio_ci), "p_value": c.p_value,
            "p_adjusted": c.p_adjusted, "pairs": c.n_baseline, "reason": c.reason}


def _probe_dict(p: Probe) -> dict[str, Any]:
    return {"commit": p.commit.sha, "subject": p.commit.subject, "answer": p.answer.value,
            "reason": p.reason, "pairs": p.pairs, "attempts": p.attempts,
            "vs_good": _comparison_dict(p.vs_good), "vs_bad": _comparison_dict(p.vs_bad)}


def report_dict(result: BisectResult) -> dict[str, Any]:
    def commit(c: Any) -> dict[str, str]:
        return {"commit": c.sha, "subject": c.subject}

    return {
        "format": "perfd-bisect-report", "version": REPORT_VERSION,
        "outcome": result.outcome.value, "summary": result.summary,
        "suite": result.suite, "machine_id": result.machine_id,
        "benchmark": result.benchmark, "metric": result.metric, "unit": result.unit,
        "good": commit(result.good), "bad": commit(result.bad),
        "first_bad_commit": result.culprit.sha if result.culprit else None,
        "range": {"last_good": result.last_good.sha, "first_bad": result.first_bad.sha,
                  "suspects": [commit(c) for c in result.suspects]},
        "stop_reason": result.stop_reason or None,
        "threshold_pct": result.threshold_pct,
        "midpoint_threshold_pct": result.midpoint_threshold_pct,
        "ends": _probe_dict(result.ends),
        "steps": [_probe_dict(p) for p in result.probes],
        "skipped": [commit(c) for c in result.skipped],
        "commits": len(result.commits), "builds": result.builds,
        "cached_builds": result.cached_builds, "pairs": result.pairs,
        "wall_time_s": result.wall_time_s, "alert_id": result.alert_id,
    }


def render_json(result: BisectResult) -> str:
    return json.dumps(report_dict(result), indent=2) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


def render(result: BisectResult, fmt: str) -> str:
    return RENDERERS[fmt](result)
