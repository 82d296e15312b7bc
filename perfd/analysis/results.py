"""What compare and analyze conclude: frozen results whose verdicts follow one rule.

A comparison of two commits (CompareReport) or an analysis of a commit range (AnalyzeReport)
carries its rows and its overall ``verdict``; every front door (CLI, daemon API, CI gate)
reads the verdict here, and ``perfd.report`` only formats it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from perfd.analysis.compare import Comparison
from perfd.analysis.fdr import InfraFinding
from perfd.model import AlertAction, Confidence, Direction, Status, Verdict
from perfd.records import SeriesKey

# A row's status: a Status value, or ERROR when the analysis itself could not be done.
ERROR = "ERROR"
# Statuses that say "we cannot tell", never "unchanged".
UNDECIDED = (Status.INSUFFICIENT_DATA.value, Status.NOISY.value, Status.INCOMPARABLE.value, ERROR)
# Fewest runs the change-point detector can split with its defaults: min_segment 5 + confirm 3.
MIN_POINTS_FOR_CHANGE_POINTS = 8



@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    subject: str = ""


@dataclass(frozen=True, slots=True)
class ComparedBenchmark:
    benchmark: str
    metric: str
    unit: str
    comparison: Comparison
    pairs: int | None = None  # interleaved pairs measured; None when stored runs were compared


@dataclass(frozen=True, slots=True)
class EvidenceSummary:
    """Where a regression's evidence bundle is, and what it points at."""

    benchmark: str
    directory: str
    method: str  # how the profiles were taken: perf or harness
    top_functions: tuple[tuple[str, float], ...]  # (function, growth in top_unit)
    suspects: tuple[tuple[str, str, str], ...]  # (sha, subject, why)
    top_unit: str = "pts of samples"  # or "ns per op" when latencies were known


@dataclass(frozen=True, slots=True)
class CompareReport:
    suite: str
    machine_id: str
    baseline: CommitInfo
    current: CommitInfo
    mode: str  # "interleaved" or "stored runs"
    threshold_pct: float
    alpha: float
    fdr_q: float
    rows: tuple[ComparedBenchmark, ...]
    infrastructure: InfraFinding | None = None
    baseline_run_id: int | None = None
    current_run_id: int | None = None
    evidence: tuple[EvidenceSummary, ...] = ()
    evidence_errors: tuple[str, ...] = ()
    # why a side of an interleaved run was CONTENDED (its samples off their CPU), if one was
    contended: str | None = None

    @property
    def regressions(self) -> list[ComparedBenchmark]:
        """Alert-worthy regressions (REGRESSED at MEDIUM or HIGH confidence)."""
        if self.infrastructure is not None:
            return []
        return [r for r in self.rows if r.comparison.alert_worthy]

    @property
    def verdict(self) -> Verdict:
        if self.infrastructure is not None:
            return Verdict.INFRASTRUCTURE
        if self.regressions:
            return Verdict.REGRESSED
        statuses = {r.comparison.status for r in self.rows}
        if Status.IMPROVED in statuses:
            return Verdict.IMPROVED
        if statuses and statuses <= {Status.INSUFFICIENT_DATA, Status.NOISY, Status.INCOMPARABLE}:
            return Verdict.INCONCLUSIVE
        return Verdict.UNCHANGED


def confidence_rank(c: Confidence | None) -> int:
    return {Confidence.HIGH: 3, Confidence.MEDIUM: 2, Confidence.LOW: 1}.get(c, 0) if c else 0



def sort_rows(rows: Sequence[ComparedBenchmark]) -> tuple[ComparedBenchmark, ...]:
    """Alert-worthy regressions first, then other regressions, then the rest; larger changes
    first within each group, then by name."""
    def key(r: ComparedBenchmark) -> tuple[int, int, float, str, str]:
        c = r.comparison
        group = 0 if c.alert_worthy else 1 if c.status is Status.REGRESSED else 2
        return (group, -confidence_rank(c.confidence), -abs(c.change_pct), r.benchmark, r.metric)

    return tuple(sorted(rows, key=key))


@dataclass(frozen=True, slots=True)
class RangeCommit:
    """One commit of the range, oldest first; ``runs`` counts the suite's completed runs at it
    on this machine (compare runs excluded)."""

    sha: str
    subject: str
    runs: int
    is_base: bool = False


