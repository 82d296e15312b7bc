"""The comparison report of two commits: text (terminal), Markdown (PR comments) and JSON."""

from __future__ import annotations

import json
from typing import Any

from perfd.analysis.compare import Comparison, Status
from perfd.analysis.results import (
    ComparedBenchmark,
    CompareReport,
    confidence_rank,
)
from perfd.report.text import ci_pct, md_escape, pct

REPORT_VERSION = 1  # 1 - first JSON layout of the compare report


def fmt_quantity(value: float, unit: str) -> str:
    """A value in its unit, scaling ns to us/ms/s and counts to k/M for readability."""
    if unit == "ns":
        for limit, scale, name in ((1e9, 1e9, "s"), (1e6, 1e6, "ms"), (1e3, 1e3, "us")):
            if abs(value) >= limit:
                return f"{value / scale:.3g} {name}" if abs(value / scale) < 100 else \
                    f"{value / scale:.1f} {name}"
        return f"{value:.3g} ns"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.3g}M {unit}"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.3g}k {unit}"
    return f"{value:.4g} {unit}"


def _p(c: Comparison) -> str:
    p = c.p_adjusted if c.p_adjusted is not None else c.p_value
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def _method(report: CompareReport) -> str:
    if report.mode == "interleaved":
        test = ("interleaved A/B, pairs of processes taking turns sample by sample on one CPU, "
                "Wilcoxon signed-rank on the pairs' log-ratios")
    else:
        test = "stored runs (independent samples), Mann-Whitney U on process medians"
    return f"{test}; Benjamini-Hochberg FDR q={report.fdr_q:g}"


def _columns(report: CompareReport) -> tuple[list[str], list[list[str]]]:
    headers = ["benchmark", "metric", "baseline", "current", "change", "95% CI", "p(adj)",
               "n", "status", "confidence"]
    rows = []
    for r in report.rows:
        c = r.comparison
        n = str(r.pairs) if r.pairs is not None else f"{c.n_baseline}/{c.n_current}"
        rows.append([r.benchmark, r.metric, fmt_quantity(c.baseline_median, r.unit),
                     fmt_quantity(c.current_median, r.unit), pct(c.change_pct), ci_pct(c.ratio_ci), _p(c), n,
                     c.status.value, c.confidence.value if c.confidence else "-"])
    return headers, rows


def _details(r: ComparedBenchmark, bullet: str, check: tuple[str, str]) -> list[str]:
    c = r.comparison
    lines = [f"{r.benchmark} ({r.metric}): {pct(c.change_pct)}, {c.status.value}"
             + (f", {c.confidence.value} confidence" if c.confidence else "")]
    for crit in c.criteria:
        lines.append(f"{bullet}{check[0] if crit.met else check[1]} {crit.name}: {crit.detail}")
    effects = []
    if c.cohen_d is not None:
        effects.append(f"Cohen's d {c.cohen_d:.2f}")
    if c.hodges_lehmann_pct is not None:
        effects.append(f"Hodges-Lehmann shift {pct(c.hodges_lehmann_pct)}")
    if c.cliffs_delta is not None:
        effects.append(f"Cliff's delta {c.cliffs_delta:+.2f}")
    if effects:
        lines.append(f"{bullet}effect size: {', '.join(effects)}")
    lines.append(f"{bullet}why: {c.reason}")
    return lines


def _notes(report: CompareReport) -> list[str]:
    contended = ([f"CONTENDED: {report.contended}; a neighbour shared the benchmark CPU (both "
                  "sides took turns, so it hit both, but a long run may not be even): compare "
                  "again when the machine is quiet"] if report.contended else [])
    return contended + [
        f"{r.benchmark} ({r.metric}): {r.comparison.status.value}: {r.comparison.reason}"
        for r in report.rows
        if r.comparison.status in (Status.NOISY, Status.INSUFFICIENT_DATA, Status.INCOMPARABLE)
        or (r.comparison.status is Status.REGRESSED and not r.comparison.alert_worthy)]


def render_text(report: CompareReport) -> str:
    from perfd.report.text import table

    out = [
        "PERFORMANCE COMPARISON",
        f"suite     {report.suite} on {report.machine_id}",
        f"baseline  {report.baseline.sha[:12]}  {report.baseline.subject}".rstrip(),
        f"current   {report.current.sha[:12]}  {report.current.subject}".rstrip(),
        f"method    {_method(report)}",
        f"threshold {report.threshold_pct:g}% (suite overrides apply), alpha {report.alpha:g}",
        "",
        f"VERDICT: {summary_line(report)}",
        "",
    ]
    headers, rows = _columns(report)
    out.append(table(headers, rows, right=[2, 3, 4, 6, 7]))
    if report.infrastructure is not None:
        out += ["", "INFRASTRUCTURE", f"  {report.infrastructure.reason}",
                "  most benchmarks moved together: check the machine (governor, load, kernel, "
                "noisy neighbours) before blaming the code"]
    if report.regressions:
        out += ["", "REGRESSIONS"]
        for r in report.regressions:
            out += ["  " + line for line in _details(r, "  ", ("[x]", "[ ]"))]
    if report.evidence or report.evidence_errors:
        out += ["", "ROOT CAUSE EVIDENCE"] + ["  " + line for line in _evidence_lines(report)]
    notes = _notes(report)
    if notes:
        out += ["", "NOTES"] + [f"  {n}" for n in notes]
    return "\n".join(out) + "\n"


