"""Golden files pin the compare report's text, Markdown and JSON renderings.

Regenerate after an intended change with: PERFD_UPDATE_GOLDEN=1 pytest tests/unit/test_report_compare.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from perfd.analysis.compare import Comparison, Confidence, Criterion, Status
from perfd.analysis.fdr import InfraFinding
from perfd.analysis.results import (
    CommitInfo,
    ComparedBenchmark,
    CompareReport,
    EvidenceSummary,
    sort_rows,
)
from perfd.model import Direction
from perfd.report.compare import fmt_quantity, render

GOLDEN = Path(__file__).parents[1] / "golden"


def comparison(status, confidence, change, p, *, direction=Direction.LOWER, met=(True,) * 5,
               reason="", base=1000.0, cv=0.012):
    names = ["magnitude", "significance", "consistency", "stable_baseline", "environment"]
    criteria = tuple(Criterion(n, m, f"{n} detail") for n, m in zip(names, met, strict=True))
    ratio = 1 + change / 100
    return Comparison(
        status=status, confidence=confidence, reason=reason or f"{status.value.lower()} because",
        baseline_median=base, current_median=base * ratio, change_pct=change,
        ratio_ci=(ratio - 0.01, ratio + 0.01), p_value=p, test="wilcoxon-signed-rank",
        cohen_d=1.5, hodges_lehmann_pct=change, cliffs_delta=0.8, baseline_cv=cv,
        criteria=criteria, n_baseline=20, n_current=20, direction=direction, p_adjusted=p,
    )


def report(infra=None) -> CompareReport:
    rows = [
        ComparedBenchmark("compute/crc32", "time", "ns",
                          comparison(Status.UNCHANGED, None, -0.1, 0.7, base=9120.0), 10),
        ComparedBenchmark("request/parse", "time", "ns",
                          comparison(Status.REGRESSED, Confidence.HIGH, 10.2, 0.0001,
                                     met=(True, True, False, True, True), base=1210.0), 15),
        ComparedBenchmark("request/handle", "throughput", "ops/s",
                          comparison(Status.REGRESSED, Confidence.LOW, -1.1, 0.03,
                                     direction=Direction.HIGHER, met=(False, True, False, True, True),
                                     base=491000.0), 20),
        ComparedBenchmark("memory/chase", "time", "ns",
                          comparison(Status.NOISY, None, 3.0, 0.2, reason="baseline CV 22% >= 15%",
                                     base=45000.0, cv=0.22), 20),
    ]
    return CompareReport(
        suite="example", machine_id="bench-01",
        baseline=CommitInfo("a" * 40, "minilib: initial import"),
        current=CommitInfo("b" * 40, "request: inject a 10% slowdown into parse"),
        mode="interleaved", threshold_pct=5.0, alpha=0.05, fdr_q=0.05, rows=sort_rows(rows),
        infrastructure=infra, baseline_run_id=1, current_run_id=2,
        evidence=(EvidenceSummary(
            "request/parse", "/var/lib/perfd/evidence/compare-aaaa-bbbb/request_parse", "perf",
            (("minilib_parse_request", 121.4), ("memchr", 3.0)),
            (("b" * 40, "request: inject a 10% slowdown into parse",
              "changed MINILIB_SLOW_PARSE_PCT, used by minilib_parse_request"),), "ns per op"),),
    )


@pytest.mark.parametrize("fmt, suffix", [("text", "txt"), ("markdown", "md"), ("json", "json")])
def test_golden(fmt, suffix):
    path = GOLDEN / f"compare_report.{suffix}"
    text = render(report(), fmt)
    if os.environ.get("PERFD_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_verdict_and_ordering():
    r = report()
    assert r.verdict == "REGRESSED"
    assert [x.benchmark for x in r.regressions] == ["request/parse"]
    # alert-worthy first, then low-confidence regressions, then the rest, larger changes first
    assert [x.benchmark for x in r.rows] == ["request/parse", "request/handle", "memory/chase",
                                             "compute/crc32"]
    data = json.loads(render(r, "json"))
    assert data["verdict"] == "REGRESSED" and data["version"] == 1
    assert data["comparisons"][0]["alert_worthy"] is True


def test_infrastructure_finding_replaces_code_regressions():
    infra = InfraFinding("worse", 8.0, 4, 4, (0, 1, 2, 3), "4 of 4 benchmarks moved +8% together")
    r = report(infra)
    assert r.verdict == "INFRASTRUCTURE" and r.regressions == []
    assert "INFRASTRUCTURE" in render(r, "text")


@pytest.mark.parametrize("value, unit, text", [
    (950.0, "ns", "950 ns"), (1210.0, "ns", "1.21 us"), (45000.0, "ns", "45 us"),
    (2.5e6, "ns", "2.5 ms"), (491000.0, "ops/s", "491k ops/s"), (3.2e6, "count", "3.2M count"),
])
def test_quantities(value, unit, text):
    assert fmt_quantity(value, unit) == text
