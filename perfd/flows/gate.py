"""`perfd gate`: the CI gate. Measure a change against its baseline, hold it to its budgets,
decide pass / blocked / could not measure, and record the verdict.

Orchestration only, under the machine lock for the whole gate:

1. the baseline is ``--baseline`` or the merge base of the current commit with the target
   branch (never a missing or meaningless baseline: no such branch, no common history, or a
   current commit already on the branch is a configuration error, exit 2);
2. both commits are built first, so a side that does not build is named (ERROR);
3. the suite runs in adaptive lock-step pairs through the compare flow, measured again while
   the machine is CONTENDED, up to ``retries`` times;
4. the suite's budgets are held to the current side, relative limits against the baseline
   side of the same pairs (in a gate the merge base *is* the reference: the paired rule of
   perfd.analysis.budgets decides, as for ``against: reference``);
5. perfd.analysis.gate decides, an override (``--override`` or a ``Perf-Override:``
   trailer) is applied, and the verdict is stored with the document every output shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from perfd.analysis.budgets import BudgetResult, RunValues, evaluate_budget
from perfd.analysis.compare import lockstep_pair_values
from perfd.analysis.gate import (
    OVERRIDE_TRAILER,
    BaselineChoice,
    GateResult,
    Override,
    could_not_measure,
    decide,
)
from perfd.analysis.results import CommitInfo, CompareReport
from perfd.config import Budget, SuiteConfig
from perfd.context import Services
from perfd.errors import BuildError, HarnessError, RepositoryError, UsageError
from perfd.events import Event, RunContended
from perfd.flows.budgets import limit_text, spec_of
from perfd.flows.compare import CompareRequest, compare
from perfd.model import Confidence, Summary
from perfd.records import BudgetRecord
from perfd.report.gate import verdict_dict
from perfd.runner.git import Repository
from perfd.runner.pipeline import build_reporting
from perfd.store.gates import GateDraft


@dataclass(frozen=True, slots=True)
class GateRequest:
    suite: str  # a suite name of the config, or a path to its YAML
    current: str  # the commit to judge: id, branch or tag
    baseline: str | None = None  # None: the merge base of current with target_branch
    target_branch: str = "main"  # tried as given, then as origin/<branch>
    repository: str | None = None  # instead of the suite's (a CI passes its checkout)
    required_confidence: Confidence = Confidence.HIGH  # least confidence that blocks
    override: str | None = None  # --override REASON (wins over the commit's trailer)
    threshold_pct: float | None = None  # None: each benchmark's own threshold_pct
    min_pairs: int = 5
    max_pairs: int = 20
    seed: int = 0
    retries: int = 2  # measure again this many times while the machine is CONTENDED
    retry_delay_s: float = 5.0
    evidence_dir: Path | None = None  # profile each regression into <dir>/compare-A-B/<bench>
    profiler: str = "auto"

    def __post_init__(self) -> None:
        if not 2 <= self.min_pairs <= self.max_pairs:
            raise UsageError(f"pairs: need 2 <= --min-pairs <= --max-pairs, got "
                             f"{self.min_pairs}..{self.max_pairs}")
        if self.retries < 0 or self.retry_delay_s < 0:
            raise UsageError(f"--retries and --retry-delay must be >= 0, got {self.retries} "
                             f"and {self.retry_delay_s:g} s")
        if self.override is not None and not self.override.strip():
            raise UsageError("--override needs a reason (e.g. the pull request's label text), "
                             "got a blank one")
        if self.threshold_pct is not None and not self.threshold_pct > 0:
            raise UsageError(f"--threshold must be > 0 (a percentage), got {self.threshold_pct:g}")
        if not self.target_branch.strip():
            raise UsageError("--target-branch must not be blank")


@dataclass(frozen=True, slots=True)
class GateBaselineChosen(Event):
    """The baseline the change is measured against, and why that one."""

    current_sha: str
    baseline: BaselineChoice

    @property
    def message(self) -> str:
        b = self.baseline
        why = (f"the merge base of {self.current_sha[:12]} and {b.target_branch}"
               if b.source == "merge-base" else "given with --baseline")
        return f"gate: baseline {b.commit.sha[:12]} ({why})"


def gate(services: Services, request: GateRequest) -> GateResult:
    """Gate one change: see the module docstring. Measurement failures are a result (ERROR,
    stored); raises ConfigError/UsageError (bad suite, arguments or baseline: exit 2),
    RepositoryError (no such repository or commit), MachineBusyError, StorageError."""
    started = time.monotonic()
    suite = services.suite(request.suite)
    repo = services.repository(suite, request.repository)
    current_sha = repo.resolve(request.current)
    current = CommitInfo(current_sha, repo.subject(current_sha))
    baseline = choose_baseline(repo, current_sha, request)
    services.events(GateBaselineChosen(current_sha, baseline))
    override = find_override(repo, current_sha, request.override)
    with services.machine.hold(f"a gate of suite {suite.name} at {current_sha[:12]}"):
        report, failure, attempts = _measure(services, suite, repo, baseline, current, request)
        budgets: tuple[BudgetRecord, ...] = ()
        if failure is not None:
            decision = could_not_measure(failure)
        else:
            assert report is not None
            budgets = judge_budgets(services, suite, report)
            decision = decide(report.rows, budgets, required=request.required_confidence,
                              override=override)
    result = GateResult(
        suite=suite.name, machine_id=services.machine_id, baseline=baseline, current=current,
        required_confidence=request.required_confidence, decision=decision, comparison=report,
        budgets=budgets, override=override, attempts=attempts,
        duration_s=time.monotonic() - started)
    return record(services, result)


def choose_baseline(repo: Repository, current_sha: str, request: GateRequest) -> BaselineChoice:
    """--baseline as given, else the merge base with the target branch. Raises UsageError
    when there is none to use, RepositoryError for a --baseline that names no commit."""
    if request.baseline is not None:
        sha = repo.resolve(request.baseline)
        if sha == current_sha:
            raise UsageError(f"--baseline {request.baseline} is the current commit "
                             f"{current_sha[:12]} itself: there is nothing to compare")
        return BaselineChoice(CommitInfo(sha, repo.subject(sha)), "flag")
    branch = request.target_branch
    target = _resolve_branch(repo, branch)
    base = repo.merge_base(current_sha, target)
    if base is None:
        raise UsageError(
            f"{current_sha[:12]} and {branch} share no history in {repo.path} (a shallow "
            "clone? check out with full history, e.g. actions/checkout with fetch-depth: 0), "
            "or pass --baseline REV")
    if base == current_sha:
        raise UsageError(
            f"{current_sha[:12]} is already on {branch} (it is its own merge base): there is "
            "no change to gate; pass --baseline REV to gate it against a chosen commit")
    return BaselineChoice(CommitInfo(base, repo.subject(base)), "merge-base", branch)


def _resolve_branch(repo: Repository, branch: str) -> str:
    """The target branch's commit: as given, else origin/<branch> (what a CI checkout has).
    Raises UsageError when neither exists."""
    tried = [branch] + ([f"origin/{branch}"] if not branch.startswith("origin/") else [])
    for name in tried:
        try:
            return repo.resolve(name)
        except RepositoryError:
            continue
    raise UsageError(
        f"target branch {branch!r} does not exist in {repo.path} (tried {', '.join(tried)}): "
        "fetch it (a CI checkout needs the full history of the target branch) or pass "
        "--baseline REV")


def find_override(repo: Repository, current_sha: str, flag: str | None) -> Override | None:
    """The --override flag's reason, else the last Perf-Override trailer of the current
    commit's message, else None."""
    if flag is not None:
        return Override(flag.strip(), "flag")
    values = repo.trailer_values(current_sha, OVERRIDE_TRAILER)
    return Override(values[-1], "trailer") if values else None


