"""`perfd bisect`: the commit of a range that made one benchmark worse, in lock-step pairs.

1. Both ends first: the bad end runs against the good end as `perfd compare` runs them
   (adaptive lock-step pairs, :func:`perfd.flows.compare.compare`); unless it is REGRESSED
   at MEDIUM or HIGH confidence (the rule an alert opens by) there is nothing to bisect.
2. Then a binary search over the first-parent commits after good up to bad. Each commit
   tested runs against both ends, and the two comparisons give a three-way answer
   (:func:`perfd.analysis.bisect.classify_midpoint`), judged at the smaller of the threshold
   and half the measured step, so a commit counts as the end it is nearer to. An unknown
   answer is measured again with twice the pair cap (``unknown_retries`` times); still
   unknown, the search stops and reports the smallest range it proved. A commit that does
   not build is skipped and the search tries its neighbour (as `git bisect skip` does).
3. Every build goes through the build cache; the result counts the commits built, the
   pairs measured and the wall time, and is recorded on the matching alert (``alert_id``,
   or the active alert of the series whose range overlaps the one found): an event in its
   history and its reason, "bisected: first bad commit <sha> (<subject>), N builds, M pairs".
   The alert's first_bad_commit stays the first *measured* bad commit: the alert flow
   recognises a step it raised an alert for by it.

The whole bisection holds the machine lock; it stores the sides of every comparison as runs
of tier "compare", which history leaves out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from perfd.analysis.bisect import (
    Answer,
    BisectResult,
    Outcome,
    Probe,
    classify_ends,
    classify_midpoint,
    pick,
)
from perfd.analysis.results import CommitInfo, ComparedBenchmark
from perfd.config import SuiteConfig
from perfd.context import Services
from perfd.errors import BuildError, HarnessError, RepositoryError, UsageError
from perfd.events import BuildFinished, BuildStarted, Event, EventSink
from perfd.flows.compare import CompareRequest, compare
from perfd.records import Alert
from perfd.runner.git import Repository

DEFAULT_MAX_STEPS = 12
# Who the notes on alerts are by.
ACTOR = "perfd bisect"
# A previous bisection's note at the start of an alert's reason (replaced, not stacked).
_EARLIER_NOTE = re.compile(r"^bisect(?:ed|\s+found)\b.*?, \d+ builds, \d+ pairs; ")


@dataclass(frozen=True, slots=True)
class BisectRequest:
    suite: str  # a suite name of the config, or a path to its YAML
    good: str  # commit id, branch or tag: the benchmark is not worse here
    bad: str  # ...and is worse here; good must be on bad's first-parent history
    benchmark: str
    metric: str = "time"
    threshold_pct: float | None = None  # None: the benchmark's threshold_pct
    alpha: float = 0.05
    min_pairs: int = 5
    max_pairs: int = 20  # cap on the pairs of one comparison (first attempt)
    max_steps: int = DEFAULT_MAX_STEPS  # most commits between the ends to measure
    unknown_retries: int = 1  # an unknown answer is measured again with twice the cap
    alert_id: int | None = None  # record the result on this alert (default: a matching one)
    repository: str | None = None  # instead of the suite's
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.min_pairs <= self.max_pairs:
            raise UsageError(f"bisect: need 2 <= --min-pairs <= --max-pairs, got "
                             f"{self.min_pairs} and {self.max_pairs}")
        if self.max_steps < 1:
            raise UsageError(f"bisect: --max-steps must be >= 1, got {self.max_steps}")
        if self.unknown_retries < 0:
            raise UsageError(f"bisect: unknown_retries must be >= 0, got {self.unknown_retries}")
        if self.threshold_pct is not None and not self.threshold_pct > 0:
            raise UsageError(f"bisect: --threshold must be > 0 (a percentage), got "
                             f"{self.threshold_pct:g}")
        if not 0 < self.alpha < 1:
            raise UsageError(f"bisect: --alpha must be in (0, 1), got {self.alpha:g}")

    @property
    def pair_caps(self) -> tuple[int, ...]:
        """The pair cap of each attempt at one commit: max_pairs, then doubled per retry."""
        return tuple(self.max_pairs * 2 ** k for k in range(self.unknown_retries + 1))


# ------------------------------------------------------------------------- progress events


@dataclass(frozen=True, slots=True)
class BisectTesting(Event):
    """A commit between the ends is about to be measured against both."""

    commit_sha: str
    subject: str

    @property
    def message(self) -> str:
        return f"bisect: testing {self.commit_sha[:12]} {self.subject}".rstrip()


@dataclass(frozen=True, slots=True)
class BisectAnswered(Event):
    commit_sha: str
    answer: str
    reason: str

    @property
    def message(self) -> str:
        return f"bisect: {self.commit_sha[:12]} is {self.answer}: {self.reason}"


# ------------------------------------------------------------------------- the search

# Measures one commit with at most this many pairs per comparison: its Probe.
Judge = Callable[[CommitInfo, int], Probe]


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Where the search ended: line[last_good] is the newest commit proven good,
    line[first_bad] the oldest proven bad."""

    last_good: int
    first_bad: int
    probes: tuple[Probe, ...]
    stop_reason: str  # "" when first_bad == last_good + 1


