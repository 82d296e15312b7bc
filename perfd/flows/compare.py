"""`perfd compare`: two commits, from stored runs or measured now in interleaved pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from perfd.analysis.compare import Comparison, compare_independent, lockstep_pair_values
from perfd.analysis.fdr import apply_fdr, infrastructure_shift
from perfd.analysis.sequential import next_step
from perfd.config import SuiteConfig
from perfd.errors import PerfdError
from perfd.flows.evidence import collect_evidence, summarize_bundle
from perfd.model import ProcessResult
from perfd.report.compare import (
    CommitInfo,
    ComparedBenchmark,
    CompareReport,
    EvidenceSummary,
    sort_rows,
)
from perfd.runner.build import Builder
from perfd.runner.git import Repository
from perfd.runner.pipeline import RunOptions, run_interleaved
from perfd.store import ResultStore


@dataclass(frozen=True, slots=True)
class CompareOptions:
    threshold_pct: float | None = None  # None: each benchmark's own threshold_pct
    alpha: float = 0.05
    fdr_q: float = 0.05
    min_pairs: int = 5
    max_pairs: int = 20
    interleave: bool | None = None  # None: interleave when either commit has no stored run
    seed: int = 0
    evidence_dir: Path | None = None  # profile each regression into <dir>/compare-A-B/<benchmark>
    profiler: str = "auto"


def _pair_values(base: Sequence[ProcessResult], cur: Sequence[ProcessResult],
                 metric: str) -> tuple[list[float], list[float]]:
    """One value per side per pair (the pair index is the processes' repetition)."""
    sides = []
    for processes in (base, cur):
        ordered = sorted(processes, key=lambda p: p.repetition)
        sides.append([v for p in ordered if (v := p.samples.metric_values(metric)) is not None])
    if not sides[0] or len(sides[0]) != len(sides[1]):
        return [], []  # metric not measured on this machine (e.g. counters without a PMU)
    return lockstep_pair_values(sides[0], sides[1])


def compare_commits(suite: SuiteConfig, baseline_rev: str, current_rev: str, store: ResultStore,
                    run_opts: RunOptions, opts: CompareOptions) -> CompareReport:
    """Compare two commits of a suite on this machine; the report carries the verdict."""
    repo = Repository.open(run_opts.repository or suite.repository_location(),
                           run_opts.data_dir / "mirrors")
    base_sha, cur_sha = repo.resolve(baseline_rev), repo.resolve(current_rev)
    stored = [store.runs_for_commit(suite.name, sha, run_opts.machine_id) for sha in (base_sha, cur_sha)]
    stored = [[r for r in runs if r.tier != "compare"] for runs in stored]
    interleave = opts.interleave if opts.interleave is not None else not all(stored)
    rng = np.random.default_rng(opts.seed)

    def threshold(bench: str) -> float:
        return opts.threshold_pct or suite.settings_for(bench).threshold_pct

    rows: list[ComparedBenchmark] = []
    if interleave:
        run_opts.progress(f"comparing {base_sha[:12]} and {cur_sha[:12]} in interleaved pairs "
                          f"({opts.min_pairs}..{opts.max_pairs} per benchmark)")

        def keep_going(bench: str, base: Sequence[ProcessResult], cur: Sequence[ProcessResult]) -> bool:
            primary = suite.settings_for(bench).metrics[0]
            step = next_step(*_pair_values(base, cur, primary.name),
                             direction=primary.direction, threshold_pct=threshold(bench),
                             alpha=opts.alpha, min_pairs=opts.min_pairs, max_pairs=opts.max_pairs,
                             rng=np.random.default_rng(opts.seed))
            return step.action == "continue"

        outcome = run_interleaved(suite, base_sha, cur_sha, store, run_opts, keep_going=keep_going,
                                  min_pairs=opts.min_pairs, max_pairs=opts.max_pairs)
        base_run, cur_run = outcome.baseline.run_id, outcome.current.run_id
        for bench in suite.benchmarks:
            for metric in suite.settings_for(bench.name).metrics:
                base, cur = _pair_values(
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
        run_opts.progress(f"comparing stored runs {base_run} ({base_sha[:12]}) and "
                          f"{cur_run} ({cur_sha[:12]})")
        env_changed = store.environment_hash(base_run) != store.environment_hash(cur_run)
        for bench in suite.benchmarks:
            for metric in suite.settings_for(bench.name).metrics:
                base = store.process_values(base_run, bench.name, metric.name)
                cur = store.process_values(cur_run, bench.name, metric.name)
                if not base or not cur:
                    continue
                comparison = compare_independent(
                    base, cur, direction=metric.direction, threshold_pct=threshold(bench.name),
                    alpha=opts.alpha, env_changed=env_changed, rng=rng)
                rows.append(ComparedBenchmark(bench.name, metric.name, metric.unit, comparison))

    adjusted: list[Comparison] = apply_fdr([r.comparison for r in rows], q=opts.fdr_q)
    rows = [ComparedBenchmark(r.benchmark, r.metric, r.unit, c, r.pairs)
            for r, c in zip(rows, adjusted, strict=True)]
    report = CompareReport(
        suite=suite.name, machine_id=run_opts.machine_id,
        baseline=CommitInfo(base_sha, repo.subject(base_sha)),
        current=CommitInfo(cur_sha, repo.subject(cur_sha)),
        mode="interleaved" if interleave else "stored runs",
        threshold_pct=opts.threshold_pct or suite.defaults.threshold_pct,
        alpha=opts.alpha, fdr_q=opts.fdr_q, rows=sort_rows(rows),
        infrastructure=infrastructure_shift(adjusted),
        baseline_run_id=base_run, current_run_id=cur_run,
    )
    if opts.evidence_dir is None or not report.regressions:
        return report
    evidence: list[EvidenceSummary] = []
    errors: list[str] = []
    builder = Builder(run_opts.data_dir / "builds")
    for name in dict.fromkeys(r.benchmark for r in report.regressions):
        time_row = next((r for r in report.rows if r.benchmark == name and r.metric == "time"), None)
        try:
            bundle = collect_evidence(
                suite, repo, builder, base_sha, cur_sha, name,
                opts.evidence_dir / f"compare-{base_sha[:12]}-{cur_sha[:12]}" / name.replace("/", "_"),
                method=opts.profiler,
                baseline_latency_ns=time_row.comparison.baseline_median if time_row else None,
                current_latency_ns=time_row.comparison.current_median if time_row else None,
                progress=run_opts.progress)
        except PerfdError as exc:
            errors.append(f"{name}: {exc}")
            continue
        evidence.append(summarize_bundle(bundle))
    return replace(report, evidence=tuple(evidence), evidence_errors=tuple(errors))
