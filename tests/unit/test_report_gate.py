"""Golden files pin the gate's Markdown summary, PR comment and JUnit XML, rendered from
literal verdicts; the JSON verdict's shape and the size limits are checked field by field.

Regenerate the golden files after an intended change with:
    PERFD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_report_gate.py
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from perfd.analysis.compare import Comparison, Confidence, Criterion, Status
from perfd.analysis.gate import (
    BaselineChoice,
    GateResult,
    GateVerdict,
    Override,
    could_not_measure,
    decide,
)
from perfd.analysis.results import (
    CommitInfo,
    ComparedBenchmark,
    CompareReport,
    EvidenceSummary,
    sort_rows,
)
from perfd.model import Direction
from perfd.records import BudgetRecord
from perfd.report.gate import (
    comment_marker,
    render_comment,
    render_json,
    render_junit,
    render_summary,
    render_text,
    verdict_dict,
)

GOLDEN = Path(__file__).parents[1] / "golden" / "gate"
BASE, CUR = "a" * 40, "b" * 40


def comparison(status, confidence, change, *, direction=Direction.LOWER, base=1000.0,
               reason=""):
    names = ["magnitude", "significance", "consistency", "stable_baseline", "environment"]
    met = (True, True, False, True, True)
    criteria = tuple(Criterion(n, m, f"{n} detail") for n, m in zip(names, met, strict=True))
    ratio = 1 + change / 100
    return Comparison(
        status=status, confidence=confidence, reason=reason or f"{status.value.lower()} because",
        baseline_median=base, current_median=base * ratio, change_pct=change,
        ratio_ci=(ratio - 0.01, ratio + 0.01), p_value=0.002, test="wilcoxon-signed-rank",
        cohen_d=1.5, hodges_lehmann_pct=change, cliffs_delta=0.8, baseline_cv=0.01,
        criteria=criteria, n_baseline=10, n_current=10, direction=direction, p_adjusted=0.004)


ROWS = sort_rows([
    ComparedBenchmark("request/parse", "time", "ns",
                      comparison(Status.REGRESSED, Confidence.HIGH, 15.2, base=1260.0), 10),
    ComparedBenchmark("request/handle", "time", "ns",
                      comparison(Status.REGRESSED, Confidence.MEDIUM, 6.1, base=2010.0), 15),
    ComparedBenchmark("request/handle", "throughput", "ops/s",
                      comparison(Status.REGRESSED, Confidence.MEDIUM, -5.8, base=497000.0,
                                 direction=Direction.HIGHER), 15),
    ComparedBenchmark("memory/chase", "time", "ns",
                      comparison(Status.UNCHANGED, None, 0.1, base=41500.0), 10),
    ComparedBenchmark("compute/crc32", "time", "ns",
                      comparison(Status.NOISY, None, 1.2, base=8100.0,
                                 reason="pair noise CV 16% >= 15%"), 20),
])


def budget(index, benchmark, statistic, limit, action, status, value, change, confidence,
           reason):
    return BudgetRecord(
        run_id=2, budget_index=index, suite="example", benchmark=benchmark, metric="time",
        statistic=statistic, limit_text=limit, action=action, min_confidence="MEDIUM",
        owner="team-request", status=status, value=value,
        baseline_run_id=1 if change is not None else None,
        baseline_value=value / (1 + change / 100) if change is not None else None,
        change_pct=change, confidence=confidence, reason=reason)


BUDGETS = (
    budget(0, "request/parse", "median", "2.5us, +5%", "block", "FAIL", 1452.0, 15.2, "HIGH",
           "median 1452 is within the limit 2500; median regressed +15.2% against the "
           "baseline, more than the 5% allowed"),
    budget(0, "request/handle", "median", "2.5us, +5%", "block", "PASS", 2133.0, 6.1, None,
           "median 2133 is within the limit 2500; median changed +6.1% against the baseline "
           "(at most +5% allowed) but the change is UNCHANGED"),
    budget(1, "request/parse", "p99", "1.4us", "warn", "WARN", 1498.0, None, "LOW",
           "p99 1498 is above the limit 1400 (+7.0%); a tail over 50 samples: LOW confidence"),
)

EVIDENCE = (EvidenceSummary(
    "request/parse", "/var/lib/perfd/evidence/compare-aaaaaaaaaaaa-bbbbbbbbbbbb/request_parse",
    "perf", (("minilib_parse_request", 170.3), ("__strchr_evex", 12.7)),
    ((CUR, "request: parse 15% slower", "changed MINILIB_SLOW_PARSE_PCT, used by "
      "minilib_parse_request"),), "ns per op"),)


def result(override: Override | None = None, rows=ROWS, budgets=BUDGETS) -> GateResult:
    report = CompareReport(
        suite="example", machine_id="bench-01",
        baseline=CommitInfo(BASE, "crc32: fix the build"),
        current=CommitInfo(CUR, "request: parse 15% slower"), mode="interleaved",
        threshold_pct=5.0, alpha=0.05, fdr_q=0.05, rows=tuple(rows), baseline_run_id=1,
        current_run_id=2, evidence=EVIDENCE)
    return GateResult(
        suite="example", machine_id="bench-01",
        baseline=BaselineChoice(CommitInfo(BASE, "crc32: fix the build"), "merge-base", "main"),
        current=CommitInfo(CUR, "request: parse 15% slower"),
        required_confidence=Confidence.HIGH,
        decision=decide(report.rows, budgets, override=override), comparison=report,
        budgets=tuple(budgets), override=override, attempts=1, duration_s=31.4, verdict_id=7,
        created_at=datetime(2026, 3, 4, 9, 30, tzinfo=UTC))


OVERRIDE = Override("strict header validation costs ~15% in parse; accepted", "trailer")
CASES = {"blocked": result(), "overridden": result(OVERRIDE)}
RENDERERS = {"summary.md": render_summary, "comment.md": render_comment,
             "junit.xml": render_junit}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_golden(case, name):
    path = GOLDEN / f"{case}_{name}"
    text = RENDERERS[name](CASES[case])
    if os.environ.get("PERFD_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def test_the_summary_puts_the_verdict_first_and_names_benchmark_and_function():
    text = render_summary(CASES["blocked"])
    assert text.startswith("## :no_entry: perfd gate: BLOCKED\n")
    assert "| request/parse | time |" in text and ":no_entry: BLOCKING" in text
    assert "`minilib_parse_request` +170.3 ns per op" in text
    assert "WARN" in text and "team-request" in text
    overridden = render_summary(CASES["overridden"])
    assert overridden.startswith("## :white_check_mark: perfd gate: PASS (overridden)\n")
    assert "accepted by the Perf-Override trailer: strict header validation" in overridden
    assert "ACCEPTED" in overridden and "BLOCKING" not in overridden


def test_the_comment_starts_with_its_marker_and_lists_what_moved():
    text = render_comment(CASES["blocked"])
    assert text.splitlines()[0] == comment_marker("example") == "<!-- perfd-gate:example -->"
    assert "memory/chase" not in text  # rows that did not move are counted, not listed
    assert "2 more benchmark x metric(s) without a significant change" in text
    assert "| PASS |" not in text  # only broken budgets


@pytest.mark.parametrize("case", sorted(CASES))
def test_junit_is_well_formed_with_one_case_per_benchmark_metric_and_budget(case):
    root = ET.fromstring(render_junit(CASES[case]))
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(ROWS) + len(BUDGETS) == int(suite.get("tests"))
    names = {(c.get("classname"), c.get("name")) for c in cases}
    assert ("example.request/parse", "time") in names
    assert ("example.request/handle", "throughput") in names
    failing = {c.get("classname") for c in cases if c.find("failure") is not None}
    skipped = {c.get("classname") for c in cases if c.find("skipped") is not None}
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    if case == "blocked":
        # the HIGH regression and the failing block budget; MEDIUM ones and WARN pass
        assert failing == {"example.request/parse", "example.budgets"} and not skipped
        assert suite.get("failures") == "2" and props["verdict"] == "BLOCKED"
    else:
        assert not failing and skipped == {"example.request/parse", "example.budgets"}
        assert props["verdict"] == "PASS" and props["override_source"] == "trailer"
        assert props["overridden"] == "true"


def test_a_gate_that_could_not_measure_has_a_junit_error_and_shows_the_build_output():
    why = ("the baseline aaaaaaaaaaaa does not build: build step 1 (make) exited with 2\n"
           "--- last lines of its output ---\n\x1b[01;31merror:\x1b[m this is not C")
    broken = replace(CASES["blocked"], comparison=None, budgets=(),
                     decision=could_not_measure(why))
    root = ET.fromstring(render_junit(broken))  # terminal colour codes cannot break the XML
    (case,) = root.iter("testcase")
    error = case.find("error")
    assert error is not None and error.get("message").endswith("does not build: build step 1 "
                                                               "(make) exited with 2")
    assert "this is not C" in (error.text or "")
    assert root.get("errors") == "1"
    summary = render_summary(broken)
    assert summary.startswith("## :warning: perfd gate: ERROR\n\n**could not measure: the "
                              "baseline aaaaaaaaaaaa does not build: build step 1 (make) "
                              "exited with 2**\n\n````text\n--- last lines of its output")


def test_json_verdict_shape():
    doc = json.loads(render_json(CASES["overridden"]))
    assert doc["schema"] == "perfd-gate/1"
    assert list(doc) == [
        "schema", "id", "verdict", "exit_code", "reason", "overridden", "suite", "machine_id",
        "baseline", "current", "required_confidence", "override", "blockers", "benchmarks",
        "budgets", "evidence", "notes", "contended", "attempts", "duration_s", "created_at"]
    assert (doc["verdict"], doc["exit_code"], doc["overridden"]) == ("PASS", 0, True)
    assert doc["override"] == {"reason": OVERRIDE.reason, "source": "trailer", "applied": True}
    assert doc["baseline"] == {"commit": BASE, "subject": "crc32: fix the build",
                               "source": "merge-base", "target_branch": "main", "run_id": 1}
    assert [b["kind"] for b in doc["blockers"]] == ["regression", "budget"]
    parse = doc["benchmarks"][0]
    assert parse["benchmark"] == "request/parse" and parse["blocking"] is True
    assert parse["ci_pct"] == pytest.approx([14.2, 16.2])
    assert [b["blocking"] for b in doc["budgets"]] == [True, False, False]
    assert doc["evidence"][0]["grown_functions"][0]["function"] == "minilib_parse_request"
    assert doc["created_at"] == "2026-03-04T09:30:00+00:00"
    blocked = verdict_dict(CASES["blocked"])
    assert (blocked["verdict"], blocked["exit_code"], blocked["override"]) == ("BLOCKED", 1, None)


def test_text_report_starts_with_the_verdict():
    text = render_text(CASES["overridden"])
    assert text.startswith("GATE: PASS (overridden): blocked by 1 regression(s)")
    assert "override  accepted by the Perf-Override trailer" in text
    assert "PERFORMANCE COMPARISON" in text and "budget" in text


def test_the_summary_is_cut_to_its_size_limit_with_a_note():
    many = [ComparedBenchmark(f"bench/{i:05d}", "time", "ns",
                              comparison(Status.UNCHANGED, None, 0.1), 10) for i in range(3000)]
    big = result(rows=ROWS + tuple(many))
    assert big.verdict is GateVerdict.BLOCKED
    full = render_summary(big)
    limit = 20_000
    cut = render_summary(big, max_bytes=limit)
    assert len(full.encode()) > limit >= len(cut.encode())
    assert "more table row(s) left out: the summary is limited to 20,000 bytes" in cut
    assert "| request/parse | time |" in cut  # blocking rows come first and stay
    assert cut.startswith("## :no_entry: perfd gate: BLOCKED")
    comment = render_comment(result(rows=ROWS + tuple(
        ComparedBenchmark(f"bench/{i:05d}", "time", "ns",
                          comparison(Status.IMPROVED, Confidence.HIGH, -9.0), 10)
        for i in range(3000))), max_chars=10_000)
    assert len(comment) <= 10_000 and comment.startswith("<!-- perfd-gate:example -->")
    assert "a comment holds at most 10,000 characters" in comment