def measure(commit: CommitInfo, judge: Judge, pair_caps: Sequence[int]) -> Probe:
    """Ask judge about commit with each pair cap in turn until the answer is not UNKNOWN;
    the probe counts the pairs of every attempt."""
    pairs = 0
    probe: Probe | None = None
    attempts = 0
    for cap in pair_caps:
        attempts += 1
        probe = judge(commit, cap)
        pairs += probe.pairs
        if probe.answer is not Answer.UNKNOWN:
            break
    assert probe is not None, "measure() needs at least one pair cap"
    return replace(probe, pairs=pairs, attempts=attempts)


def search(line: Sequence[CommitInfo], judge: Judge, *, pair_caps: Sequence[int],
           max_steps: int) -> SearchOutcome:
    """Binary search for the first bad commit of ``line`` (line[0] the good end, line[-1] the
    bad end, both verified). A commit that does not build is passed over, and so is one that
    stays UNKNOWN (every pair cap tried): the search goes on with its neighbours, as `git
    bisect skip` does. When only such commits are left inside the range proven, an unknown
    one is measured once more (the disturbance that kept it unknown may have passed); then
    the search ends with that range, as it does after ``max_steps`` measured commits."""
    lo, hi = 0, len(line) - 1
    unbuildable: set[int] = set()
    unknown: dict[int, Probe] = {}  # index -> its last probe
    measured_twice: set[int] = set()
    probes: list[Probe] = []
    steps = 0

    def stop(reason: str) -> SearchOutcome:
        return SearchOutcome(lo, hi, tuple(probes), reason)

    while hi - lo > 1:
        at = pick(lo, hi, unbuildable | unknown.keys())
        if at is None:  # a second chance for an unknown commit inside the range
            inside = set(range(lo + 1, hi))
            at = pick(lo, hi, inside - (unknown.keys() - measured_twice))
            if at is not None:
                measured_twice.add(at)
        if at is None:
            return stop(_unresolved(line, range(lo + 1, hi), unbuildable, unknown, pair_caps))
        if steps >= max_steps:
            return stop(f"reached the cap of {max_steps} tested commits")
        probe = measure(line[at], judge, pair_caps)
        probes.append(probe)
        if probe.answer is Answer.SKIPPED:
            unbuildable.add(at)
            continue
        steps += 1
        if probe.answer is Answer.GOOD:
            lo = at
        elif probe.answer is Answer.BAD:
            hi = at
        else:
            unknown[at] = probe
    return stop("")


def _unresolved(line: Sequence[CommitInfo], inside: range, unbuildable: set[int],
                unknown: dict[int, Probe], pair_caps: Sequence[int]) -> str:
    """Why the commits left inside the range could not narrow it."""
    if all(i in unbuildable for i in inside):
        return "the other commits of the range do not build"
    return "; ".join(
        f"{line[i].sha[:12]} does not build" if i in unbuildable else
        f"{line[i].sha[:12]} stayed unknown at {max(pair_caps)} pairs, measured twice: "
        f"{unknown[i].reason}" for i in inside)


# ------------------------------------------------------------------------- measuring


class _BuildTally:
    """An event sink that counts the distinct commits built and those the cache had, and
    passes every event on."""

    def __init__(self, forward: EventSink) -> None:
        self.forward = forward
        self.first_use: dict[str, str] = {}  # sha -> built | cached | failed
        self._pending: str | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, BuildStarted):
            new = event.commit_sha not in self.first_use
            self._pending = event.commit_sha if new else None
            if new:
                self.first_use[event.commit_sha] = "failed"  # until it finishes
        elif isinstance(event, BuildFinished) and self._pending is not None:
            self.first_use[self._pending] = "cached" if event.cached else "built"
            self._pending = None
        self.forward(event)

    @property
    def builds(self) -> int:
        return len(self.first_use)

    @property
    def cached(self) -> int:
        return sum(v == "cached" for v in self.first_use.values())


@dataclass(frozen=True, slots=True)
class _Measured:
    row: ComparedBenchmark | None  # the bisected metric's row (None: not measured)
    pairs: int
    contended: str | None


