"""The bisection's search and its three-way answers, against literal oracles: which commits
it tests, in which order, what skipped and unknown commits do to it, and what it records on
an alert."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from perfd.analysis.bisect import (
    Answer,
    BisectResult,
    Outcome,
    Probe,
    classify_ends,
    classify_midpoint,
    pick,
)
from perfd.analysis.compare import Comparison, compare_paired
from perfd.analysis.results import CommitInfo
from perfd.errors import UsageError
from perfd.flows.bisect import BisectRequest, SearchOutcome, measure, record_on_alert, search
from perfd.model import Direction
from perfd.store import AlertDraft, ResultStore, SeriesKey
from tests.unit import test_store

store_url = test_store.store_url

LINE = tuple(CommitInfo(f"{i:x}" * 40 if i < 16 else f"{i:040x}", f"commit {i}") for i in range(9))
CAPS = (20, 40)


class Oracle:
    """Answers by commit index: BAD from ``culprit`` on, GOOD before; ``skip`` indexes do not
    build; ``unknown`` maps an index to the pair cap from which it is known (None: never);
    ``flaky`` maps an index to how many questions about it are answered UNKNOWN first (a
    disturbance of the machine that passes)."""

    def __init__(self, culprit: int, skip: frozenset[int] = frozenset(),
                 unknown: dict[int, int | None] | None = None,
                 flaky: dict[int, int] | None = None) -> None:
        self.culprit, self.skip, self.unknown = culprit, skip, unknown or {}
        self.flaky = dict(flaky or {})
        self.asked: list[tuple[int, int]] = []

    def __call__(self, commit: CommitInfo, max_pairs: int) -> Probe:
        i = LINE.index(commit)
        self.asked.append((i, max_pairs))
        if i in self.skip:
            return Probe(commit, Answer.SKIPPED, "does not build: syntax error")
        known_from = self.unknown.get(i, 0)
        if self.flaky.get(i, 0) > 0:
            self.flaky[i] -= 1
            return Probe(commit, Answer.UNKNOWN, "NOISY", pairs=2 * max_pairs)
        if known_from is None or max_pairs < known_from:
            return Probe(commit, Answer.UNKNOWN, "neither end shown", pairs=2 * max_pairs)
        answer = Answer.BAD if i >= self.culprit else Answer.GOOD
        return Probe(commit, answer, f"index {i}", pairs=20)

    @property
    def tested(self) -> list[int]:
        return [i for i, _ in self.asked]


def run_search(oracle: Oracle, max_steps: int = 12) -> SearchOutcome:
    return search(LINE, oracle, pair_caps=CAPS, max_steps=max_steps)


@pytest.mark.parametrize("culprit", range(1, 9))
def test_every_culprit_position_is_found_in_log2_steps(culprit: int) -> None:
    oracle = Oracle(culprit)
    found = run_search(oracle)
    assert (found.last_good, found.first_bad, found.stop_reason) == (culprit - 1, culprit, "")
    assert len(oracle.tested) <= 3  # 7 commits between the ends: ceil(log2(8)) questions
    assert len(set(oracle.tested)) == len(oracle.tested)


def test_the_search_halves_from_the_upper_middle() -> None:
    oracle = Oracle(culprit=5)
    run_search(oracle)
    assert oracle.tested == [4, 6, 5]  # 0..8: 4 good -> 4..8: 6 bad -> 4..6: 5 bad


def test_a_commit_that_does_not_build_is_skipped_and_its_neighbour_tried() -> None:
    # The 8-commit scenario of the integration test: 1 good .. 8 bad, 3 does not build, 5 is
    # the culprit (indexes 0..7 here: 2 does not build, 4 is bad first).
    line = LINE[:8]
    oracle = Oracle(culprit=4, skip=frozenset({2}))
    found = search(line, oracle, pair_caps=CAPS, max_steps=12)
    assert oracle.tested == [4, 2, 3]  # 4 bad; 2 skipped, its later neighbour 3 good
    assert (found.last_good, found.first_bad) == (3, 4)
    assert [p.answer for p in found.probes] == [Answer.BAD, Answer.SKIPPED, Answer.GOOD]
    assert found.probes[1].commit == line[2] and "does not build" in found.probes[1].reason


def test_commits_that_do_not_build_next_to_the_culprit_leave_a_range() -> None:
    oracle = Oracle(culprit=5, skip=frozenset({4}))
    found = run_search(oracle)
    assert (found.last_good, found.first_bad) == (3, 5)  # 4 or 5: 4 cannot be built
    assert found.stop_reason == "the other commits of the range do not build"


def test_an_unknown_answer_is_measured_again_with_more_pairs() -> None:
    oracle = Oracle(culprit=5, unknown={4: 40})  # commit 4 needs 40 pairs to be told apart
    found = run_search(oracle)
    assert oracle.asked[:2] == [(4, 20), (4, 40)]
    first = found.probes[0]
    assert first.answer is Answer.GOOD and first.attempts == 2
    assert first.pairs == 2 * 20 + 20  # both attempts count
    assert (found.last_good, found.first_bad, found.stop_reason) == (4, 5, "")


def test_a_commit_still_unknown_at_the_cap_is_passed_over_like_one_that_does_not_build() -> None:
    oracle = Oracle(culprit=5, unknown={6: None})
    found = run_search(oracle)
    # 4 good; 6 unknown at 20 and 40 pairs; its later neighbour 7 bad; 5 bad
    assert oracle.asked == [(4, 20), (6, 20), (6, 40), (7, 20), (5, 20)]
    assert (found.last_good, found.first_bad, found.stop_reason) == (4, 5, "")
    assert found.probes[1].answer is Answer.UNKNOWN and found.probes[1].attempts == 2


def test_an_unknown_commit_next_to_the_culprit_is_measured_once_more_then_left_as_a_range() -> None:
    oracle = Oracle(culprit=5, unknown={5: None})
    found = run_search(oracle)
    assert oracle.asked == [(4, 20), (6, 20), (5, 20), (5, 40), (5, 20), (5, 40)]
    assert (found.last_good, found.first_bad) == (4, 6)  # proven: 4 good, 6 bad; 5 unknown
    assert found.stop_reason.startswith(
        f"{LINE[5].sha[:12]} stayed unknown at 40 pairs, measured twice: neither end shown")


def test_a_disturbance_that_passes_is_measured_through_on_the_second_chance() -> None:
    oracle = Oracle(culprit=5, flaky={5: 2})  # both attempts of its first measuring are NOISY
    found = run_search(oracle)
    assert oracle.asked == [(4, 20), (6, 20), (5, 20), (5, 40), (5, 20)]
    assert (found.last_good, found.first_bad, found.stop_reason) == (4, 5, "")


def test_unknown_and_unbuildable_commits_are_both_named_when_they_leave_a_range() -> None:
    oracle = Oracle(culprit=5, skip=frozenset({4}), unknown={5: None})
    found = run_search(oracle)
    assert (found.last_good, found.first_bad) == (3, 6)
    assert found.stop_reason == (
        f"{LINE[4].sha[:12]} does not build; {LINE[5].sha[:12]} stayed unknown at 40 pairs, "
        "measured twice: neither end shown")


def test_max_steps_ends_the_search_with_a_range() -> None:
    oracle = Oracle(culprit=5)
    found = run_search(oracle, max_steps=1)
    assert oracle.tested == [4]
    assert (found.last_good, found.first_bad) == (4, 8)
    assert found.stop_reason == "reached the cap of 1 tested commits"


def test_adjacent_ends_need_no_test() -> None:
    oracle = Oracle(culprit=1)
    found = search(LINE[:2], oracle, pair_caps=CAPS, max_steps=12)
    assert oracle.asked == [] and (found.last_good, found.first_bad) == (0, 1)


def test_measure_stops_at_the_first_known_answer() -> None:
    oracle = Oracle(culprit=3)
    probe = measure(LINE[2], oracle, (10, 20, 40))
    assert probe.answer is Answer.GOOD and probe.attempts == 1 and oracle.asked == [(2, 10)]


@pytest.mark.parametrize(("lo", "hi", "excluded", "expected"), [
    (0, 8, (), 4), (0, 7, (), 4), (0, 4, (2,), 3), (0, 4, (2, 3), 1), (3, 5, (4,), None),
    (4, 5, (), None),
])
def test_pick_prefers_the_middle_then_the_later_neighbour(lo, hi, excluded, expected) -> None:
    assert pick(lo, hi, excluded) == expected


# --------------------------------------------------------------------------- three-way answers

def paired(change_pct: float, *, n: int = 12, noise: float = 0.002, seed: int = 1,
           threshold_pct: float = 5.0) -> Comparison:
    """A lock-step comparison whose current side is change_pct slower, with log-noise."""
    rng = np.random.default_rng(seed)
    base = 1000.0 * np.exp(rng.normal(0.0, noise, n))
    cur = base * (1 + change_pct / 100) * np.exp(rng.normal(0.0, noise, n))
    return compare_paired(base, cur, direction=Direction.LOWER, threshold_pct=threshold_pct,
                          alpha=0.05, rng=np.random.default_rng(seed))


def test_a_commit_at_the_good_level_is_good() -> None:
    answer, reason = classify_midpoint(paired(0.0), paired(15.0, seed=2), 5.0)
    assert answer is Answer.GOOD
    assert "same as the good end" in reason and "the bad end is worse" in reason


def test_a_commit_at_the_bad_level_is_bad() -> None:
    answer, reason = classify_midpoint(paired(15.0), paired(0.0, seed=2), 5.0)
    assert answer is Answer.BAD
    assert "worse than the good end" in reason and "same as the bad end" in reason


def test_one_clear_comparison_is_enough_when_the_other_cannot_tell() -> None:
    too_few = paired(15.0, n=4, seed=2)  # 4 pairs: the signed-rank test cannot decide
    assert classify_midpoint(paired(0.0), too_few, 5.0)[0] is Answer.GOOD
    assert classify_midpoint(too_few, paired(0.0, seed=3), 5.0)[0] is Answer.BAD


def test_a_commit_half_way_between_the_ends_is_unknown() -> None:
    # the flow compares at the midpoint threshold: here half of a 15% step
    vs_good, vs_bad = paired(7.5, threshold_pct=7.5), paired(7.5, seed=2, threshold_pct=7.5)
    answer, reason = classify_midpoint(vs_good, vs_bad, 7.5)
    assert answer is Answer.UNKNOWN and reason.startswith("neither end shown at +-7.5%")


def test_comparisons_that_disagree_are_unknown() -> None:
    answer, reason = classify_midpoint(paired(0.0), paired(0.0, seed=2), 5.0)
    assert answer is Answer.UNKNOWN and reason.startswith("contradictory")


def test_the_ends_must_show_an_alert_worthy_regression() -> None:
    assert classify_ends(paired(15.0), 5.0)[0] is Answer.BAD
    answer, reason = classify_ends(paired(0.0), 5.0)
    assert answer is Answer.GOOD and "within +-5% of the good end" in reason
    assert classify_ends(paired(15.0, n=4), 5.0)[0] is Answer.UNKNOWN  # cannot tell yet
    assert classify_ends(None, 5.0)[0] is Answer.UNKNOWN


# --------------------------------------------------------------------------- results and alerts

def result(outcome: Outcome, last_good: int, first_bad: int, **changes: Any) -> BisectResult:
    values: dict[str, Any] = dict(
        suite="example", machine_id="bench-01", benchmark="request/parse", metric="time",
        unit="ns", good=LINE[0], bad=LINE[8], outcome=outcome, threshold_pct=5.0,
        midpoint_threshold_pct=5.0,
        ends=Probe(LINE[8], Answer.BAD, "the bad end is +15.0%", paired(15.0), pairs=10),
        commits=LINE[1:], probes=(), last_good=LINE[last_good], first_bad=LINE[first_bad],
        stop_reason="" if outcome is Outcome.FOUND else "a commit stayed unknown", builds=5,
        cached_builds=2, pairs=62, wall_time_s=12.5)
    values.update(changes)
    return BisectResult(**values)


def test_the_result_names_its_culprit_or_range() -> None:
    found = result(Outcome.FOUND, 4, 5)
    assert found.culprit == LINE[5] and found.suspects == (LINE[5],)
    assert found.summary == f"bisected: first bad commit {LINE[5].sha} (commit 5), 5 builds, 62 pairs"
    ranged = result(Outcome.RANGE, 2, 5)
    assert ranged.culprit is None and ranged.suspects == LINE[3:6]
    assert ranged.summary.startswith("bisected to a range: the first bad commit is one of 3 ")
    nothing = result(Outcome.NOTHING, 0, 8)
    assert nothing.suspects == LINE[1:]
    assert nothing.summary.startswith("bisect found nothing to bisect: ")


def test_requests_refuse_impossible_sizes() -> None:
    with pytest.raises(UsageError, match="min-pairs"):
        BisectRequest("s", "a", "b", "x", min_pairs=10, max_pairs=5)
    with pytest.raises(UsageError, match="max-steps"):
        BisectRequest("s", "a", "b", "x", max_steps=0)
    with pytest.raises(UsageError, match="threshold"):
        BisectRequest("s", "a", "b", "x", threshold_pct=0)
    assert BisectRequest("s", "a", "b", "x", max_pairs=12, unknown_retries=2).pair_caps == (12, 24, 48)


def test_the_result_is_recorded_on_the_alert_without_moving_it(store: ResultStore) -> None:
    key = SeriesKey("example", "request/parse", "time", "bench-01", "cfg-parse")
    alert_id = store.open_alert(AlertDraft(
        kind="code", series=key, baseline_commit=LINE[0].sha, first_bad_commit=LINE[8].sha,
        baseline_run_id=None, last_run_id=None, change_pct=15.0, confidence="HIGH",
        p_value=0.001, reason="confirmed by a lock-step A/B; (not all measured: bisect them)"))
    services: Any = SimpleNamespace(store=store)  # record_on_alert needs the store only
    record_on_alert(services, result(Outcome.RANGE, 2, 5), alert_id)
    alert = record_on_alert(services, result(Outcome.FOUND, 4, 5), alert_id)
    assert alert.state == "OPEN" and alert.first_bad_commit == LINE[8].sha
    # the second bisection's note replaces the first one's at the start of the reason
    assert alert.reason == (f"bisected: first bad commit {LINE[5].sha} (commit 5), 5 builds, "
                            "62 pairs; confirmed by a lock-step A/B; (not all measured: bisect them)")
    _, events = store.get_alert(alert_id)
    notes = [(e.from_state, e.to_state, e.actor) for e in events[1:]]
    assert notes == [("OPEN", "OPEN", "perfd bisect")] * 2
    assert events[-1].reason.startswith("bisected: first bad commit")
    store.transition(alert_id, "RESOLVED", actor="t", reason="fixed")
    closed = store.annotate_alert(alert_id, actor="t", note="a note on a closed alert")
    assert closed.state == "RESOLVED" and closed.reason == alert.reason
    with pytest.raises(UsageError):
        store.annotate_alert(alert_id, actor="t", note=" ")
