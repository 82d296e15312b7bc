"""Should CI let a change through? The gate's decision over a comparison and its budgets.

`perfd gate` measures a change against its baseline (the merge base with the target branch)
exactly as `perfd compare` does and holds the current side to the suite's budgets; this
module decides, from those results alone:

- **BLOCKED** when a benchmark x metric REGRESSED with at least the required confidence
  (HIGH unless asked otherwise) or a ``block`` budget failed (FAIL). Warn budgets are shown
  and pass; regressions below the required confidence are shown and pass.
- **PASS** otherwise, or when an override (a ``Perf-Override:`` trailer in the current
  commit's message, or ``--override REASON``) accepts the blockers: the verdict then says
  it was overridden, by what and why.
- **ERROR** ("could not measure") when the measurement failed (build, harness, a machine
  that stayed contended) or answered nothing (every benchmark NOISY, INSUFFICIENT_DATA or
  INCOMPARABLE and no budget failing): too little data is never a pass. An override does
  not turn an ERROR into a pass: it accepts a known regression, not an unmeasured change.

Pure: results in, frozen dataclasses out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from perfd.analysis.results import UNDECIDED, CommitInfo, ComparedBenchmark, CompareReport
from perfd.errors import EXIT_NEGATIVE, EXIT_OK, EXIT_REPOSITORY
from perfd.model import Confidence, Status
from perfd.records import BudgetRecord

# Versions of the JSON verdict (documented in docs/ci-gate.md), newest last:
#   perfd-gate/1 - first shape.
GATE_SCHEMA = "perfd-gate/1"
# The commit trailer that accepts a known regression: "Perf-Override: <reason>".
OVERRIDE_TRAILER = "Perf-Override"
# The gate's "could not measure" is perfd's exit status 3 (there, "repository error": a
# commit that cannot be checked out cannot be measured either).
EXIT_UNMEASURED = EXIT_REPOSITORY


class GateVerdict(StrEnum):
    PASS = "PASS"
    BLOCKED = "BLOCKED"
    ERROR = "ERROR"  # could not measure


EXIT_CODES = {GateVerdict.PASS: EXIT_OK, GateVerdict.BLOCKED: EXIT_NEGATIVE,
              GateVerdict.ERROR: EXIT_UNMEASURED}
OVERRIDE_SOURCES = ("trailer", "flag")
BASELINE_SOURCES = ("flag", "merge-base")


@dataclass(frozen=True, slots=True)
class Override:
    """An accepted known regression: why, and where it was said (the commit's trailer, or
    the --override flag a CI passes from a pull-request label)."""

    reason: str
    source: str  # OVERRIDE_SOURCES

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("Override.reason: must not be blank")
        if self.source not in OVERRIDE_SOURCES:
            raise ValueError(f"Override.source: must be one of {', '.join(OVERRIDE_SOURCES)}, "
                             f"got {self.source!r}")

    @property
    def label(self) -> str:
        """How people read where it came from."""
        return f"{OVERRIDE_TRAILER} trailer" if self.source == "trailer" else "--override flag"


@dataclass(frozen=True, slots=True)
class Blocker:
    """One reason the gate blocks: a regression or a failing block budget."""

    kind: str  # "regression" | "budget"
    benchmark: str
    metric: str
    detail: str


@dataclass(frozen=True, slots=True)
class GateDecision:
    verdict: GateVerdict
    reason: str
    blockers: tuple[Blocker, ...] = ()  # what blocks (or blocked, before an override)
    overridden: bool = False  # blockers accepted by an override: the verdict is PASS

    def __post_init__(self) -> None:
        if self.overridden and (self.verdict is not GateVerdict.PASS or not self.blockers):
            raise ValueError("GateDecision.overridden: only a PASS with blockers is overridden, "
                             f"got {self.verdict} with {len(self.blockers)} blocker(s)")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def blocks(row: ComparedBenchmark, required: Confidence) -> bool:
    """A regression at the required confidence or more."""
    c = row.comparison
    return (c.status is Status.REGRESSED and c.confidence is not None
            and c.confidence.rank >= required.rank)


def _regression_blocker(row: ComparedBenchmark) -> Blocker:
    c = row.comparison
    lo, hi = ((r - 1.0) * 100.0 for r in c.ratio_ci)
    return Blocker("regression", row.benchmark, row.metric,
                   f"{c.change_pct:+.1f}% (95% CI {lo:+.1f}% .. {hi:+.1f}%), REGRESSED at "
                   f"{c.confidence} confidence")


def _budget_blocker(budget: BudgetRecord) -> Blocker:
    return Blocker("budget", budget.benchmark, budget.metric,
                   f"block budget {budget.statistic} {budget.limit_text} failed"
                   + (f" ({budget.confidence} confidence)" if budget.confidence else "")
                   + (f", owner {budget.owner}" if budget.owner else ""))


def decide(rows: Sequence[ComparedBenchmark], budgets: Sequence[BudgetRecord], *,
           required: Confidence = Confidence.HIGH,
           override: Override | None = None) -> GateDecision:
    """The gate's verdict over a comparison's rows and the current side's budget verdicts
    (see the module docstring)."""
    if not rows:
        return could_not_measure("no benchmark x metric was compared")
    blockers = tuple([_regression_blocker(r) for r in rows if blocks(r, required)]
                     + [_budget_blocker(b) for b in budgets if b.status == "FAIL"])
    if blockers:
        what = _count_blockers(blockers, required)
        if override is not None:
            return GateDecision(GateVerdict.PASS, f"{what}, accepted by the {override.label}: "
                                f"{override.reason}", blockers, overridden=True)
        return GateDecision(GateVerdict.BLOCKED, what, blockers)
    if all(r.comparison.status.value in UNDECIDED for r in rows):
        return could_not_measure(
            f"no benchmark could be decided ({_status_counts(rows)}): too little data or too "
            "much noise to tell; run again on a quieter machine or with more --max-pairs")
    return GateDecision(GateVerdict.PASS, _pass_reason(rows, budgets, required))


def could_not_measure(reason: str) -> GateDecision:
    """The ERROR verdict (exit 3) with its cause."""
    return GateDecision(GateVerdict.ERROR, f"could not measure: {reason}")


def _count_blockers(blockers: Sequence[Blocker], required: Confidence) -> str:
    regressions = sum(b.kind == "regression" for b in blockers)
    budgets = len(blockers) - regressions
    parts = ([f"{regressions} regression(s) at {required} confidence or more"] if regressions
             else []) + ([f"{budgets} failing block budget(s)"] if budgets else [])
    return "blocked by " + " and ".join(parts)


def _pass_reason(rows: Sequence[ComparedBenchmark], budgets: Sequence[BudgetRecord],
                 required: Confidence) -> str:
    parts = [f"no regression at {required} confidence or more, no failing block budget"]
    below = sum(r.comparison.status is Status.REGRESSED for r in rows)
    if below:
        parts.append(f"{below} regression(s) below {required} confidence shown")
    warned = sum(b.status == "WARN" for b in budgets)
    if warned:
        parts.append(f"{warned} warn budget(s) broken (shown, not blocking)")
    undecided = sum(r.comparison.status.value in UNDECIDED for r in rows)
    if undecided:
        parts.append(f"{undecided} benchmark x metric(s) undecided")
    return "; ".join(parts)


def _status_counts(rows: Sequence[ComparedBenchmark]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.comparison.status.value] = counts.get(r.comparison.status.value, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


@dataclass(frozen=True, slots=True)
class BaselineChoice:
    """The commit the change is measured against, and how it was chosen."""

    commit: CommitInfo
    source: str  # BASELINE_SOURCES: given with --baseline, or the merge base
    target_branch: str | None = None  # the branch the merge base was taken with

    def __post_init__(self) -> None:
        if self.source not in BASELINE_SOURCES:
            raise ValueError(f"BaselineChoice.source: must be one of "
                             f"{', '.join(BASELINE_SOURCES)}, got {self.source!r}")
        if self.source == "merge-base" and not self.target_branch:
            raise ValueError("BaselineChoice: a merge-base baseline needs its target branch")


@dataclass(frozen=True, slots=True)
class GateResult:
    """Everything a gate run found: what every rendering shows and the store records."""

    suite: str
    machine_id: str
    baseline: BaselineChoice
    current: CommitInfo
    required_confidence: Confidence
    decision: GateDecision
    comparison: CompareReport | None = None  # None when nothing could be measured
    budgets: tuple[BudgetRecord, ...] = ()  # the current side's budget verdicts
    override: Override | None = None  # given (applied only when decision.overridden)
    attempts: int = 1  # measurements made (more than one when the machine was contended)
    duration_s: float | None = None  # wall time to the verdict
    verdict_id: int | None = None  # the stored verdict's id
    created_at: datetime | None = None  # when it was stored

    @property
    def verdict(self) -> GateVerdict:
        return self.decision.verdict

    @property
    def exit_code(self) -> int:
        return self.decision.exit_code

    @property
    def rows(self) -> tuple[ComparedBenchmark, ...]:
        return self.comparison.rows if self.comparison is not None else ()

    @property
    def changed(self) -> bool:
        """Worth a PR comment: a benchmark moved (REGRESSED or IMPROVED at any confidence), a
        budget broke (FAIL or WARN), an override was applied, or the gate did not pass."""
        return (self.verdict is not GateVerdict.PASS or self.decision.overridden
                or any(r.comparison.status in (Status.REGRESSED, Status.IMPROVED)
                       for r in self.rows)
                or any(b.status in ("FAIL", "WARN") for b in self.budgets))

    def blocking(self, row: ComparedBenchmark) -> bool:
        """Whether this row blocks (or blocked, before an override)."""
        return blocks(row, self.required_confidence)
