"""`perfd analyze`: what happened to a suite's series over a commit range, from stored runs.

For every series of the suite on this machine (completed runs, interleaved "compare" runs
left out), the runs at the range's base and at the commits of base..head are put in commit
order (then in time order for several runs of one commit). Two questions are asked:

- Where did it step? Change points over the per-run medians, each placed between the last
  measured commit of the old segment and the first one of the new segment.
- Did it change from start to end? The latest run at the first measured commit against the
  latest run at the last one, on their process values, with Benjamini-Hochberg across all
  series of the range. The consistency criterion counts the trailing runs that are worse
  than the start by more than the threshold.

Fewer than two measured commits in the range is INSUFFICIENT_DATA, never "unchanged".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from perfd.analysis.changepoint import detect_change_points
from perfd.analysis.compare import Comparison, Status, compare_independent
from perfd.analysis.fdr import apply_fdr
from perfd.analysis.results import (
    ERROR,
    MIN_POINTS_FOR_CHANGE_POINTS,
    AnalyzeReport,
    ChangePointFinding,
    CommitInfo,
    OpenAlert,
    RangeCommit,
    SeriesAnalysis,
)
from perfd.config import SuiteConfig
from perfd.context import Services
from perfd.errors import PerfdError, RepositoryError
from perfd.events import EvidenceFailed
from perfd.flows.evidence import EvidenceBundle, collect_evidence
from perfd.flows.history import (
    metric_info,
    ratio_series,
    stable_stretch,
    trailing_worse_runs,
    worse_pct,
)
from perfd.model import NOT_HISTORY_TIERS, Confidence, Direction
from perfd.records import LinkRecord, ReferenceRecord
from perfd.runner.git import Repository
from perfd.store import ACTIVE_STATES, SeriesKey, SeriesPoint
from perfd.store.reader import Reader

_CommitLookup = Callable[[str], CommitInfo]


@dataclass(frozen=True, slots=True)
class AnalyzeRequest:
    suite: str  # a suite name of the config, or a path to its YAML
    range: str  # BASE..HEAD
    repository: str | None = None  # instead of the suite's
    threshold_pct: float | None = None  # None: each benchmark's own threshold_pct
    alpha: float = 0.05
    fdr_q: float = 0.05
    seed: int = 0  # bootstrap of the start-vs-end CI
    evidence: bool = False  # profile both sides of each worse step beyond the threshold


@dataclass(frozen=True, slots=True)
class StepEvidence:
    """The evidence bundle of one worse step (one per benchmark)."""

    step: ChangePointFinding
    bundle: EvidenceBundle


@dataclass(frozen=True, slots=True)
class AnalyzeResult:
    report: AnalyzeReport
    evidence: tuple[StepEvidence, ...] = ()
    evidence_errors: tuple[str, ...] = ()


def split_range(text: str) -> tuple[str, str]:
    """``base..head`` -> (base, head). Raises RepositoryError for anything else."""
    if "..." in text:
        raise RepositoryError(
            f"range {text!r}: A...B (symmetric difference) is not supported; use BASE..HEAD, "
            "an older commit and a newer one on the same history"
        )
    parts = text.split("..")
    if len(parts) != 2 or not all(parts):
        raise RepositoryError(
            f"range {text!r} is not BASE..HEAD: give two commits joined by '..', "
            "e.g. --range v1.2..main"
        )
    return parts[0], parts[1]


def resolve_range(repo: Repository, text: str) -> tuple[str, str]:
    """Full shas of a BASE..HEAD range whose base is a proper ancestor of its head.

    Raises RepositoryError for a malformed range, an unknown commit, an empty range or a
    base that is not an ancestor of the head (a reversed range, or two branches)."""
    base_rev, head_rev = split_range(text)
    base, head = repo.resolve(base_rev), repo.resolve(head_rev)
    if base == head:
        raise RepositoryError(
            f"range {text!r} is empty: {base_rev} and {head_rev} are the same commit "
            f"({base[:12]})"
        )
    if not repo.is_ancestor(base, head):
        hint = (" (the range is reversed: try "
                f"--range {head_rev}..{base_rev})" if repo.is_ancestor(head, base) else
                " (they are on different branches: use their merge base as BASE)")
        raise RepositoryError(
            f"range {text!r}: {base_rev} ({base[:12]}) is not an ancestor of {head_rev} "
            f"({head[:12]}){hint}"
        )
    return base, head


def _configured(suite: SuiteConfig, key: SeriesKey) -> bool:
    if key.benchmark not in suite.benchmark_names():
        return False
    return suite.settings_for(key.benchmark).metric(key.metric) is not None


def _order(suite: SuiteConfig, s: SeriesAnalysis) -> tuple[int, int, int, str, str, str]:
    """Regressions first, then the suite's file order of benchmarks and metrics."""
    names = suite.benchmark_names()
    bench = names.index(s.benchmark) if s.benchmark in names else len(names)
    metrics = [m.name for m in suite.settings_for(s.benchmark).metrics] if bench < len(names) else []
    metric = metrics.index(s.metric) if s.metric in metrics else len(metrics)
    worse = s.alert_worthy or bool(s.worse_steps)
    return (0 if worse else 1, bench, metric, s.benchmark, s.metric, s.config_hash)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A series analysed up to its start-vs-end comparison, which waits for FDR."""

    analysis: SeriesAnalysis
    comparison: Comparison | None


def analyze(services: Services, request: AnalyzeRequest) -> AnalyzeResult:
    """Analyse the suite's series on this machine over BASE..HEAD from stored runs, and with
    ``evidence`` profile each worse step. Raises ConfigError, RepositoryError, StorageError."""
    suite = services.suite(request.suite)
    repo = services.repository(suite, request.repository)
    with services.store.reading() as reader:
        report = analyze_range(reader, suite, repo, request, machine_id=services.machine_id)
    if not request.evidence:
        return AnalyzeResult(report)
    return _step_evidence(services, suite, repo, report)


def _step_evidence(services: Services, suite: SuiteConfig, repo: Repository,
                   report: AnalyzeReport) -> AnalyzeResult:
    """One bundle per benchmark with a worse step beyond the threshold."""
    found: list[StepEvidence] = []
    errors: list[str] = []
    done: set[str] = set()
    for series in report.series:
        for cp in series.change_points:
            if not (cp.worse and cp.beyond_threshold) or cp.benchmark in done:
                continue
            done.add(cp.benchmark)
            out = (services.data_dir / "evidence"
                   / f"analyze-{cp.before.sha[:12]}-{cp.after.sha[:12]}"
                   / cp.benchmark.replace("/", "_"))
            timed = series.metric == "time"
            try:
                bundle = collect_evidence(
                    services, suite, repo, cp.before.sha, cp.after.sha, cp.benchmark, out,
                    baseline_latency_ns=cp.before_median if timed else None,
                    current_latency_ns=cp.after_median if timed else None)
            except PerfdError as exc:
                errors.append(f"{cp.benchmark}: {exc}")
                services.events(EvidenceFailed(cp.benchmark, str(exc)))
                continue
            found.append(StepEvidence(cp, bundle))
    return AnalyzeResult(report, tuple(found), tuple(errors))


def analyze_range(store: Reader, suite: SuiteConfig, repo: Repository, opts: AnalyzeRequest, *,
                  machine_id: str) -> AnalyzeReport:
    """Analyse every series of ``suite`` on ``machine_id`` over BASE..HEAD from stored runs
    read through one snapshot. Raises RepositoryError for a bad range or commit, StorageError."""
    base, head = resolve_range(repo, opts.range)
    commits = [(base, repo.subject(base)), *repo.commits_between(base, head)]
    position = {sha: i for i, (sha, _subject) in enumerate(commits)}
    subjects = dict(commits)
    rng = np.random.default_rng(opts.seed)

    def info(sha: str) -> CommitInfo:
        return CommitInfo(sha, subjects.get(sha, ""))

    pending: list[_Pending] = []
    references = {r.id: r for r in store.list_references(suite.name)}
    links = store.list_links(suite.name)
    runs_at: dict[str, set[int]] = {sha: set() for sha in position}
    for key in store.series_keys(suite=suite.name, machine_id=machine_id):
        points = [p for p in store.series_points(key, exclude_tiers=NOT_HISTORY_TIERS)
                  if p.commit_sha in position]
        points.sort(key=lambda p: (position[p.commit_sha], p.started_at, p.run_id))
        if not points and not _configured(suite, key):
            continue  # a benchmark or metric the suite no longer has, not measured in the range
        for p in points:
            runs_at[p.commit_sha].add(p.run_id)
        unit, direction, threshold = metric_info(suite, key)
        threshold = opts.threshold_pct or threshold
        read = _series_values(store, key, points, unit, references, links)
        pending.append(_analyze_series(read, key, direction, threshold, info, position, opts,
                                       rng))

    adjusted = iter(apply_fdr([p.comparison for p in pending if p.comparison is not None],
                              q=opts.fdr_q))
    series = []
    for item in pending:
        if item.comparison is None:
            series.append(item.analysis)
            continue
        c = next(adjusted)
        series.append(replace(item.analysis, comparison=c, status=c.status.value,
                              reason=c.reason))

    series.sort(key=lambda s: _order(suite, s))
    alerts = tuple(
        OpenAlert(id=a.id, benchmark=a.series.benchmark, metric=a.series.metric,
                  change_pct=a.change_pct, confidence=a.confidence,
                  first_bad=info(a.first_bad_commit), state=a.state,
                  in_range=a.first_bad_commit in position and a.first_bad_commit != base)
        for a in store.list_alerts(state=ACTIVE_STATES, suite=suite.name, machine_id=machine_id)
    )
    return AnalyzeReport(
        suite=suite.name, machine_id=machine_id, base=info(base), head=info(head),
        threshold_pct=opts.threshold_pct, default_threshold_pct=suite.defaults.threshold_pct,
        alpha=opts.alpha, fdr_q=opts.fdr_q,
        commits=tuple(RangeCommit(sha, subject, len(runs_at[sha]), is_base=sha == base)
                      for sha, subject in commits),
        series=tuple(series), alerts=alerts,
    )


# run ids -> each run's values to test (process medians, or pair ratios to the reference)
_Values = Callable[[Sequence[int]], dict[int, list[float]]]
RATIO_UNIT = "x ref"  # a ratio series: each run's value over the reference's, same pairs


@dataclass(frozen=True, slots=True)
class _Series:
    values: _Values
    points: list[SeriesPoint]
    unit: str
    against: str = ""  # a ratio series: its reference (and where it was re-anchored)


def _series_values(store: Reader, key: SeriesKey, points: list[SeriesPoint], unit: str,
                   references: Mapping[int, ReferenceRecord],
                   links: Sequence[LinkRecord]) -> _Series:
    """The ratio series against the reference of the range's newest run (host drift cancels
    from it; runs on earlier references carried over by their link factors, runs that cannot
    be are left out), else the runs' own process values."""
    ratios = ratio_series(store, key, points, references, links)
    if ratios is not None:
        return _Series(ratios.values, list(ratios.points), RATIO_UNIT, ratios.label)

    def process_values(run_ids: Sequence[int]) -> dict[int, list[float]]:
        return store.process_values_for_runs(list(run_ids), key.benchmark, key.metric)

    return _Series(process_values, points, unit)


