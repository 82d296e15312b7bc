"""The analysis of a commit range: Markdown (for people and issues) and JSON (for tools).

The result (perfd.analysis.results.AnalyzeReport) holds the facts and the verdict; this
module words them: the summary line, the recommendations and both renderings, so a literal
report pins the output in a golden file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from perfd.analysis.results import (
    ERROR,
    MIN_POINTS_FOR_CHANGE_POINTS,
    AnalyzeReport,
    ChangePointFinding,
    CommitInfo,
    SeriesAnalysis,
)
from perfd.model import Status
from perfd.report.compare import fmt_quantity
from perfd.report.text import md_escape, pct

REPORT_VERSION = 1  # 1 - first JSON layout of the analyze report

def summary_line(report: AnalyzeReport) -> str:
    if not report.series:
        return (f"{report.verdict}: no stored runs of suite {report.suite} on {report.machine_id} "
                "in this range")
    counts: dict[str, int] = {}
    for s in report.series:
        counts[s.status] = counts.get(s.status, 0) + 1
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    cps = report.change_points
    worse = sum(cp.worse for cp in cps)
    n = len(report.series)
    head = (f"{len(report.regressions)} of {n} series got worse" if report.regressions
            else f"{n} series")
    return (f"{report.verdict}: {head}; start vs end: {statuses}; "
            f"change points: {worse} worse, {len(cps) - worse} better")

def recommendations(report: AnalyzeReport) -> list[str]:
    """Concrete next steps, most urgent first; "no action needed" when all is quiet."""
    out: list[str] = []
    suite = report.suite
    # Worse steps: one confirmation per commit pair, naming every series that stepped there.
    pairs: dict[tuple[str, str], list[ChangePointFinding]] = {}
    for cp in report.change_points:
        if cp.worse:
            pairs.setdefault((cp.before.sha, cp.after.sha), []).append(cp)
    for (before, after), steps in pairs.items():
        what = ", ".join(f"{cp.benchmark} ({cp.metric}) {pct(cp.shift_pct)}" for cp in steps)
        if before == after:
            out.append(f"{what}: the step lies between two runs of {before[:12]}, so the "
                       "machine changed, not the code: compare the two runs' environments "
                       "with `perfd runs show`")
            continue
        env = ("; the environment fingerprint changed at the same runs, so check the "
               "machine too" if any(cp.env_changed for cp in steps) else "")
        line = (f"{what}: confirm with `perfd compare --suite {suite} --baseline {before[:12]} "
                f"--current {after[:12]} --interleave`")
        n = steps[0].suspects
        if n > 1:
            line += (f"; the step is in one of {n} commits, run `perfd run --suite {suite} "
                     f"--commit <sha>` on those between them to pin it down")
        out.append(line + env)
    # Start-vs-end regressions without a step to pin them to a commit.
    for s in report.series:
        if s.alert_worthy and not any(cp.worse for cp in s.change_points) and s.start and s.end:
            out.append(f"{s.label} is {pct(s.change_pct or 0.0)} from {s.start.sha[:12]} to "
                       f"{s.end.sha[:12]} without a located step: confirm with `perfd compare "
                       f"--suite {suite} --baseline {s.start.sha[:12]} --current "
                       f"{s.end.sha[:12]} --interleave`, then run `perfd run` on the commits "
                       "in between to find it")
    # Too little data.
    few_commits = [s.label for s in report.series
                   if s.status == Status.INSUFFICIENT_DATA.value and s.n_commits < 2]
    if few_commits:
        out.append(f"{_names(few_commits)}: too few commits with runs in the range: run "
                   f"`perfd run --suite {suite} --commit <sha>` on more commits of the range"
                   + _unmeasured_hint(report))
    few_processes = [s.label for s in report.series
                     if s.status == Status.INSUFFICIENT_DATA.value and s.n_commits >= 2]
    if few_processes:
        out.append(f"{_names(few_processes)}: too few processes per run to test start vs end: "
                   "raise `repetitions` in the suite (at least 5) and run the range's ends again")
    no_search = [s.label for s in report.series
                 if s.n_commits >= 2 and not s.change_points_searched]
    if no_search and any(c.runs == 0 for c in report.commits):
        # (with every commit measured, the table's "-" says it; more runs would not help)
        out.append(f"{_names(no_search)}: too few runs in the range to look for change points "
                   f"(need {MIN_POINTS_FOR_CHANGE_POINTS}): run `perfd run --suite {suite} "
                   "--commit <sha>` on more commits of the range" + _unmeasured_hint(report))
    for s in report.series:
        if s.status == Status.NOISY.value and s.comparison is not None:
            out.append(f"{s.label}: the series is noisy (CV {s.comparison.baseline_cv:.1%}): "
                       "pin CPUs (`cpus:` in the suite, isolated from the OS) and raise "
                       "`repetitions`")
    for s in report.series:
        if s.env_changed:
            out.append(f"{s.label}: the environment fingerprint changed between runs "
                       f"{s.start_run_id} and {s.end_run_id}: compare them with "
                       f"`perfd runs show {s.start_run_id}` and `perfd runs show "
                       f"{s.end_run_id}` before trusting the change")
            break  # one run pair per range tells the story; the rows show the rest
    for s in report.series:
        if s.status == ERROR:
            out.append(f"{s.label}: could not be analysed: {s.reason}")
    for a in report.alerts:
        if a.in_range and a.state == "OPEN":
            out.append(f"alert {a.id} ({a.benchmark or 'machine-wide'} {a.metric}) started "
                       f"inside this range at {a.first_bad.sha[:12]}: `perfd alert ack {a.id}` "
                       f"while investigating, `perfd alert resolve {a.id}` once fixed")
    if not report.series:
        out.append(f"no stored runs of this suite in the range: run `perfd run --suite {suite} "
                   "--commit <sha>` on its commits")
    return out or ["no action needed"]

def _unmeasured_hint(report: AnalyzeReport) -> str:
    missing = [c.sha[:12] for c in report.commits if c.runs == 0]
    if not missing:
        return ""
    if len(missing) > 3:  # the ends and the middle split the range best
        missing = [missing[0], missing[len(missing) // 2], missing[-1]]
    return f" (not measured yet: {', '.join(missing)})"


def _names(labels: Sequence[str]) -> str:
    return ", ".join(labels)


def _q(value: float | None, unit: str) -> str:
    return "-" if value is None else fmt_quantity(value, unit)


def _md_row(cells: Sequence[str]) -> str:
    """A Markdown table row; an empty cell stays empty (no trailing blanks)."""
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _series_label(s: SeriesAnalysis, report: AnalyzeReport) -> str:
    """The benchmark name, with its config hash when the report has several of that name."""
    twins = [x for x in report.series if (x.benchmark, x.metric) == (s.benchmark, s.metric)]
    return f"{s.benchmark} [config {s.config_hash[:8]}]" if len(twins) > 1 else s.benchmark


def _threshold_text(report: AnalyzeReport) -> str:
    if report.threshold_pct is not None:
        return f"threshold {report.threshold_pct:g}%"
    return f"threshold {report.default_threshold_pct:g}% (suite overrides apply)"


def _row(s: SeriesAnalysis, report: AnalyzeReport) -> list[str]:
    change = s.change_pct
    status = s.status + (" (env changed)" if s.env_changed else "")
    if s.change_points_searched:
        steps = str(len(s.change_points))
    else:
        steps = f"- (<{MIN_POINTS_FOR_CHANGE_POINTS} runs)"
    return [_series_label(s, report), s.metric, str(s.n_runs), str(s.n_commits),
            _q(s.start_median, s.unit), _q(s.end_median, s.unit),
            "-" if change is None else pct(change), status,
            s.confidence.value if s.confidence else "-", steps]


def _commit(c: CommitInfo) -> str:
    return f"`{c.sha[:12]}` {c.subject}".rstrip()


def render_markdown(report: AnalyzeReport) -> str:
    icon = {"REGRESSED": ":red_circle:", "IMPROVED": ":green_circle:"}.get(report.verdict,
                                                                          ":white_circle:")
    n_commits = len(report.commits) - 1
    out = [
        f"## {icon} perfd analyze: suite `{report.suite}` on `{report.machine_id}`, "
        f"`{report.base.sha[:12]}..{report.head.sha[:12]}`",
        "",
        f"**{summary_line(report)}**",
        "",
        f"- range: {n_commits} commit{'s' if n_commits != 1 else ''} after base "
        f"{_commit(report.base)}, up to {_commit(report.head)}",
        "- change points: over each series' per-run medians in commit order (penalised mean-shift "
        f"segmentation, min segment 5, confirm 3); start vs end: Mann-Whitney U on the process "
        f"values of the latest run at the first and the last measured commit, "
        f"Benjamini-Hochberg FDR q={report.fdr_q:g}; {_threshold_text(report)}, "
        f"alpha {report.alpha:g}",
        "",
        "### Series",
        "",
    ]
    headers = ["benchmark", "metric", "runs", "commits", "start", "end", "change", "status",
               "confidence", "change points"]
    right = (2, 3, 4, 5, 6, 9)
    if report.series:
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|")
        for s in report.series:
            out.append(_md_row([md_escape(c) for c in _row(s, report)]))
        notes = [f"- {md_escape(s.label)}: {s.status}: {md_escape(s.reason)}"
                 for s in report.series if s.status != Status.UNCHANGED.value]
        notes += [f"- values marked `x ref` are ratios {md_escape(a)}"
                  for a in sorted({s.against for s in report.series if s.against})]
        if notes:
            out += [""] + notes
    else:
        out.append("none: no stored runs of this suite on this machine in the range")

    out += ["", "### Change points", ""]
    if report.change_points:
        for cp in report.change_points:
            where = (f"between two runs of {_commit(cp.after)}" if cp.same_commit else
                     f"between {_commit(cp.before)} and {_commit(cp.after)}")
            size = "beyond" if cp.beyond_threshold else "below"
            env = ", environment changed here" if cp.env_changed else ""
            culprit = "" if cp.same_commit or cp.suspects == 1 else f" (in one of {cp.suspects} commits)"
            if cp.excursion:
                culprit += " (a one-run excursion: in and out again)"
            out.append(
                f"- **{md_escape(cp.benchmark)} ({cp.metric})**: {pct(cp.shift_pct)} "
                f"**{cp.direction_word}** ({_q(cp.before_median, cp.unit)} -> "
                f"{_q(cp.after_median, cp.unit)}, {size} the threshold"
                f"{'' if cp.excursion else f', score {cp.score:.1f}'}{env}) "
                f"{md_escape(where)}{culprit}")
    else:
        out.append("none")

    out += ["", "### Open alerts", ""]
    if report.alerts:
        out.append("| id | benchmark | metric | change | confidence | first bad commit | state |")
        out.append("|---:|---|---|---:|---|---|---|")
        for a in report.alerts:
            first_bad = _commit(a.first_bad) + (" (in range)" if a.in_range else "")
            out.append(_md_row([str(a.id), md_escape(a.benchmark or "(machine-wide)"), a.metric,
                                pct(a.change_pct), a.confidence, md_escape(first_bad), a.state]))
    else:
        out.append("none")

    out += ["", "### Commits in range", "", "| # | commit | subject | runs | change points |",
            "|---:|---|---|---:|---|"]
    landed: dict[str, list[ChangePointFinding]] = {}
    for cp in report.change_points:
        if not cp.same_commit:
            landed.setdefault(cp.after.sha, []).append(cp)
    for i, c in enumerate(report.commits):
        marks = "; ".join(f"**<- {md_escape(cp.benchmark)} ({cp.metric}) {pct(cp.shift_pct)} "
                          f"{cp.direction_word}**" for cp in landed.get(c.sha, []))
        subject = md_escape(c.subject) + (" (base)" if c.is_base else "")
        out.append(_md_row([str(i), f"`{c.sha[:12]}`", subject, str(c.runs), marks]))

    out += ["", "### Recommendations", ""]
    out += [f"- {md_escape(r)}" for r in recommendations(report)]
    return "\n".join(out) + "\n"


def _commit_dict(c: CommitInfo | None, run_id: int | None = None) -> dict[str, Any] | None:
    if c is None:
        return None
    out: dict[str, Any] = {"commit": c.sha, "subject": c.subject}
    if run_id is not None:
        out["run_id"] = run_id
    return out


def report_dict(report: AnalyzeReport) -> dict[str, Any]:
    def change_point(cp: ChangePointFinding) -> dict[str, Any]:
        return {
            "benchmark": cp.benchmark, "metric": cp.metric, "unit": cp.unit,
            "before": _commit_dict(cp.before), "after": _commit_dict(cp.after),
            "suspects": cp.suspects, "before_median": cp.before_median,
            "after_median": cp.after_median, "shift_pct": cp.shift_pct,
            "direction": cp.direction_word, "beyond_threshold": cp.beyond_threshold,
            "score": cp.score, "env_changed": cp.env_changed, "excursion": cp.excursion,
        }

    def series(s: SeriesAnalysis) -> dict[str, Any]:
        c = s.comparison
        return {
            "benchmark": s.benchmark, "metric": s.metric, "unit": s.unit,
            "direction": s.direction.value, "config_hash": s.config_hash,
            "threshold_pct": s.threshold_pct, "runs": s.n_runs, "commits": s.n_commits,
            "status": s.status, "confidence": s.confidence.value if s.confidence else None,
            "alert_worthy": s.alert_worthy, "reason": s.reason,
            "start": _commit_dict(s.start, s.start_run_id),
            "end": _commit_dict(s.end, s.end_run_id),
            "start_median": s.start_median, "end_median": s.end_median,
            "change_pct": s.change_pct, "env_changed": s.env_changed,
            "p_value": c.p_value if c else None, "p_adjusted": c.p_adjusted if c else None,
            "ratio_ci": list(c.ratio_ci) if c else None,
            "criteria": [{"name": k.name, "met": k.met, "detail": k.detail}
                         for k in c.criteria] if c else [],
            "change_points_searched": s.change_points_searched,
            "change_points": [change_point(cp) for cp in s.change_points],
            "against": s.against or None,
        }

    return {
        "format": "perfd-analyze-report", "version": REPORT_VERSION,
        "verdict": report.verdict, "summary": summary_line(report),
        "suite": report.suite, "machine_id": report.machine_id,
        "base": _commit_dict(report.base), "head": _commit_dict(report.head),
        "threshold_pct": report.threshold_pct,
        "default_threshold_pct": report.default_threshold_pct,
        "alpha": report.alpha, "fdr_q": report.fdr_q,
        "series": [series(s) for s in report.series],
        "open_alerts": [{
            "id": a.id, "benchmark": a.benchmark or None, "metric": a.metric,
            "change_pct": a.change_pct, "confidence": a.confidence,
            "first_bad": _commit_dict(a.first_bad), "state": a.state, "in_range": a.in_range,
        } for a in report.alerts],
        "commits": [{"commit": c.sha, "subject": c.subject, "runs": c.runs, "base": c.is_base}
                    for c in report.commits],
        "recommendations": recommendations(report),
    }


def render_json(report: AnalyzeReport) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


RENDERERS = {"markdown": render_markdown, "json": render_json}


def render(report: AnalyzeReport, fmt: str) -> str:
    return RENDERERS[fmt](report)
