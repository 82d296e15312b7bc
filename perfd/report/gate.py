"""The gate's verdict for people and for CI: terminal text, a Markdown step summary, a
PR-comment body, JUnit XML and the versioned JSON document (perfd-gate/1, docs/ci-gate.md).

Format only: every decision was made in perfd.analysis.gate; these functions word it.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Any

from perfd.analysis.gate import GATE_SCHEMA, GateResult, GateVerdict
from perfd.analysis.results import ComparedBenchmark
from perfd.model import Status
from perfd.records import BudgetRecord
from perfd.report.budgets import budget_dicts, budgets_table
from perfd.report.compare import fmt_quantity
from perfd.report.compare import render_text as compare_text
from perfd.report.text import ci_pct, fmt_value, md_escape, pct

# GitHub takes at most 1 MiB of step summary per step and 65,536 characters per comment.
SUMMARY_MAX_BYTES = 1024 * 1024
COMMENT_MAX_CHARS = 65_000
ICONS = {GateVerdict.PASS: ":white_check_mark:", GateVerdict.BLOCKED: ":no_entry:",
         GateVerdict.ERROR: ":warning:"}


def comment_marker(suite: str) -> str:
    """The hidden first line a CI finds its earlier comment by (one comment per suite)."""
    return f"<!-- perfd-gate:{suite} -->"


# ---------------------------------------------------------------------------- shared words


def headline(result: GateResult) -> str:
    """e.g. "BLOCKED: blocked by 1 regression(s) at HIGH confidence or more"."""
    verdict = result.verdict.value + (" (overridden)" if result.decision.overridden else "")
    return f"{verdict}: {result.decision.reason}"


def baseline_how(result: GateResult) -> str:
    """How the baseline was chosen, e.g. "merge base with main"."""
    b = result.baseline
    return (f"merge base with {b.target_branch}" if b.source == "merge-base"
            else "given with --baseline")


def _subject_and_how(result: GateResult) -> str:
    subject = result.baseline.commit.subject
    return f"{subject} ({baseline_how(result)})" if subject else f"({baseline_how(result)})"


def rule_text(result: GateResult) -> str:
    return (f"a regression at {result.required_confidence} confidence or more, or a failing "
            "block budget, blocks; warn budgets and weaker regressions are shown")


def override_text(result: GateResult) -> str | None:
    o = result.override
    if o is None:
        return None
    if result.decision.overridden:
        return f"accepted by the {o.label}: {o.reason}"
    if result.verdict is GateVerdict.ERROR:
        return f"given by the {o.label} ({o.reason}), not applied: an override accepts a " \
               "measured regression, not a change that could not be measured"
    return f"given by the {o.label} ({o.reason}), not needed: nothing blocked"


def row_state(result: GateResult, row: ComparedBenchmark) -> str:
    """BLOCKING / ACCEPTED (blocking, overridden) / the comparison's status."""
    if result.verdict is not GateVerdict.ERROR and result.blocking(row):
        return "ACCEPTED" if result.decision.overridden else "BLOCKING"
    return row.comparison.status.value


def _md(text: str) -> str:
    return md_escape(text).replace("\n", " ")


def _notes(result: GateResult) -> list[str]:
    report = result.comparison
    out = []
    if result.attempts > 1:
        out.append(f"measured {result.attempts} times: the machine was CONTENDED (a neighbour "
                   "shared the benchmark CPU)")
    if report is not None:
        if report.contended and result.verdict is GateVerdict.ERROR:
            out.append(f"the last attempt was CONTENDED: {report.contended}")
        if report.infrastructure is not None:
            out.append(f"{report.infrastructure.reason}; the two sides took turns on one CPU, "
                       "so a machine change cancels: suspect the build (compiler, flags, a "
                       "shared dependency)")
        out += [f"{r.benchmark} ({r.metric}): {r.comparison.status.value}: {r.comparison.reason}"
                for r in report.rows
                if r.comparison.status in (Status.NOISY, Status.INSUFFICIENT_DATA,
                                           Status.INCOMPARABLE)]
        out += [f"evidence not collected: {e}" for e in report.evidence_errors]
    return out