def _analyze_series(series: _Series, key: SeriesKey, direction: Direction, threshold: float,
                    info: _CommitLookup, position: dict[str, int], opts: AnalyzeRequest,
                    rng: np.random.Generator) -> _Pending:
    """Change points and the start-vs-end comparison (before FDR) of one series."""
    values_of, points, unit = series.values, series.points, series.unit
    measured = sorted({p.commit_sha for p in points}, key=position.__getitem__)
    base = SeriesAnalysis(
        benchmark=key.benchmark, metric=key.metric, unit=unit, direction=direction,
        config_hash=key.config_hash, threshold_pct=threshold, n_runs=len(points),
        n_commits=len(measured), status=Status.INSUFFICIENT_DATA.value, reason="",
        against=series.against,
    )
    steps = _change_points(values_of, points, key, unit, direction, threshold, info, position,
                           opts, rng, excursions=bool(series.against))
    base = replace(base, change_points=steps,
                   change_points_searched=len(points) >= MIN_POINTS_FOR_CHANGE_POINTS)
    if len(measured) < 2:
        found = f"{len(measured)} commit{'s' if len(measured) != 1 else ''}"
        if measured:
            only = points[-1]
            base = replace(base, start=info(only.commit_sha), start_run_id=only.run_id,
                           start_median=only.median)
        return _Pending(replace(base, reason=f"runs at {found} of the range, need at least 2 "
                                             "to compare its start and end"), None)

    # the latest run at the first and at the last measured commit
    start = [p for p in points if p.commit_sha == measured[0]][-1]
    end = [p for p in points if p.commit_sha == measured[-1]][-1]
    env_changed = start.environment_hash != end.environment_hash
    base = replace(base, start=info(start.commit_sha), end=info(end.commit_sha),
                   start_run_id=start.run_id, end_run_id=end.run_id, start_median=start.median,
                   end_median=end.median, env_changed=env_changed)
    values = values_of([start.run_id, end.run_id])
    before, after = values.get(start.run_id, []), values.get(end.run_id, [])
    if not before or not after:
        missing = start.run_id if not before else end.run_id
        return _Pending(replace(base, reason=f"run {missing} stored no process values of "
                                             f"{key.metric}"), None)
    try:
        comparison = compare_independent(
            before, after, direction=direction, threshold_pct=threshold, alpha=opts.alpha,
            consecutive_worse_runs=trailing_worse_runs(
                points, lambda p: p.commit_sha == start.commit_sha, start.median, direction,
                threshold),
            env_changed=env_changed, rng=rng,
        )
    except ValueError as exc:  # e.g. zero counts, which a ratio cannot use
        return _Pending(replace(base, status=ERROR, reason=str(exc)), None)
    return _Pending(replace(base, status=comparison.status.value, reason=comparison.reason),
                    comparison)


