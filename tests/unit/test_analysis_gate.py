"""The gate's decision over literal comparisons and budget verdicts (perfd.analysis.gate)."""

from __future__ import annotations

import pytest

from perfd.analysis.compare import Comparison, Criterion
from perfd.analysis.gate import (
    EXIT_CODES,
    BaselineChoice,
    GateDecision,
    GateVerdict,
    Override,
    could_not_measure,
    decide,
)
from perfd.analysis.results import CommitInfo, ComparedBenchmark
from perfd.model import Confidence, Direction, Status
from perfd.records import BudgetRecord


def row(status: Status, confidence: Confidence | None = None, change: float = 0.0,
        benchmark: str = "request/parse", metric: str = "time") -> ComparedBenchmark:
    ratio = 1 + change / 100
    return ComparedBenchmark(benchmark, metric, "ns", Comparison(
        status=status, confidence=confidence, reason=f"{status.value.lower()} because",
        baseline_median=1000.0, current_median=1000.0 * ratio, change_pct=change,
        ratio_ci=(ratio - 0.01, ratio + 0.01), p_value=0.001, test="wilcoxon-signed-rank",
        cohen_d=None, hodges_lehmann_pct=None, cliffs_delta=None, baseline_cv=0.01,
        criteria=(Criterion("magnitude", True, "beyond"),), n_baseline=10, n_current=10,
        direction=Direction.LOWER), 10)


def budget(status: str, action: str = "block") -> BudgetRecord:
    return BudgetRecord(
        run_id=2, budget_index=0, suite="example", benchmark="request/parse", metric="time",
        statistic="median", limit_text="2.5us, +5%", action=action, min_confidence="MEDIUM",
        owner="team-request", status=status, value=1400.0, baseline_run_id=1,
        baseline_value=1200.0, change_pct=16.7, confidence="HIGH" if status != "PASS" else None,
        reason="median regressed +16.7% against the baseline")


UNCHANGED = row(Status.UNCHANGED, change=0.2, benchmark="compute/crc32")


def test_a_regression_at_medium_passes_when_high_is_required():
    decision = decide([row(Status.REGRESSED, Confidence.MEDIUM, 6.0), UNCHANGED], [],
                      required=Confidence.HIGH)
    assert decision.verdict is GateVerdict.PASS and decision.exit_code == 0
    assert decision.blockers == ()
    assert "1 regression(s) below HIGH confidence shown" in decision.reason


def test_a_regression_at_high_blocks():
    decision = decide([row(Status.REGRESSED, Confidence.HIGH, 15.0), UNCHANGED], [])
    assert decision.verdict is GateVerdict.BLOCKED and decision.exit_code == 1
    (blocker,) = decision.blockers
    assert (blocker.kind, blocker.benchmark, blocker.metric) == ("regression", "request/parse",
                                                                 "time")
    assert "+15.0%" in blocker.detail and "HIGH" in blocker.detail
    assert decision.reason == "blocked by 1 regression(s) at HIGH confidence or more"


def test_the_required_confidence_can_be_lowered():
    rows = [row(Status.REGRESSED, Confidence.MEDIUM, 6.0)]
    assert decide(rows, [], required=Confidence.MEDIUM).verdict is GateVerdict.BLOCKED
    low = [row(Status.REGRESSED, Confidence.LOW, 2.0)]
    assert decide(low, [], required=Confidence.MEDIUM).verdict is GateVerdict.PASS
    assert decide(low, [], required=Confidence.LOW).verdict is GateVerdict.BLOCKED


def test_an_improvement_never_blocks():
    decision = decide([row(Status.IMPROVED, Confidence.HIGH, -20.0)], [])
    assert decision.verdict is GateVerdict.PASS


def test_a_failing_block_budget_blocks():
    decision = decide([UNCHANGED], [budget("FAIL")])
    assert decision.verdict is GateVerdict.BLOCKED
    (blocker,) = decision.blockers
    assert blocker.kind == "budget"
    assert "block budget median 2.5us, +5% failed" in blocker.detail
    assert "owner team-request" in blocker.detail
    assert decision.reason == "blocked by 1 failing block budget(s)"


def test_a_warn_budget_is_shown_and_passes():
    decision = decide([UNCHANGED], [budget("WARN", action="warn"), budget("PASS")])
    assert decision.verdict is GateVerdict.PASS and decision.blockers == ()
    assert "1 warn budget(s) broken (shown, not blocking)" in decision.reason


def test_no_data_budgets_do_not_block():
    assert decide([UNCHANGED], [budget("NO_DATA")]).verdict is GateVerdict.PASS


def test_an_override_passes_and_is_labelled():
    override = Override("strict validation costs 15% in parse", "trailer")
    decision = decide([row(Status.REGRESSED, Confidence.HIGH, 15.0)], [budget("FAIL")],
                      override=override)
    assert decision.verdict is GateVerdict.PASS and decision.exit_code == 0
    assert decision.overridden
    assert len(decision.blockers) == 2  # what was accepted stays on record
    assert decision.reason == (
        "blocked by 1 regression(s) at HIGH confidence or more and 1 failing block budget(s), "
        "accepted by the Perf-Override trailer: strict validation costs 15% in parse")
    flag = decide([row(Status.REGRESSED, Confidence.HIGH, 15.0)], [],
                  override=Override("label perf-override", "flag"))
    assert "accepted by the --override flag: label perf-override" in flag.reason


def test_an_override_without_blockers_changes_nothing():
    decision = decide([UNCHANGED], [], override=Override("just in case", "flag"))
    assert decision.verdict is GateVerdict.PASS and not decision.overridden


def test_nothing_decided_is_an_error_not_a_pass():
    rows = [row(Status.NOISY, change=4.0), row(Status.INSUFFICIENT_DATA, benchmark="b")]
    decision = decide(rows, [])
    assert decision.verdict is GateVerdict.ERROR and decision.exit_code == 3
    assert decision.reason.startswith("could not measure: no benchmark could be decided "
                                      "(1 INSUFFICIENT_DATA, 1 NOISY)")
    # an override accepts a measured regression, not an unmeasured change
    assert decide(rows, [], override=Override("x", "flag")).verdict is GateVerdict.ERROR
    # ... but a failing budget is measured enough to block
    assert decide(rows, [budget("FAIL")]).verdict is GateVerdict.BLOCKED
    # one undecided row among decided ones passes, and says so
    mixed = decide([UNCHANGED, rows[0]], [])
    assert mixed.verdict is GateVerdict.PASS and "1 benchmark x metric(s) undecided" in mixed.reason


def test_no_rows_could_not_be_measured():
    assert decide([], []).verdict is GateVerdict.ERROR
    assert could_not_measure("the baseline does not build").reason == (
        "could not measure: the baseline does not build")


def test_exit_codes_and_validation():
    assert EXIT_CODES == {GateVerdict.PASS: 0, GateVerdict.BLOCKED: 1, GateVerdict.ERROR: 3}
    with pytest.raises(ValueError, match="Override.reason"):
        Override("  ", "flag")
    with pytest.raises(ValueError, match="Override.source"):
        Override("why", "label")
    with pytest.raises(ValueError, match="overridden"):
        GateDecision(GateVerdict.BLOCKED, "x", overridden=True)
    with pytest.raises(ValueError, match="target branch"):
        BaselineChoice(CommitInfo("a" * 40), "merge-base")
    with pytest.raises(ValueError, match="source"):
        BaselineChoice(CommitInfo("a" * 40), "parent")