def _grown_lines(result: GateResult) -> list[tuple[int, str]]:
    """(depth, line) about the functions that grew, from the evidence bundles."""
    report = result.comparison
    lines: list[tuple[int, str]] = []
    for e in report.evidence if report is not None else ():
        grown = ", ".join(f"`{f}` {d:+.1f} {e.top_unit}" for f, d in e.top_functions) or "none"
        lines.append((0, f"`{e.benchmark}`: {grown}"))
        for sha, subject, why in e.suspects:
            lines.append((1, f"suspect `{sha[:12]}` {subject} ({why})"))
        lines.append((1, f"differential flamegraph: `{e.directory}/diff.svg` (profiled with "
                         f"{e.method}; report `{e.directory}/report.md`)"))
    return lines


# ---------------------------------------------------------------------------- terminal


def render_text(result: GateResult) -> str:
    """What `perfd gate` prints: the verdict first, then the comparison and the budgets."""
    out = [f"GATE: {headline(result)}", "",
           f"suite     {result.suite} on {result.machine_id}",
           f"baseline  {result.baseline.commit.sha[:12]} {_subject_and_how(result)}",
           f"current   {result.current.sha[:12]} {result.current.subject}".rstrip(),
           f"rule      {rule_text(result)}"]
    if (override := override_text(result)) is not None:
        out.append(f"override  {override}")
    if result.verdict_id is not None:
        out.append(f"recorded  gate verdict {result.verdict_id}")
    for b in result.decision.blockers:
        word = "accepted" if result.decision.overridden else "blocking"
        out.append(f"{word}  {b.benchmark} {b.metric}: {b.detail}")
    if result.comparison is not None:
        out += ["", compare_text(result.comparison).rstrip()]
    if result.budgets:
        out += ["", budgets_table(result.budgets)]
    notes = _notes(result)
    if notes:
        out += ["", "GATE NOTES"] + [f"  {n}" for n in notes]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- Markdown


def _benchmark_table(result: GateResult, rows: Sequence[ComparedBenchmark]) -> list[str]:
    out = ["| benchmark | metric | baseline | current | change | 95% CI | confidence | pairs "
           "| status |", "|---|---|---:|---:|---:|---|---|---:|---|"]
    for r in rows:
        c = r.comparison
        state = row_state(result, r)
        mark = {"BLOCKING": ":no_entry: ", "ACCEPTED": ":ballot_box_with_check: "}.get(state, "")
        out.append("| " + " | ".join(_md(x) for x in (
            r.benchmark, r.metric, fmt_quantity(c.baseline_median, r.unit),
            fmt_quantity(c.current_median, r.unit), pct(c.change_pct), ci_pct(r.comparison.ratio_ci),
            c.confidence.value if c.confidence else "-",
            str(r.pairs) if r.pairs is not None else "-", mark + state)) + " |")
    return out


def _budget_table(budgets: Sequence[BudgetRecord]) -> list[str]:
    out = ["| status | benchmark | metric | statistic | value | limit | vs baseline | "
           "confidence | action | owner |", "|---|---|---|---|---:|---|---:|---|---|---|"]
    for b in budgets:
        out.append("| " + " | ".join(_md(x) for x in (
            b.status, b.benchmark, b.metric, b.statistic,
            fmt_value(b.value) if b.value is not None else "-", b.limit_text,
            pct(b.change_pct) if b.change_pct is not None else "-", b.confidence or "-",
            b.action, b.owner or "-")) + " |")
    return out


def _broken_budget_lines(budgets: Sequence[BudgetRecord]) -> list[str]:
    return [f"- **{b.status}** `{b.benchmark}` {b.metric}: {_md(b.reason)}"
            for b in budgets if b.status in ("FAIL", "WARN")]


def _head(result: GateResult) -> list[str]:
    first, *rest = result.decision.reason.splitlines() or [""]
    out = [f"## {ICONS[result.verdict]} perfd gate: {result.verdict.value}"
           + (" (overridden)" if result.decision.overridden else ""), "",
           f"**{_md(first)}**", ""]
    if rest:  # e.g. the last lines of a failed build
        out += ["````text", *(line.replace("````", "` ` ` `") for line in rest), "````", ""]
    out += [f"- suite `{result.suite}` on `{result.machine_id}`",
            f"- baseline `{result.baseline.commit.sha[:12]}` {_md(_subject_and_how(result))}",
            f"- current `{result.current.sha[:12]}` {_md(result.current.subject)}".rstrip(),
            f"- rule: {rule_text(result)}"]
    if (override := override_text(result)) is not None:
        out.append(f"- override: **{_md(override)}**")
    report = result.comparison
    if report is not None:
        out.append(f"- measured in lock-step pairs (both builds taking turns sample by sample "
                   f"on one CPU), threshold {report.threshold_pct:g}%, alpha {report.alpha:g}, "
                   f"FDR q {report.fdr_q:g}")
    if result.decision.blockers:
        word = "Accepted by the override" if result.decision.overridden else "Blocking"
        out += ["", f"### {word}", ""] + [
            f"- `{b.benchmark}` {b.metric}: {_md(b.detail)}" for b in result.decision.blockers]
    return out


