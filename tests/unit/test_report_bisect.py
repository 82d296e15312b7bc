"""Golden files pin the bisect report's text, Markdown and JSON renderings.

Regenerate after an intended change with: PERFD_UPDATE_GOLDEN=1 pytest tests/unit/test_report_bisect.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from perfd.analysis.bisect import Answer, BisectResult, Outcome, Probe
from perfd.analysis.compare import Comparison, Confidence, Criterion, Status
from perfd.analysis.results import CommitInfo
from perfd.model import Direction
from perfd.report.bisect import headline, render

GOLDEN = Path(__file__).parents[1] / "golden"
SUBJECTS = ["minilib: initial import", "docs: describe the knobs", "crc32: a typo breaks the build",
            "crc32: fix the build", "request: make parse 15% slower", "docs: changelog",
            "tests: one more case", "release 1.1"]
COMMITS = tuple(CommitInfo(f"{i + 1:x}" * 40, s) for i, s in enumerate(SUBJECTS))


def comparison(status: Status, change: float, *, confidence: Confidence | None = None,
               magnitude: bool = True, reason: str = "") -> Comparison:
    names = ["magnitude", "significance", "consistency", "stable_baseline", "environment"]
    met = (magnitude, True, False, True, True)
    ratio = 1 + change / 100
    return Comparison(
        status=status, confidence=confidence, reason=reason or f"{status.value.lower()} because",
        baseline_median=1280.0, current_median=1280.0 * ratio, change_pct=change,
        ratio_ci=(ratio - 0.004, ratio + 0.004), p_value=0.002, test="wilcoxon-signed-rank",
        cohen_d=None, hodges_lehmann_pct=change, cliffs_delta=None, baseline_cv=0.01,
        criteria=tuple(Criterion(n, m, f"{n} detail") for n, m in zip(names, met, strict=True)),
        n_baseline=10, n_current=10, direction=Direction.LOWER, p_adjusted=0.002)


SAME = comparison(Status.UNCHANGED, 0.1)
WORSE = comparison(Status.REGRESSED, 15.2, confidence=Confidence.HIGH)


def result(outcome: Outcome = Outcome.FOUND) -> BisectResult:
    good, *between = COMMITS
    probes = (
        Probe(COMMITS[4], Answer.BAD, "worse than the good end (+15.2% [+14.8%, +15.6%]); same as "
              "the bad end (+0.1% [-0.3%, +0.5%] to it)", WORSE, SAME, pairs=20),
        Probe(COMMITS[2], Answer.SKIPPED, "does not build: suite example: build step 1 (make) "
              "exited with status 2"),
        Probe(COMMITS[3], Answer.GOOD, "same as the good end (+0.1% [-0.3%, +0.5%]); the bad end "
              "is worse (+15.2% [+14.8%, +15.6%] to it)", SAME, WORSE, pairs=20, attempts=2),
    )
    found = outcome is Outcome.FOUND
    return BisectResult(
        suite="example", machine_id="bench-01", benchmark="request/parse", metric="time",
        unit="ns", good=good, bad=COMMITS[-1], outcome=outcome, threshold_pct=5.0,
        midpoint_threshold_pct=5.0,
        ends=Probe(COMMITS[-1], Answer.BAD, "the bad end is +15.2% [+14.8%, +15.6%] against the "
                   "good end: regressed because", WORSE, pairs=10),
        commits=tuple(between), probes=probes if found else probes[:1],
        last_good=COMMITS[3] if found else good, first_bad=COMMITS[4],
        stop_reason="" if found else f"{COMMITS[4].sha[:12]} stayed unknown at 40 pairs",
        builds=5, cached_builds=2, pairs=50, wall_time_s=42.25, alert_id=3 if found else None)


@pytest.mark.parametrize("fmt, suffix", [("text", "txt"), ("markdown", "md"), ("json", "json")])
def test_golden(fmt: str, suffix: str) -> None:
    path = GOLDEN / f"bisect_report.{suffix}"
    text = render(result(), fmt)
    if os.environ.get("PERFD_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_the_json_names_the_culprit_and_what_was_skipped() -> None:
    doc = json.loads(render(result(), "json"))
    assert doc["format"] == "perfd-bisect-report" and doc["version"] == 1
    assert doc["outcome"] == "found" and doc["first_bad_commit"] == COMMITS[4].sha
    assert [s["commit"] for s in doc["skipped"]] == [COMMITS[2].sha]
    assert [s["answer"] for s in doc["steps"]] == ["bad", "skipped", "good"]
    assert (doc["builds"], doc["cached_builds"], doc["pairs"]) == (5, 2, 50)


def test_a_range_is_reported_with_its_suspects() -> None:
    ranged = result(Outcome.RANGE)
    assert headline(ranged).startswith("range: the first bad commit is one of 4 commits after "
                                       f"{COMMITS[0].sha[:12]} up to {COMMITS[4].sha[:12]}")
    text = render(ranged, "text")
    assert text.count("<- may be the first bad commit") == 4
    assert json.loads(render(ranged, "json"))["first_bad_commit"] is None