def _measure(services: Services, suite: SuiteConfig, repo: Repository, baseline: BaselineChoice,
             current: CommitInfo, request: GateRequest,
             ) -> tuple[CompareReport | None, str | None, int]:
    """(comparison, why it could not be measured or None, attempts). A side that does not
    build, a harness that fails or a machine still contended after the retries is a failure
    with its cause; the last comparison is kept to be shown."""
    for role, commit in (("baseline", baseline.commit), ("current", current)):
        try:
            build_reporting(services.builder, suite, repo, commit.sha, services.events)
        except (BuildError, RepositoryError) as exc:
            return None, f"the {role} {commit.sha[:12]} ({commit.subject}) does not build: {exc}", 0
    attempts = request.retries + 1
    report: CompareReport | None = None
    for attempt in range(1, attempts + 1):
        try:
            report = compare(services, _compare_request(request, baseline, current))
        except (BuildError, HarnessError, RepositoryError) as exc:
            return report, f"measuring failed: {exc}", attempt
        if report.contended is None:
            return report, None, attempt
        if attempt < attempts:
            services.events(RunContended(report.current_run_id or 0, report.contended, attempt,
                                         attempts, request.retry_delay_s))
            time.sleep(request.retry_delay_s)
    assert report is not None and report.contended is not None
    return report, (f"the machine stayed contended in all {attempts} attempt(s): "
                    f"{report.contended}"), attempts


def _compare_request(request: GateRequest, baseline: BaselineChoice,
                     current: CommitInfo) -> CompareRequest:
    return CompareRequest(
        suite=request.suite, baseline=baseline.commit.sha, current=current.sha,
        repository=request.repository, threshold_pct=request.threshold_pct,
        min_pairs=request.min_pairs, max_pairs=request.max_pairs, interleave=True,
        seed=request.seed, evidence_dir=request.evidence_dir, profiler=request.profiler)