def _footer(result: GateResult) -> list[str]:
    bits = [GATE_SCHEMA]
    if result.verdict_id is not None:
        bits.append(f"verdict {result.verdict_id}")
    if result.created_at is not None:
        bits.append(f"{result.created_at:%Y-%m-%d %H:%M} UTC")
    if result.duration_s is not None:
        bits.append(f"{result.duration_s:.1f} s to verdict")
    return ["", f"<sub>perfd gate · {' · '.join(bits)}</sub>"]


def _markdown(result: GateResult, rows: Sequence[ComparedBenchmark],
              budgets: Sequence[BudgetRecord], *, comment: bool, left_out: int,
              more: Callable[[int], str]) -> str:
    out = ([comment_marker(result.suite)] if comment else []) + _head(result)
    if rows:
        title = "Benchmarks that moved" if comment else "Benchmarks"
        out += ["", f"### {title}", ""] + _benchmark_table(result, rows)
    if comment:
        quiet = len(result.rows) - len(_moved(result.rows))
        if quiet:
            out += ["", f"{quiet} more benchmark x metric(s) without a significant change "
                        "(the step summary lists every one)."]
    if budgets:
        out += ["", "### Budgets", ""] + _budget_table(budgets)
        broken = _broken_budget_lines(budgets)
        if broken:
            out += [""] + broken
    grown = _grown_lines(result)
    if grown:
        out += ["", "### Functions that grew", ""] + [
            ("  " * depth) + f"- {_md(line)}" for depth, line in grown]
    notes = _notes(result)
    if notes:
        out += ["", "### Notes", ""] + [f"- {_md(n)}" for n in notes]
    if left_out:
        out += ["", more(left_out)]
    return "\n".join(out + _footer(result)) + "\n"


def _moved(rows: Sequence[ComparedBenchmark]) -> list[ComparedBenchmark]:
    return [r for r in rows if r.comparison.status in (Status.REGRESSED, Status.IMPROVED)]