def _change_points(values_of: _Values, points: Sequence[SeriesPoint], key: SeriesKey, unit: str,
                   direction: Direction, threshold: float, info: _CommitLookup,
                   position: dict[str, int], opts: AnalyzeRequest, rng: np.random.Generator,
                   *, excursions: bool = False) -> tuple[ChangePointFinding, ...]:
    """Steps in the per-run medians, each placed between the commits of its two runs and
    judged by the same rule as `compare` and `alert`: the processes of the segment before
    against those of the segment after (two-sample test, CI against the threshold, noise).
    With ``excursions`` (a ratio series, whose runs are each a lock-step A/B), a single run
    that the rule sets apart from the runs before and after it is two steps, in and out."""
    if len(points) < MIN_POINTS_FOR_CHANGE_POINTS:
        return ()
    found = detect_change_points([p.median for p in points],
                                 min_shift_pct=min_step_pct(threshold))
    bounds = [0, *(cp.index for cp in found), len(points)]
    values = values_of([p.run_id for p in points])

    def finding(before: SeriesPoint, after: SeriesPoint, before_median: float,
                after_median: float, score: float, judged: Comparison | None,
                excursion: bool = False) -> ChangePointFinding:
        worse = worse_pct(before_median, after_median, direction)
        return ChangePointFinding(
            benchmark=key.benchmark, metric=key.metric, unit=unit,
            before=info(before.commit_sha), after=info(after.commit_sha),
            suspects=position[after.commit_sha] - position[before.commit_sha],
            before_median=before_median, after_median=after_median,
            shift_pct=(after_median / before_median - 1.0) * 100.0 if before_median else 0.0,
            worse=worse > 0,
            beyond_threshold=abs(worse) >= threshold if judged is None else _alerting(judged),
            score=score, env_changed=before.environment_hash != after.environment_hash,
            comparison=judged, excursion=excursion,
        )

    out = []
    for i, cp in enumerate(found):
        before, after = points[cp.index - 1], points[cp.index]
        judged = _judge_step(points[bounds[i]:cp.index], points[cp.index:bounds[i + 2]], values,
                             direction, threshold, opts,
                             before.environment_hash != after.environment_hash, rng)
        step = finding(before, after, cp.before_median, cp.after_median, cp.score, judged)
        out.append(replace(step, shift_pct=cp.shift_pct))
    if excursions:
        for a, b in zip(bounds, bounds[1:], strict=False):
            out += _excursions(points[a:b], values, finding, direction, threshold, opts, rng)
    out.sort(key=lambda cp: (position[cp.after.sha], position[cp.before.sha]))
    return tuple(out)


