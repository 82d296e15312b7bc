"""`perfd compare`: two commits, from stored runs or measured now in interleaved pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from perfd.analysis.compare import Comparison, compare_independent, process_pair_values
from perfd.analysis.fdr import apply_fdr, infrastructure_shift
from perfd.analysis.results import (
    CommitInfo,
    ComparedBenchmark,
    CompareReport,
    EvidenceSummary,
    sort_rows,
)
from perfd.analysis.sequential import next_step
from perfd.config import BenchmarkConfig, SuiteConfig
from perfd.context import Services
from perfd.errors import PerfdError, UsageError
from perfd.events import CompareStarted
from perfd.flows.evidence import collect_evidence, summarize_bundle
from perfd.flows.run import recover_interrupted, run_options
from perfd.model import NOT_HISTORY_TIERS, ProcessResult, RunTier
from perfd.runner.git import Repository
from perfd.runner.pipeline import run_interleaved
from perfd.store import RunInfo


@dataclass(frozen=True, slots=True)
class CompareRequest:
    suite: str  # a suite name of the config, or a path to its YAML
    baseline: str  # commit id, branch or tag
    current: str
    repository: str | None = None  # instead of the suite's
    benchmarks: tuple[str, ...] | None = None  # only these (default: all of the suite)
    threshold_pct: float | None = None  # None: each benchmark's own threshold_pct
    alpha: float = 0.05
    fdr_q: float = 0.05
    min_pairs: int = 5
    max_pairs: int = 20
    interleave: bool | None = None  # None: interleave when either commit has no stored run
    seed: int = 0
    evidence_dir: Path | None = None  # profile each regression into <dir>/compare-A-B/<benchmark>
    profiler: str = "auto"


def _chosen(suite: SuiteConfig, opts: CompareRequest) -> list[BenchmarkConfig]:
    return [b for b in suite.benchmarks if opts.benchmarks is None or b.name in opts.benchmarks]


def compare(services: Services, opts: CompareRequest) -> CompareReport:
    """Compare two commits of a suite on this machine; the report carries the verdict.

    Measuring (interleaved pairs, evidence) happens under the machine lock. Raises
    ConfigError, RepositoryError, BuildError, HarnessError, StorageError, MachineBusyError."""
    suite = services.suite(opts.suite)
    repo = services.repository(suite, opts.repository)
    base_sha, cur_sha = repo.resolve(opts.baseline), repo.resolve(opts.current)
    with services.store.reading() as r:
        stored = [[run for run in r.runs_for_commit(suite.name, sha, services.machine_id)
                   if run.tier not in NOT_HISTORY_TIERS] for sha in (base_sha, cur_sha)]
    interleave = opts.interleave if opts.interleave is not None else not all(stored)
    missing = [sha for sha, runs in zip((base_sha, cur_sha), stored, strict=True) if not runs]
    if not interleave and missing:
        raise UsageError(f"comparing stored runs: no stored history run of suite {suite.name} "
                         f"on machine {services.machine_id} at {', '.join(m[:12] for m in missing)}"
                         "; `perfd run` it first, or compare in lock-step pairs (without "
                         "--stored)")
    if not interleave:  # reads stored runs; evidence, if any, takes the machine itself
        return _compare(services, suite, repo, base_sha, cur_sha, stored, opts, interleave=False)
    with services.machine.hold(f"a compare of suite {suite.name}"):
        return _compare(services, suite, repo, base_sha, cur_sha, stored, opts, interleave=True)


def _compare(services: Services, suite: SuiteConfig, repo: Repository, base_sha: str,
             cur_sha: str, stored: list[list[RunInfo]], opts: CompareRequest,
             interleave: bool) -> CompareReport:
    store = services.store
    rng = np.random.default_rng(opts.seed)

    def threshold(bench: str) -> float:
        return opts.threshold_pct or suite.settings_for(bench).threshold_pct

    rows: list[ComparedBenchmark] = []
    contended = None
    if interleave:
        recover_interrupted(services)
        services.events(CompareStarted(base_sha, cur_sha, opts.min_pairs, opts.max_pairs))

        def keep_going(bench: str, base: Sequence[ProcessResult], cur: Sequence[ProcessResult]) -> bool:
            primary = suite.settings_for(bench).metrics[0]
            step = next_step(*process_pair_values(base, cur, primary.name),
                             direction=primary.direction, threshold_pct=threshold(bench),
                             alpha=opts.alpha, min_pairs=opts.min_pairs, max_pairs=opts.max_pairs,
                             rng=np.random.default_rng(opts.seed))
            return step.action == "continue"

        outcome = run_interleaved(suite, repo, services.builder, base_sha, cur_sha, store,
                                  run_options(services, tier=RunTier.COMPARE, seed=opts.seed),
                                  keep_going=keep_going, min_pairs=opts.min_pairs,
                                  max_pairs=opts.max_pairs, only=opts.benchmarks)
        base_run, cur_run = outcome.baseline.run_id, outcome.current.run_id
        contended = outcome.current.contended_reason or outcome.baseline.contended_reason
        for bench in _chosen(suite, opts):
            for metric in suite.settings_for(bench.name).metrics:
                base, cur = process_pair_values(
                    [p for p in outcome.baseline.result.processes if p.benchmark == bench.name],
                    [p for p in outcome.current.result.processes if p.benchmark == bench.name],
                    metric.name)
                if not base:
                    continue
                step = next_step(base, cur, direction=metric.direction,
                                 threshold_pct=threshold(bench.name), alpha=opts.alpha,
                                 min_pairs=opts.min_pairs, max_pairs=opts.max_pairs, rng=rng)
                rows.append(ComparedBenchmark(bench.name, metric.name, metric.unit,
                                              step.comparison, outcome.pairs[bench.name]))
    else:
        base_run, cur_run = stored[0][0].id, stored[1][0].id
        services.events(CompareStarted(base_sha, cur_sha, opts.min_pairs, opts.max_pairs,
                                       base_run, cur_run))
        with store.reading() as r:
            env_changed = r.environment_hash(base_run) != r.environment_hash(cur_run)
            for bench in _chosen(suite, opts):
                for metric in suite.settings_for(bench.name).metrics:
                    base = r.process_values(base_run, bench.name, metric.name)
                    cur = r.process_values(cur_run, bench.name, metric.name)
                    if not base or not cur:
                        continue
                    comparison = compare_independent(
                        base, cur, direction=metric.direction,
                        threshold_pct=threshold(bench.name), alpha=opts.alpha,
                        env_changed=env_changed, rng=rng)
                    rows.append(ComparedBenchmark(bench.name, metric.name, metric.unit,
                                                  comparison))

    adjusted: list[Comparison] = apply_fdr([r.comparison for r in rows], q=opts.fdr_q)
    rows = [ComparedBenchmark(r.benchmark, r.metric, r.unit, c, r.pairs)
            for r, c in zip(rows, adjusted, strict=True)]
    report = CompareReport(
        suite=suite.name, machine_id=services.machine_id,
        baseline=CommitInfo(base_sha, repo.subject(base_sha)),
        current=CommitInfo(cur_sha, repo.subject(cur_sha)),
        mode="interleaved" if interleave else "stored runs",
        threshold_pct=opts.threshold_pct or suite.defaults.threshold_pct,
        alpha=opts.alpha, fdr_q=opts.fdr_q, rows=sort_rows(rows),
        infrastructure=infrastructure_shift(adjusted),
        baseline_run_id=base_run, current_run_id=cur_run, contended=contended,
    )
    if opts.evidence_dir is None or not report.regressions:
        return report
    evidence: list[EvidenceSummary] = []
    errors: list[str] = []
    for name in dict.fromkeys(r.benchmark for r in report.regressions):
        time_row = next((r for r in report.rows if r.benchmark == name and r.metric == "time"), None)
        try:
            bundle = collect_evidence(
                services, suite, repo, base_sha, cur_sha, name,
                opts.evidence_dir / f"compare-{base_sha[:12]}-{cur_sha[:12]}" / name.replace("/", "_"),
                method=opts.profiler,
                baseline_latency_ns=time_row.comparison.baseline_median if time_row else None,
                current_latency_ns=time_row.comparison.current_median if time_row else None)
        except PerfdError as exc:
            errors.append(f"{name}: {exc}")
            continue
        evidence.append(summarize_bundle(bundle))
    return replace(report, evidence=tuple(evidence), evidence_errors=tuple(errors))