class _Bisection:
    """One bisection's measuring: the compares of commits against the ends."""

    def __init__(self, services: Services, request: BisectRequest, suite: SuiteConfig,
                 good: CommitInfo, bad: CommitInfo, threshold_pct: float) -> None:
        self.services, self.request, self.suite = services, request, suite
        self.good, self.bad, self.threshold_pct = good, bad, threshold_pct
        self.midpoint_threshold_pct = threshold_pct
        self.pairs = 0
        self._compares = 0

    def compare(self, baseline: str, current: str, threshold_pct: float,
                max_pairs: int) -> _Measured:
        """baseline against current in adaptive lock-step pairs, as `perfd compare` runs
        them. Raises BuildError, HarnessError, RepositoryError, StorageError."""
        request = self.request
        self._compares += 1
        report = compare(self.services, CompareRequest(
            suite=request.suite, baseline=baseline, current=current,
            repository=request.repository, benchmarks=(request.benchmark,),
            threshold_pct=threshold_pct, alpha=request.alpha, min_pairs=request.min_pairs,
            max_pairs=max_pairs, interleave=True, seed=request.seed + self._compares))
        row = next((r for r in report.rows if r.benchmark == request.benchmark
                    and r.metric == request.metric), None)
        pairs = max((r.pairs or 0 for r in report.rows), default=0)
        self.pairs += pairs
        return _Measured(row, pairs, report.contended)

    def judge_ends(self, commit: CommitInfo, max_pairs: int) -> Probe:
        m = self.compare(self.good.sha, commit.sha, self.threshold_pct, max_pairs)
        if m.contended:
            return Probe(commit, Answer.UNKNOWN, f"CONTENDED: {m.contended}", pairs=m.pairs)
        comparison = m.row.comparison if m.row else None
        answer, reason = classify_ends(comparison, self.threshold_pct)
        return Probe(commit, answer, reason, vs_good=comparison, pairs=m.pairs)

    def judge_midpoint(self, commit: CommitInfo, max_pairs: int) -> Probe:
        t = self.midpoint_threshold_pct
        try:
            a = self.compare(self.good.sha, commit.sha, t, max_pairs)
            b = self.compare(commit.sha, self.bad.sha, t, max_pairs)
        except BuildError as exc:
            return Probe(commit, Answer.SKIPPED, f"does not build: {_first_line(str(exc))}")
        pairs = a.pairs + b.pairs
        vs_good = a.row.comparison if a.row else None
        vs_bad = b.row.comparison if b.row else None
        contended = a.contended or b.contended
        if contended:
            return Probe(commit, Answer.UNKNOWN, f"CONTENDED: {contended}", vs_good, vs_bad,
                         pairs)
        answer, reason = classify_midpoint(vs_good, vs_bad, t)
        return Probe(commit, answer, reason, vs_good, vs_bad, pairs)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else text


def _check_benchmark(suite: SuiteConfig, request: BisectRequest) -> tuple[float, str]:
    """The benchmark's threshold and the metric's unit. Raises ConfigError, UsageError."""
    settings = suite.settings_for(request.benchmark)  # ConfigError for an unknown one
    metric = settings.metric(request.metric)
    if metric is None:
        raise UsageError(f"benchmark {request.benchmark} of suite {suite.name} has no metric "
                         f"{request.metric!r}; it has: "
                         f"{', '.join(m.name for m in settings.metrics)}")
    return request.threshold_pct or settings.threshold_pct, metric.unit