# A one-run excursion stands this many robust SDs of the segment's run-to-run noise apart.
EXCURSION_NOISE_SDS = 5.0


def min_step_pct(threshold: float) -> float:
    """The smallest step the detector reports: a fifth of the threshold, at least 1% (run
    medians measured alone wobble by that much), but at most half a threshold below 2%, so a
    ratio series judged at 0.5% still shows a 1% step."""
    return max(threshold / 5.0, min(1.0, threshold / 2.0))


def _excursions(segment: Sequence[SeriesPoint], values: dict[int, list[float]],
                finding: Callable[..., ChangePointFinding], direction: Direction,
                threshold: float, opts: AnalyzeRequest,
                rng: np.random.Generator) -> list[ChangePointFinding]:
    """The runs inside one segment that stand apart from the stable runs on both sides of
    them by more than the threshold, each confirmed in and out by the decision rule (the
    change-point detector treats a one-run segment as a spike)."""
    out: list[ChangePointFinding] = []
    for i in range(1, len(segment) - 1):
        run = segment[i]
        old = stable_stretch(segment[:i], threshold)
        new = stable_stretch(list(reversed(segment[i + 1:])), threshold)
        old_level = float(np.median([p.median for p in old]))
        new_level = float(np.median([p.median for p in new]))
        going = worse_pct(old_level, run.median, direction)
        coming = worse_pct(run.median, new_level, direction)
        # beyond the threshold and beyond what runs of this segment wobble by: one run's
        # pairs do not show the run-to-run noise, so a merely noisy run would pass the rule
        others = np.array([p.median for j, p in enumerate(segment) if j != i])
        wobble = 100.0 * 1.4826 * float(np.median(np.abs(others - np.median(others)))) / old_level
        least = max(threshold, EXCURSION_NOISE_SDS * wobble)
        if abs(going) <= least or abs(coming) <= least or (going > 0) == (coming > 0):
            continue
        into = _judge_step(old, [run], values, direction, threshold, opts,
                           old[-1].environment_hash != run.environment_hash, rng)
        back = _judge_step([run], new, values, direction, threshold, opts,
                           run.environment_hash != new[-1].environment_hash, rng)
        if into is None or back is None or not (_alerting(into) and _alerting(back)):
            continue
        out.append(finding(segment[i - 1], run, old_level, run.median, 0.0, into, True))
        out.append(finding(run, segment[i + 1], run.median, new_level, 0.0, back, True))
    return out


def _judge_step(old: Sequence[SeriesPoint], new: Sequence[SeriesPoint],
                values: dict[int, list[float]], direction: Direction, threshold: float,
                opts: AnalyzeRequest, env_changed: bool,
                rng: np.random.Generator) -> Comparison | None:
    """The one decision rule over a step: the processes of its two segments (None when a
    side has no process values, e.g. a metric some runs did not record)."""
    before = [v for p in old for v in values.get(p.run_id, [])]
    after = [v for p in new for v in values.get(p.run_id, [])]
    if not before or not after:
        return None
    try:
        return compare_independent(before, after, direction=direction, threshold_pct=threshold,
                                   alpha=opts.alpha, env_changed=env_changed, rng=rng)
    except ValueError:  # e.g. zero counts, which a ratio cannot use
        return None


def _alerting(c: Comparison) -> bool:
    """A step worth acting on: REGRESSED or IMPROVED at MEDIUM or HIGH confidence."""
    return (c.status in (Status.REGRESSED, Status.IMPROVED)
            and c.confidence is not None and c.confidence.rank >= Confidence.MEDIUM.rank)