@dataclass(frozen=True, slots=True)
class ChangePointFinding:
    """A step in one series inside the range: it landed after ``before`` (last commit of the
    old segment) and at or before ``after`` (first commit of the new segment), i.e. in one of
    ``suspects`` commits. ``shift_pct`` is signed in the metric's own terms; ``beyond_threshold``
    means the step passed the decision rule at MEDIUM or HIGH confidence (``comparison``)."""

    benchmark: str
    metric: str
    unit: str
    before: CommitInfo
    after: CommitInfo
    suspects: int
    before_median: float
    after_median: float
    shift_pct: float
    worse: bool
    beyond_threshold: bool
    score: float
    env_changed: bool = False  # the runs on either side have different environment fingerprints
    # the one decision rule over the step (processes of the segment before vs after); None
    # when it could not be applied, and then beyond_threshold is the point estimate's
    comparison: Comparison | None = None
    # one of the two steps around a single run that stands apart from the runs on both sides
    # of it (in and out of a one-commit excursion; reference-paired series only)
    excursion: bool = False

    @property
    def same_commit(self) -> bool:
        """The step lies between two runs of one commit: the machine moved, not the code."""
        return self.before.sha == self.after.sha

    @property
    def direction_word(self) -> str:
        return "worse" if self.worse else "better"


@dataclass(frozen=True, slots=True)
class SeriesAnalysis:
    """One benchmark x metric (x config) over the range.

    ``status`` is a Status value or ERROR. ``start``/``end`` are the first and last commits of
    the range that have runs; the start-vs-end ``comparison`` is between the latest run at each
    (None when there was nothing to compare). ``change_points_searched`` is False when the
    range holds too few runs for the change-point detector."""

    benchmark: str
    metric: str
    unit: str
    direction: Direction
    config_hash: str
    threshold_pct: float
    n_runs: int
    n_commits: int
    status: str
    reason: str
    start: CommitInfo | None = None
    end: CommitInfo | None = None
    start_run_id: int | None = None
    end_run_id: int | None = None
    start_median: float | None = None
    end_median: float | None = None
    comparison: Comparison | None = None
    env_changed: bool = False
    change_points: tuple[ChangePointFinding, ...] = ()
    change_points_searched: bool = False
    against: str = ""  # a ratio series: which reference (and where it was re-anchored)

    @property
    def confidence(self) -> Confidence | None:
        return self.comparison.confidence if self.comparison is not None else None

    @property
    def change_pct(self) -> float | None:
        if self.comparison is not None:
            return self.comparison.change_pct
        if self.start_median is None or self.end_median is None or self.start_median == 0:
            return None
        return (self.end_median / self.start_median - 1.0) * 100.0

    @property
    def alert_worthy(self) -> bool:
        return self.comparison is not None and self.comparison.alert_worthy

    @property
    def worse_steps(self) -> list[ChangePointFinding]:
        """Change points in the worse direction at least the threshold in size."""
        return [cp for cp in self.change_points if cp.worse and cp.beyond_threshold]

    @property
    def label(self) -> str:
        return f"{self.benchmark} ({self.metric})"


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An OPEN or ACKNOWLEDGED alert of the suite on this machine; ``benchmark`` is "" for a
    machine-wide (infrastructure) alert, ``in_range`` tells whether its first bad commit is
    one of the range's commits."""

    id: int
    benchmark: str
    metric: str
    change_pct: float
    confidence: str
    first_bad: CommitInfo
    state: str
    in_range: bool


@dataclass(frozen=True, slots=True)
class AnalyzeReport:
    suite: str
    machine_id: str
    base: CommitInfo
    head: CommitInfo
    threshold_pct: float | None  # None: each benchmark's own threshold_pct
    default_threshold_pct: float
    alpha: float
    fdr_q: float
    commits: tuple[RangeCommit, ...]
    series: tuple[SeriesAnalysis, ...]
    alerts: tuple[OpenAlert, ...] = ()

    @property
    def regressions(self) -> list[SeriesAnalysis]:
        """Series with an alert-worthy start-vs-end regression or a worse step beyond the
        threshold: each one makes the verdict REGRESSED."""
        return [s for s in self.series if s.alert_worthy or s.worse_steps]

    @property
    def change_points(self) -> list[ChangePointFinding]:
        return [cp for s in self.series for cp in s.change_points]

    @property
    def verdict(self) -> Verdict:
        if self.regressions:
            return Verdict.REGRESSED
        statuses = {s.status for s in self.series}
        better_steps = any(not cp.worse and cp.beyond_threshold for cp in self.change_points)
        if Status.IMPROVED.value in statuses or better_steps:
            return Verdict.IMPROVED
        if not statuses or statuses <= set(UNDECIDED):
            return Verdict.INCONCLUSIVE
        return Verdict.UNCHANGED


@dataclass(frozen=True, slots=True)
class Decision:
    """What an alert evaluation did to one series, and why."""

    series: SeriesKey
    action: AlertAction
    note: str
    alert_id: int | None = None
    comparison: Comparison | None = None