@dataclass(frozen=True, slots=True)
class _Sides:
    """What the budgets of one benchmark x metric read of the gate's two runs."""

    current: RunValues
    baseline: RunValues | None
    pair_ratios: tuple[float, ...] | None  # current/baseline of each lock-step pair


def judge_budgets(services: Services, suite: SuiteConfig,
                  report: CompareReport) -> tuple[BudgetRecord, ...]:
    """Hold the current side of the gate's pairs to the suite's budgets (relative limits
    against the baseline side, with the paired rule) and store the verdicts with that run."""
    config = services.config.budgets
    chosen = [(i, b) for i, b in enumerate(config.budgets if config else ()) if b.suite == suite.name]
    cur_id, base_id = report.current_run_id, report.baseline_run_id
    if not chosen or cur_id is None or base_id is None:
        return ()
    with services.store.reading() as r:
        stats = {(s.benchmark, s.metric): s for s in r.statistics(cur_id)}
        base_stats = {(s.benchmark, s.metric): s for s in r.statistics(base_id)}
    sides: dict[tuple[str, str], _Sides] = {}
    rng = np.random.default_rng(0)
    results = []
    for index, budget in chosen:
        # In a gate the baseline of a relative limit is the merge base, taking turns with
        # the change: the paired rule of `against: reference`, whatever `against` says.
        spec = replace(spec_of(budget), against_reference=True)
        for key, summary in stats.items():
            if not budget.matches(suite.name, *key):
                continue
            if key not in sides:
                sides[key] = _sides_of(services, cur_id, base_id, summary, base_stats.get(key))
            got = sides[key]
            verdict = evaluate_budget(spec, got.current, got.baseline,
                                      direction=summary.direction, rng=rng,
                                      reference_pairs=got.pair_ratios)
            results.append(_budget_record(cur_id, base_id, index, budget, summary, verdict))
    services.store.save_budget_results(cur_id, results)
    return tuple(results)


def _sides_of(services: Services, cur_id: int, base_id: int, summary: Summary,
              base_summary: Summary | None) -> _Sides:
    key = (summary.benchmark, summary.metric)
    with services.store.reading() as r:
        values = r.process_values_for_runs([cur_id, base_id], *key)
    current = RunValues(tuple(values[cur_id]), summary.p95, summary.p99, summary.n_samples)
    baseline = (RunValues(tuple(values[base_id]), base_summary.p95, base_summary.p99,
                          base_summary.n_samples) if base_summary is not None else None)
    return _Sides(current, baseline, _pair_ratios(services, base_id, cur_id, *key))


def _pair_ratios(services: Services, base_id: int, cur_id: int, benchmark: str,
                 metric: str) -> tuple[float, ...] | None:
    """Each lock-step pair's current/baseline ratio (from the samples the two processes took
    in turns, as compare reads them); None when the samples do not pair up."""
    sides = []
    for run_id in (base_id, cur_id):
        by_pair: dict[int, list[float]] = {}
        for pair, _, value in services.store.measurements(run_id, benchmark, metric):
            by_pair.setdefault(pair, []).append(value)
        sides.append([by_pair[p] for p in sorted(by_pair)])
    try:
        base, cur = lockstep_pair_values(sides[0], sides[1])
    except ValueError:
        return None
    if len(base) < 2 or any(b <= 0 for b in base):
        return None
    return tuple(c / b for b, c in zip(base, cur, strict=True))


def _budget_record(cur_id: int, base_id: int, index: int, budget: Budget, summary: Summary,
                   verdict: BudgetResult) -> BudgetRecord:
    return BudgetRecord(
        run_id=cur_id, budget_index=index, suite=budget.suite, benchmark=summary.benchmark,
        metric=summary.metric, statistic=budget.statistic.value,
        limit_text=_gate_limit_text(budget), action=budget.action.value,
        min_confidence=budget.confidence.value.upper(), owner=budget.owner,
        status=verdict.status.value, value=verdict.value,
        baseline_run_id=base_id if verdict.baseline_value is not None else None,
        baseline_value=verdict.baseline_value, change_pct=verdict.change_pct,
        confidence=verdict.confidence.value if verdict.confidence else None,
        # the paired rule words its baseline "the reference"; here it is the gate's baseline
        reason=verdict.reason.replace("the reference", "the baseline"))


def _gate_limit_text(budget: Budget) -> str:
    return limit_text(budget).replace(" vs reference", "")


def record(services: Services, result: GateResult) -> GateResult:
    """Store the verdict (with its override and the perfd-gate/1 document); returns the
    result with the stored id and time."""
    override = result.override
    stored = services.store.save_gate_verdict(GateDraft(
        suite=result.suite, machine_id=result.machine_id,
        baseline_commit=result.baseline.commit.sha, current_commit=result.current.sha,
        verdict=result.verdict.value, overridden=result.decision.overridden,
        override_reason=override.reason if override else None,
        override_source=override.source if override else None,
        summary=verdict_dict(result)))
    return replace(result, verdict_id=stored.id, created_at=stored.created_at)