def _evidence_lines(report: CompareReport) -> list[str]:
    lines = []
    for e in report.evidence:
        lines.append(f"{e.benchmark}: differential flamegraph {e.directory}/diff.svg "
                     f"(profiled with {e.method}; report {e.directory}/report.md)")
        for function, delta in e.top_functions:
            lines.append(f"  grew: {function} {delta:+.1f} {e.top_unit}")
        for sha, subject, why in e.suspects:
            lines.append(f"  suspect: {sha[:12]} {subject} ({why})")
        if not e.suspects:
            lines.append("  suspect: no commit in the range touched the grown functions")
    lines += [f"evidence not collected: {error}" for error in report.evidence_errors]
    return lines


def render_markdown(report: CompareReport) -> str:
    headers, rows = _columns(report)
    icon = {"REGRESSED": ":red_circle:", "IMPROVED": ":green_circle:",
            "INFRASTRUCTURE": ":warning:"}.get(report.verdict, ":white_circle:")
    out = [
        f"## {icon} perfd: {report.verdict}",
        "",
        f"**{summary_line(report)}**",
        "",
        f"- suite `{report.suite}` on `{report.machine_id}`",
        f"- baseline `{report.baseline.sha[:12]}` {report.baseline.subject}".rstrip(),
        f"- current `{report.current.sha[:12]}` {report.current.subject}".rstrip(),
        f"- method: {_method(report)}; threshold {report.threshold_pct:g}%, alpha {report.alpha:g}",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if i in (2, 3, 4, 6, 7) else "---" for i in range(len(headers))) + "|",
    ]
    for row in rows:
        out.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    if report.infrastructure is not None:
        out += ["", "### Infrastructure", "", report.infrastructure.reason]
    if report.regressions:
        out += ["", "### Regressions", ""]
        for r in report.regressions:
            first, *rest = _details(r, "", ("- [x]", "- [ ]"))
            out += [f"**{md_escape(first)}**", ""] + [
                line if line.startswith("- [") else f"- {line}" for line in rest] + [""]
    if report.evidence or report.evidence_errors:
        out += ["", "### Root Cause Evidence", ""]
        out += [f"- {md_escape(line.strip())}" if not line.startswith("  ")
                else f"  - {md_escape(line.strip())}" for line in _evidence_lines(report)]
    notes = _notes(report)
    if notes:
        out += ["", "### Notes", ""] + [f"- {md_escape(n)}" for n in notes]
    text = "\n".join(out).rstrip() + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def report_dict(report: CompareReport) -> dict[str, Any]:
    def comparison(r: ComparedBenchmark) -> dict[str, Any]:
        c = r.comparison
        return {
            "benchmark": r.benchmark, "metric": r.metric, "unit": r.unit,
            "direction": c.direction.value, "status": c.status.value,
            "confidence": c.confidence.value if c.confidence else None,
            "alert_worthy": c.alert_worthy, "reason": c.reason,
            "baseline_median": c.baseline_median, "current_median": c.current_median,
            "change_pct": c.change_pct, "ratio_ci": list(c.ratio_ci), "test": c.test,
            "p_value": c.p_value, "p_adjusted": c.p_adjusted, "cohen_d": c.cohen_d,
            "hodges_lehmann_pct": c.hodges_lehmann_pct, "cliffs_delta": c.cliffs_delta,
            "baseline_cv": c.baseline_cv, "n_baseline": c.n_baseline, "n_current": c.n_current,
            "pairs": r.pairs,
            "criteria": [{"name": k.name, "met": k.met, "detail": k.detail} for k in c.criteria],
        }

    infra = report.infrastructure
    return {
        "format": "perfd-compare-report", "version": REPORT_VERSION,
        "verdict": report.verdict, "summary": summary_line(report),
        "suite": report.suite, "machine_id": report.machine_id,
        "baseline": {"commit": report.baseline.sha, "subject": report.baseline.subject,
                     "run_id": report.baseline_run_id},
        "current": {"commit": report.current.sha, "subject": report.current.subject,
                    "run_id": report.current_run_id},
        "mode": report.mode, "threshold_pct": report.threshold_pct, "alpha": report.alpha,
        "fdr_q": report.fdr_q,
        "infrastructure": None if infra is None else {
            "direction": infra.direction, "median_shift_pct": infra.median_shift_pct,
            "n_moved": infra.n_moved, "n_total": infra.n_total, "reason": infra.reason},
        "comparisons": [comparison(r) for r in report.rows],
        "evidence": [{"benchmark": e.benchmark, "directory": e.directory, "method": e.method,
                      "diff_flamegraph": f"{e.directory}/diff.svg",
                      "top_functions": [{"function": f, "growth": d, "unit": e.top_unit}
                                        for f, d in e.top_functions],
                      "suspects": [{"commit": s, "subject": m, "why": w}
                                   for s, m, w in e.suspects]} for e in report.evidence],
        "evidence_errors": list(report.evidence_errors),
        "contended": report.contended,
    }


def render_json(report: CompareReport) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


def render(report: CompareReport, fmt: str) -> str:
    return RENDERERS[fmt](report)


def summary_line(report: CompareReport) -> str:
    """The one-line verdict with counts of each status."""
    counts: dict[str, int] = {}
    for r in report.rows:
        counts[r.comparison.status.value] = counts.get(r.comparison.status.value, 0) + 1
    parts = [f"{n} {s}" for s, n in sorted(counts.items())]
    if report.infrastructure is not None:
        return f"{report.verdict}: {report.infrastructure.reason}"
    if report.regressions:
        worst = max(report.regressions, key=lambda r: confidence_rank(r.comparison.confidence))
        return (f"{report.verdict}: {len(report.regressions)} regression(s) worth an alert, "
                f"highest confidence {worst.comparison.confidence}; " + ", ".join(parts))
    return f"{report.verdict}: " + ", ".join(parts)