def bisect(services: Services, request: BisectRequest) -> BisectResult:
    """Find the first bad commit between request.good and request.bad for one benchmark x
    metric on this machine (module docstring), under the machine lock, and record it on the
    matching alert. Raises ConfigError or UsageError (suite, benchmark, metric, alert),
    RepositoryError (unknown commits, good not on bad's first-parent history), BuildError
    (an end does not build), HarnessError (an end could not be measured, or stayed
    CONTENDED), StorageError, MachineBusyError."""
    suite = services.suite(request.suite)
    threshold, unit = _check_benchmark(suite, request)
    explicit = _explicit_alert(services, suite, request) if request.alert_id is not None else None
    repo = services.repository(suite, request.repository)
    good_sha, bad_sha = repo.resolve(request.good), repo.resolve(request.bad)
    if good_sha == bad_sha or not repo.is_ancestor(good_sha, bad_sha):
        raise RepositoryError(f"bisect: the good commit {good_sha[:12]} must be an ancestor of "
                              f"the bad commit {bad_sha[:12]}")
    commits = tuple(CommitInfo(sha, subject)
                    for sha, subject in repo.first_parent_commits(good_sha, bad_sha))
    good, bad = CommitInfo(good_sha, repo.subject(good_sha)), commits[-1]
    tally = _BuildTally(services.events)
    measuring = replace(services, events=tally)
    started = services.clock()
    with services.machine.hold(f"a bisection of {suite.name} / {request.benchmark}"):
        run = _Bisection(measuring, request, suite, good, bad, threshold)
        ends = measure(bad, run.judge_ends, request.pair_caps)
        if ends.answer is Answer.UNKNOWN and ends.reason.startswith("CONTENDED"):
            raise HarnessError(f"bisect: the ends could not be measured: {ends.reason}")
        if ends.answer is Answer.BAD:
            assert ends.vs_good is not None
            run.midpoint_threshold_pct = min(threshold, abs(ends.vs_good.change_pct) / 2.0)
            found = search((good, *commits), _announcing(services.events, run),
                           pair_caps=request.pair_caps, max_steps=request.max_steps)
        else:
            found = SearchOutcome(0, len(commits), (), "")
    line = (good, *commits)
    outcome = (Outcome.NOTHING if ends.answer is not Answer.BAD
               else Outcome.FOUND if found.first_bad == found.last_good + 1 else Outcome.RANGE)
    result = BisectResult(
        suite=suite.name, machine_id=services.machine_id, benchmark=request.benchmark,
        metric=request.metric, unit=unit, good=good, bad=bad, outcome=outcome,
        threshold_pct=threshold, midpoint_threshold_pct=run.midpoint_threshold_pct, ends=ends,
        commits=commits, probes=found.probes, last_good=line[found.last_good],
        first_bad=line[found.first_bad], stop_reason=found.stop_reason, builds=tally.builds,
        cached_builds=tally.cached, pairs=run.pairs,
        wall_time_s=max(0.0, (services.clock() - started).total_seconds()))
    alert = explicit or _matching_alert(services, repo, result)
    if alert is None:
        return result
    record_on_alert(services, result, alert.id)
    return replace(result, alert_id=alert.id)


def _announcing(events: EventSink, run: _Bisection) -> Judge:
    """run.judge_midpoint, telling events what is tested and what it is."""
    def judge(commit: CommitInfo, max_pairs: int) -> Probe:
        events(BisectTesting(commit.sha, commit.subject))
        probe = run.judge_midpoint(commit, max_pairs)
        events(BisectAnswered(commit.sha, probe.answer.value, probe.reason))
        return probe

    return judge


# ------------------------------------------------------------------------- alerts


def request_for_alert(services: Services, alert_id: int) -> BisectRequest:
    """A bisection of an alert's range (baseline commit..first bad commit) for its benchmark
    and metric, recorded on it (other fields: the defaults; ``dataclasses.replace`` them).
    Raises NotFoundError, UsageError (an infrastructure alert)."""
    alert, _ = services.store.get_alert(alert_id)
    if not alert.series.benchmark:
        raise UsageError(f"alert {alert_id} is an infrastructure alert: there is no benchmark "
                         "to bisect")
    return BisectRequest(suite=alert.series.suite, good=alert.baseline_commit,
                         bad=alert.first_bad_commit, benchmark=alert.series.benchmark,
                         metric=alert.series.metric, alert_id=alert_id)


def _explicit_alert(services: Services, suite: SuiteConfig, request: BisectRequest) -> Alert:
    assert request.alert_id is not None
    alert, _ = services.store.get_alert(request.alert_id)  # NotFoundError
    series = alert.series
    if (series.suite, series.benchmark, series.metric) != (suite.name, request.benchmark,
                                                          request.metric):
        raise UsageError(
            f"alert {alert.id} is about {series.suite} / {series.benchmark or '(machine)'} "
            f"({series.metric}), not {suite.name} / {request.benchmark} ({request.metric})")
    return alert


def _matching_alert(services: Services, repo: Repository, result: BisectResult) -> Alert | None:
    """The newest active code alert of the bisected series on this machine whose range
    (baseline..first bad) overlaps the range the bisection proved."""
    with services.store.reading() as r:
        active = r.active_alerts(suite=result.suite, machine_id=services.machine_id)
    lo, hi = result.last_good.sha, result.first_bad.sha
    for alert in sorted(active.values(), key=lambda a: a.id, reverse=True):
        if (alert.kind != "code" or alert.series.benchmark != result.benchmark
                or alert.series.metric != result.metric):
            continue
        base, first_bad = alert.baseline_commit, alert.first_bad_commit
        if (base != hi and lo != first_bad and repo.is_ancestor(base, hi)
                and repo.is_ancestor(lo, first_bad)):
            return alert
    return None


def record_on_alert(services: Services, result: BisectResult, alert_id: int) -> Alert:
    """Note what the bisection found in the alert's history and at the start of its reason
    (replacing an earlier bisection's note). Raises NotFoundError, StorageError."""
    alert, _ = services.store.get_alert(alert_id)
    rest = _EARLIER_NOTE.sub("", alert.reason, count=1)
    return services.store.annotate_alert(alert_id, actor=ACTOR, note=result.summary,
                                         reason=f"{result.summary}; {rest}")