def _fit(render: Callable[[int | None], str], n_rows: int, size: Callable[[str], int],
         limit: int) -> str:
    """The rendering with as many table rows as fit in ``limit`` (``render(keep)`` keeps the
    first ``keep`` rows, None all of them); cut at a line as a last resort."""
    text = render(None)
    if size(text) <= limit:
        return text
    lo, hi = 0, n_rows
    while lo < hi:  # the largest number of rows that fits
        mid = (lo + hi + 1) // 2
        if size(render(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    text = render(lo)
    if size(text) <= limit:
        return text
    note = "\n\n_… cut here: the rest did not fit; the JSON verdict has everything._\n"
    kept: list[str] = []
    used = size(note)
    for line in text.splitlines(keepends=True):
        if used + size(line) > limit:
            break
        kept.append(line)
        used += size(line)
    return "".join(kept) + note


def _limited(result: GateResult, rows: Sequence[ComparedBenchmark],
             budgets: Sequence[BudgetRecord], *, comment: bool, size: Callable[[str], int],
             limit: int, what: str) -> str:
    def more(n: int) -> str:
        return (f"_… {n:,} more table row(s) left out: {what}; the JSON verdict and the JUnit "
                "report have every row._")

    # What a cut keeps first: regressions and broken budgets, then the rest, each in order.
    items: list[ComparedBenchmark | BudgetRecord] = [*rows, *budgets]
    important = [_important(x) for x in items]
    order = ([i for i, yes in enumerate(important) if yes]
             + [i for i, yes in enumerate(important) if not yes])

    def render(keep: int | None) -> str:
        if keep is None:
            return _markdown(result, rows, budgets, comment=comment, left_out=0, more=more)
        chosen = set(order[:keep])
        kept = [x for i, x in enumerate(items) if i in chosen]
        kept_rows = [x for x in kept if isinstance(x, ComparedBenchmark)]
        kept_budgets = [x for x in kept if isinstance(x, BudgetRecord)]
        return _markdown(result, kept_rows, kept_budgets, comment=comment,
                         left_out=len(items) - len(kept), more=more)

    return _fit(render, len(items), size, limit)


def _important(item: ComparedBenchmark | BudgetRecord) -> bool:
    if isinstance(item, BudgetRecord):
        return item.status in ("FAIL", "WARN")
    return item.comparison.status is Status.REGRESSED


def _budget_order(budgets: Sequence[BudgetRecord]) -> list[BudgetRecord]:
    """Broken budgets first (so a cut keeps them), then in file order."""
    rank = {"FAIL": 0, "WARN": 1}
    return sorted(budgets, key=lambda b: rank.get(b.status, 2))


def render_summary(result: GateResult, max_bytes: int = SUMMARY_MAX_BYTES) -> str:
    """The Markdown step summary: the verdict first, every benchmark x metric, the budgets,
    the override, the functions that grew; at most ``max_bytes`` (UTF-8), tables cut with a
    note past that (blocking rows and broken budgets are kept first)."""
    return _limited(result, list(result.rows), _budget_order(result.budgets), comment=False,
                    size=lambda s: len(s.encode()), limit=max_bytes,
                    what=f"the summary is limited to {max_bytes:,} bytes")


def render_comment(result: GateResult, max_chars: int = COMMENT_MAX_CHARS) -> str:
    """The PR-comment body: the hidden marker line first (a CI edits the comment that has
    it instead of adding one per push), the verdict, what moved and the broken budgets."""
    broken = [b for b in _budget_order(result.budgets) if b.status in ("FAIL", "WARN")]
    return _limited(result, _moved(result.rows), broken, comment=True, size=len,
                    limit=max_chars, what=f"a comment holds at most {max_chars:,} characters")


# ---------------------------------------------------------------------------- JUnit XML

# Characters XML 1.0 cannot carry (a build's output may hold terminal colour codes).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str | None) -> str:
    return _NOT_XML.sub("\ufffd", text or "")


def _element(parent: ET.Element | None, tag: str, attrs: dict[str, str] | None = None,
             text: str | None = None) -> ET.Element:
    """A JUnit element whose attributes and text are safe to write as XML 1.0."""
    clean = {k: _x(v) for k, v in (attrs or {}).items()}
    node = ET.Element(tag, clean) if parent is None else ET.SubElement(parent, tag, clean)
    if text is not None:
        node.text = _x(text)
    return node


def _regression_case(result: GateResult, row: ComparedBenchmark) -> ET.Element:
    c = row.comparison
    case = _element(None, "testcase", {"classname": f"{result.suite}.{row.benchmark}",
                                       "name": row.metric})
    lo, hi = ((r - 1) * 100 for r in c.ratio_ci)
    summary = (f"{row.benchmark} {row.metric}: {pct(c.change_pct)} (95% CI {pct(lo)} .. "
               f"{pct(hi)}), {c.status.value}"
               + (f" at {c.confidence} confidence" if c.confidence else ""))
    details = "\n".join([f"why: {c.reason}"] + [
        f"[{'x' if k.met else ' '}] {k.name}: {k.detail}" for k in c.criteria])
    state = row_state(result, row)
    if state == "BLOCKING":
        _element(case, "failure", {"type": "regression", "message": summary}, details)
    elif state == "ACCEPTED":
        _element(case, "skipped", {"message": f"{summary}; {override_text(result)}"})
    _element(case, "system-out", text=f"{summary}\n{details}")
    return case


def _budget_case(result: GateResult, budget: BudgetRecord) -> ET.Element:
    name = (f"budget {budget.budget_index + 1}: {budget.benchmark} {budget.metric} "
            f"{budget.statistic} {budget.limit_text} ({budget.action})")
    case = _element(None, "testcase", {"classname": f"{result.suite}.budgets", "name": name})
    message = f"{budget.status}: {budget.reason}"
    if budget.status == "FAIL" and result.decision.overridden:
        _element(case, "skipped", {"message": f"{message}; {override_text(result)}"})
    elif budget.status == "FAIL":
        _element(case, "failure", {"type": "budget", "message": message}, message)
    _element(case, "system-out", text=message)
    return case


def render_junit(result: GateResult) -> str:
    """JUnit XML: one testcase per benchmark x metric and per budget x benchmark; blocking
    ones fail, accepted ones (override) are skipped with the reason, a gate that could not
    measure has one erroring testcase."""
    cases = [_regression_case(result, r) for r in result.rows]
    cases += [_budget_case(result, b) for b in result.budgets]
    if result.verdict is GateVerdict.ERROR:
        case = _element(None, "testcase", {"classname": result.suite, "name": "measurement"})
        _element(case, "error", {"type": "could-not-measure",
                                 "message": result.decision.reason.splitlines()[0]},
                 result.decision.reason)
        cases.insert(0, case)
    counts = {tag: sum(c.find(tag) is not None for c in cases)
              for tag in ("failure", "error", "skipped")}
    attrs = {"tests": str(len(cases)), "failures": str(counts["failure"]),
             "errors": str(counts["error"]), "skipped": str(counts["skipped"]),
             "time": f"{result.duration_s or 0:.3f}"}
    root = _element(None, "testsuites", {"name": "perfd gate", **attrs})
    suite = _element(root, "testsuite", {"name": f"perfd gate: {result.suite}", **attrs})
    properties = _element(suite, "properties")
    for name, value in _properties(result):
        _element(properties, "property", {"name": name, "value": value})
    suite.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _properties(result: GateResult) -> list[tuple[str, str]]:
    out = [("schema", GATE_SCHEMA), ("verdict", result.verdict.value),
           ("reason", result.decision.reason), ("baseline", result.baseline.commit.sha),
           ("baseline_source", result.baseline.source), ("current", result.current.sha),
           ("required_confidence", result.required_confidence.value)]
    if result.override is not None:
        out += [("override_reason", result.override.reason),
                ("override_source", result.override.source),
                ("overridden", str(result.decision.overridden).lower())]
    if result.verdict_id is not None:
        out.append(("verdict_id", str(result.verdict_id)))
    return out


# ---------------------------------------------------------------------------- JSON


def _row_dict(result: GateResult, r: ComparedBenchmark) -> dict[str, Any]:
    c = r.comparison
    return {
        "benchmark": r.benchmark, "metric": r.metric, "unit": r.unit,
        "direction": c.direction.value, "status": c.status.value,
        "confidence": c.confidence.value if c.confidence else None,
        "blocking": result.verdict is not GateVerdict.ERROR and result.blocking(r),
        "change_pct": c.change_pct,
        "ci_pct": [(c.ratio_ci[0] - 1) * 100, (c.ratio_ci[1] - 1) * 100],
        "p_adjusted": c.p_adjusted if c.p_adjusted is not None else c.p_value,
        "pairs": r.pairs, "baseline_median": c.baseline_median,
        "current_median": c.current_median, "reason": c.reason,
    }


def verdict_dict(result: GateResult) -> dict[str, Any]:
    """The perfd-gate/1 document (every field is described in docs/ci-gate.md)."""
    report = result.comparison
    b, o = result.baseline, result.override
    return {
        "schema": GATE_SCHEMA,
        "id": result.verdict_id,
        "verdict": result.verdict.value,
        "exit_code": result.exit_code,
        "reason": result.decision.reason,
        "overridden": result.decision.overridden,
        "suite": result.suite,
        "machine_id": result.machine_id,
        "baseline": {"commit": b.commit.sha, "subject": b.commit.subject, "source": b.source,
                     "target_branch": b.target_branch,
                     "run_id": report.baseline_run_id if report else None},
        "current": {"commit": result.current.sha, "subject": result.current.subject,
                    "run_id": report.current_run_id if report else None},
        "required_confidence": result.required_confidence.value,
        "override": None if o is None else {
            "reason": o.reason, "source": o.source, "applied": result.decision.overridden},
        "blockers": [{"kind": x.kind, "benchmark": x.benchmark, "metric": x.metric,
                      "detail": x.detail} for x in result.decision.blockers],
        "benchmarks": [_row_dict(result, r) for r in result.rows],
        "budgets": [{**d, "blocking": d["status"] == "FAIL"}
                    for d in budget_dicts(result.budgets)],
        "evidence": [{"benchmark": e.benchmark, "directory": e.directory, "method": e.method,
                      "diff_flamegraph": f"{e.directory}/diff.svg",
                      "grown_functions": [{"function": f, "growth": d, "unit": e.top_unit}
                                          for f, d in e.top_functions],
                      "suspects": [{"commit": s, "subject": m, "why": w}
                                   for s, m, w in e.suspects]}
                     for e in (report.evidence if report else ())],
        "notes": _notes(result),
        "contended": report.contended if report else None,
        "attempts": result.attempts,
        "duration_s": result.duration_s,
        "created_at": result.created_at.isoformat() if result.created_at else None,
    }


def render_json(result: GateResult) -> str:
    return json.dumps(verdict_dict(result), indent=2) + "\n"
