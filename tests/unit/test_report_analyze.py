"""The range analysis report: a golden file pins the Markdown; verdicts, JSON and the
recommendations are checked from literal reports.

Regenerate after an intended change with: PERFD_UPDATE_GOLDEN=1 pytest tests/unit/test_report_analyze.py
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from perfd.analysis.compare import Comparison, Confidence, Criterion, Status
from perfd.analysis.results import (
    AnalyzeReport,
    ChangePointFinding,
    CommitInfo,
    OpenAlert,
    RangeCommit,
    SeriesAnalysis,
)
from perfd.model import Direction
from perfd.report.analyze import recommendations, render, summary_line

GOLDEN = Path(__file__).parents[1] / "golden"

SHAS = [f"{i:x}" * 40 for i in range(1, 9)]  # 1111..., 2222..., ..., 8888...
SUBJECTS = ["minilib: initial import", "request: tidy the parser", "docs: README",
            "request: inject a 10% slowdown into parse", "compute: unroll crc32 loop",
            "build: bump compiler flags", "memory: larger arena", "release 1.3"]
C = [CommitInfo(sha, subject) for sha, subject in zip(SHAS, SUBJECTS, strict=True)]


def comparison(status, confidence, change, p, *, direction=Direction.LOWER, base=1000.0,
               cv=0.012, reason=""):
    names = ["magnitude", "significance", "consistency", "stable_baseline", "environment"]
    ratio = 1 + change / 100
    return Comparison(
        status=status, confidence=confidence, reason=reason or f"{status.value.lower()} because",
        baseline_median=base, current_median=base * ratio, change_pct=change,
        ratio_ci=(ratio - 0.01, ratio + 0.01), p_value=p, test="mann-whitney-u",
        cohen_d=1.5, hodges_lehmann_pct=change, cliffs_delta=0.8, baseline_cv=cv,
        criteria=tuple(Criterion(n, True, f"{n} detail") for n in names),
        n_baseline=10, n_current=10, direction=direction, p_adjusted=p,
    )


def step(benchmark, metric, unit, before, after, suspects, b, a, *, worse, beyond=True,
         env_changed=False):
    return ChangePointFinding(
        benchmark=benchmark, metric=metric, unit=unit, before=C[before], after=C[after],
        suspects=suspects, before_median=b, after_median=a, shift_pct=(a / b - 1) * 100,
        worse=worse, beyond_threshold=beyond, score=12.3, env_changed=env_changed,
    )


def series(benchmark, metric, unit, status, comp=None, *, direction=Direction.LOWER, runs=8,
           commits=8, start=0, end=7, steps=(), searched=True, env_changed=False, reason=None):
    return SeriesAnalysis(
        benchmark=benchmark, metric=metric, unit=unit, direction=direction,
        config_hash="c0ffee0011223344", threshold_pct=5.0, n_runs=runs, n_commits=commits,
        status=status, reason=reason if reason is not None else (comp.reason if comp else ""),
        start=C[start], end=C[end] if end is not None else None, start_run_id=10 + start,
        end_run_id=10 + end if end is not None else None,
        start_median=comp.baseline_median if comp else 5000.0,
        end_median=comp.current_median if comp and end is not None else None,
        comparison=comp, env_changed=env_changed, change_points=tuple(steps),
        change_points_searched=searched,
    )


def report() -> AnalyzeReport:
    parse = series(
        "request/parse", "time", "ns", "REGRESSED",
        comparison(Status.REGRESSED, Confidence.HIGH, 10.2, 0.0002, base=1210.0,
                   reason="+10.2% (worse, 95% CI +9.2% .. +11.2%, p=0.0002, beyond the 5% "
                          "threshold); 5 of 5 criteria met"),
        steps=[step("request/parse", "time", "ns", 1, 3, 2, 1210.0, 1333.4, worse=True)],
    )
    handle = series(
        "request/handle", "throughput", "ops/s", "IMPROVED",
        comparison(Status.IMPROVED, Confidence.MEDIUM, 6.1, 0.004, direction=Direction.HIGHER,
                   base=491000.0, reason="+6.1% (better, ...); 4 of 5 criteria met"),
        direction=Direction.HIGHER, env_changed=True,
        steps=[step("request/handle", "throughput", "ops/s", 3, 4, 1, 491000.0, 521000.0,
                    worse=False)],
    )
    chase = series(
        "memory/chase", "time", "ns", "NOISY",
        comparison(Status.NOISY, None, 3.0, 0.2, base=45000.0, cv=0.22,
                   reason="baseline CV 22% >= 15%: too noisy to judge a +3.0% change"),
        steps=[step("memory/chase", "time", "ns", 6, 6, 0, 45000.0, 47000.0, worse=True,
                    beyond=False, env_changed=True)],
    )
    crc = series("compute/crc32", "time", "ns", "UNCHANGED",
                 comparison(Status.UNCHANGED, None, -0.1, 0.7, base=9120.0,
                            reason="no significant change: -0.1%"))
    fresh = series("compute/sha256", "time", "ns", "INSUFFICIENT_DATA", runs=1, commits=1,
                   start=5, end=None, searched=False,
                   reason="runs at 1 commit of the range, need at least 2 to compare its start "
                          "and end")
    runs = [1, 1, 0, 1, 2, 0, 1, 1]
    return AnalyzeReport(
        suite="example", machine_id="bench-01", base=C[0], head=C[7], threshold_pct=None,
        default_threshold_pct=5.0, alpha=0.05, fdr_q=0.05,
        commits=tuple(RangeCommit(c.sha, c.subject, n, is_base=i == 0)
                      for i, (c, n) in enumerate(zip(C, runs, strict=True))),
        series=(parse, handle, chase, crc, fresh),
        alerts=(
            OpenAlert(7, "request/parse", "time", 9.8, "HIGH", C[3], "OPEN", in_range=True),
            OpenAlert(3, "", "*", 12.0, "HIGH", CommitInfo("9" * 40), "ACKNOWLEDGED",
                      in_range=False),
        ),
    )


def test_golden_markdown():
    path = GOLDEN / "analyze_report.md"
    text = render(report(), "markdown")
    if os.environ.get("PERFD_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_verdict_follows_alert_worthy_regressions_and_worse_steps():
    r = report()
    assert r.verdict == "REGRESSED"
    assert [s.benchmark for s in r.regressions] == ["request/parse"]
    # a worse step beyond the threshold is enough, even when start vs end is quiet
    quiet = replace(r.series[0], comparison=r.series[3].comparison, status="UNCHANGED")
    assert replace(r, series=(quiet,)).verdict == "REGRESSED"
    # a worse step below the threshold is not
    assert replace(r, series=(r.series[2],)).verdict == "INCONCLUSIVE"
    assert replace(r, series=(r.series[1], r.series[3])).verdict == "IMPROVED"
    assert replace(r, series=(r.series[3], r.series[4])).verdict == "UNCHANGED"
    assert replace(r, series=(r.series[4],)).verdict == "INCONCLUSIVE"
    assert replace(r, series=()).verdict == "INCONCLUSIVE"


def test_recommendations():
    r = report()
    recs = recommendations(r)
    assert recs[0] == (
        "request/parse (time) +10.2%: confirm with `perfd compare --suite example --baseline "
        "222222222222 --current 444444444444 --interleave`; the step is in one of 2 commits, run "
        "`perfd run --suite example --commit <sha>` on those between them to pin it down")
    assert any("between two runs of 777777777777, so the machine changed" in x for x in recs)
    assert any("compute/sha256 (time): too few commits with runs" in x
               and "(not measured yet: 333333333333, 666666666666)" in x for x in recs)
    assert any("memory/chase (time): the series is noisy (CV 22.0%)" in x for x in recs)
    assert any("environment fingerprint changed between runs 10 and 17" in x for x in recs)
    assert any(x.startswith("alert 7 (request/parse time) started inside this range") for x in recs)
    assert not any("alert 3" in x for x in recs)  # acknowledged, and older than the range
    # better steps need no confirmation
    assert not any("request/handle (throughput) +6.1%: confirm" in x for x in recs)

    # a step whose two runs saw different machines says so
    moved = replace(r.series[0], change_points=(replace(r.series[0].change_points[0],
                                                        env_changed=True),))
    (rec,) = recommendations(replace(r, series=(moved,), alerts=()))
    assert rec.endswith("; the environment fingerprint changed at the same runs, so check the "
                        "machine too")

    quiet = replace(r, series=(r.series[3],), alerts=())
    assert recommendations(quiet) == ["no action needed"]
    assert quiet.verdict == "UNCHANGED"

    # a start-vs-end regression that no step explains: compare the ends, then bisect
    unexplained = replace(r.series[0], change_points=())
    recs = recommendations(replace(r, series=(unexplained,), alerts=()))
    assert recs == [
        "request/parse (time) is +10.2% from 111111111111 to 888888888888 without a located "
        "step: confirm with `perfd compare --suite example --baseline 111111111111 --current "
        "888888888888 --interleave`, then run `perfd run` on the commits in between to find it"]


def test_no_series_says_so():
    r = replace(report(), series=(), alerts=())
    assert summary_line(r) == "INCONCLUSIVE: no stored runs of suite example on bench-01 in this range"
    text = render(r, "markdown")
    assert "none: no stored runs of this suite on this machine in the range" in text
    assert "no stored runs of this suite in the range: run `perfd run" in text


def test_json():
    data = json.loads(render(report(), "json"))
    assert data["format"] == "perfd-analyze-report" and data["version"] == 1
    assert data["verdict"] == "REGRESSED"
    assert data["base"] == {"commit": SHAS[0], "subject": SUBJECTS[0]}
    parse, handle, _chase, _crc, fresh = data["series"]
    assert parse["alert_worthy"] and parse["confidence"] == "HIGH"
    assert parse["start"] == {"commit": SHAS[0], "subject": SUBJECTS[0], "run_id": 10}
    assert parse["change_points"][0]["before"]["commit"] == SHAS[1]
    assert parse["change_points"][0]["after"]["commit"] == SHAS[3]
    assert parse["change_points"][0]["direction"] == "worse"
    assert handle["direction"] == "higher_is_better" and handle["env_changed"]
    assert fresh["status"] == "INSUFFICIENT_DATA" and fresh["end"] is None
    assert fresh["change_pct"] is None and fresh["change_points_searched"] is False
    assert data["open_alerts"][1]["benchmark"] is None
    assert [c["runs"] for c in data["commits"]] == [1, 1, 0, 1, 2, 0, 1, 1]
    assert data["recommendations"] == recommendations(report())


def test_twin_series_show_their_config():
    r = report()
    twin = replace(r.series[3], config_hash="feedfacefeedface")
    text = render(replace(r, series=(r.series[3], twin)), "markdown")
    assert "| compute/crc32 [config c0ffee00] | time |" in text
    assert "| compute/crc32 [config feedface] | time |" in text


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_renderers_are_pure(fmt):
    assert render(report(), fmt) == render(report(), fmt)
