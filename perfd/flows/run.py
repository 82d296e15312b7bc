"""`perfd run` (and every history run of the daemon): one suite at one commit, stored.

With a reference set for the suite's branch (`perfd reference set`), each benchmark runs in
lock-step pairs with the reference build, as `perfd compare` runs its pairs: both sides are
stored (the reference's as tier "reference", outside history) and, per benchmark and metric,
the paired ratio to the reference with its confidence interval. History is judged on those
ratios. ``solo`` (or no reference) measures the commit alone, as before.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfd.analysis.compare import compare_paired, process_pair_values
from perfd.config import SuiteConfig
from perfd.context import Services
from perfd.errors import UsageError
from perfd.events import Event, RunBegun, RunContended, RunRecovered
from perfd.flows.budgets import BudgetCheck, evaluate_run_budgets
from perfd.model import RunOutcome, RunTier
from perfd.records import RatioRecord, ReferenceRecord
from perfd.runner.git import Repository
from perfd.runner.pipeline import (
    PairedOutcome,
    RunOptions,
    measures_for,
    run_interleaved,
    run_suite,
    with_benchmark_data,
)
from perfd.runner.procs import pid_alive


@dataclass(frozen=True, slots=True)
class RunRequest:
    suite: str  # a suite name of the config, or a path to its YAML
    commit: str  # commit id, branch or tag
    output_dir: Path | None = None  # also write benchmark_data.json here
    repository: str | None = None  # instead of the suite's repository
    seed: int | None = None  # order of processes within a round
    tier: RunTier = RunTier.MANUAL
    retries: int = 2  # measure again this many times while a run comes out CONTENDED
    retry_delay_s: float = 5.0  # wait before each retry (a neighbour may be gone by then)
    solo: bool = False  # measure alone even when the suite has a reference
    branch: str | None = None  # whose reference (default: the suite's first tracked branch)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.retry_delay_s < 0:
            raise UsageError(f"retries and retry delay must be >= 0, got {self.retries} and "
                             f"{self.retry_delay_s:g} s")


def _paired(services: Services, suite: SuiteConfig, repo: Repository, reference: ReferenceRecord,
            rev: str, options: RunOptions) -> Measured:
    """One lock-step pair per repetition of each benchmark with the reference build; store
    the ratios (the pairs' median current/reference ratio, its CI, every pair's ratio)."""
    pairs = max(2, *(m.repetitions for m in measures_for(suite, options.tier)))
    both = run_interleaved(suite, repo, services.builder, reference.commit_sha, rev,
                           services.store, options, keep_going=lambda *_: False,
                           min_pairs=pairs, max_pairs=pairs,
                           tiers=(RunTier.REFERENCE, options.tier))
    ref, cur = both.baseline, both.current
    ratios = [RatioRecord(run_id=cur.run_id, reference_run_id=ref.run_id, reference_id=reference.id,
                          benchmark=r.benchmark, metric=r.metric, ratio=r.ratio, ci_low=r.ci[0],
                          ci_high=r.ci[1], n_pairs=len(r.pair_ratios), pair_ratios=r.pair_ratios)
              for r in paired_ratios(suite, both, options)]
    services.store.save_ratios(ratios)
    # Both sides took turns on one CPU, so a neighbour disturbs both; the measured side's
    # contention verdict is the run's.
    if options.output_dir is not None:
        cur = with_benchmark_data(cur, suite, options)
    return Measured(cur, reference, tuple(ratios))


@dataclass(frozen=True, slots=True)
class PairedRatio:
    """One benchmark x metric of a lock-step paired run: the median of the pairs'
    current/baseline ratios, its CI and every pair's ratio (in pair order)."""

    benchmark: str
    metric: str
    ratio: float
    ci: tuple[float, float]
    pair_ratios: tuple[float, ...]


def paired_ratios(suite: SuiteConfig, both: PairedOutcome, options: RunOptions) -> list[PairedRatio]:
    """Each benchmark x metric's ratio of the current side to the baseline side (metrics with
    fewer than two pairs, e.g. counters without a PMU, are left out)."""
    rng = np.random.default_rng(options.seed or 0)
    out = []
    for bench in suite.benchmarks:
        settings = suite.settings_for(bench.name, options.tier)
        for metric in settings.metrics:
            b, c = process_pair_values(
                [p for p in both.baseline.result.processes if p.benchmark == bench.name],
                [p for p in both.current.result.processes if p.benchmark == bench.name],
                metric.name)
            if len(b) < 2:
                continue
            comp = compare_paired(b, c, direction=metric.direction,
                                  threshold_pct=settings.threshold_pct, rng=rng)
            out.append(PairedRatio(bench.name, metric.name, 1.0 + comp.change_pct / 100.0,
                                   comp.ratio_ci,
                                   tuple(ci / bi for bi, ci in zip(b, c, strict=True))))
    return out


def recover_interrupted(services: Services) -> list[int]:
    """Mark FAILED the RUNNING runs of this host whose perfd process is gone; returns their ids."""
    stale = services.store.recover_interrupted(socket.gethostname(), pid_alive)
    for run_id in stale:
        services.events(RunRecovered(run_id))
    return stale


def run_options(services: Services, *, tier: RunTier, seed: int | None = None,
                output_dir: Path | None = None) -> RunOptions:
    """Options of the runner for this machine; run ids reach the machine lock's holder note."""
    def events(event: Event) -> None:
        if isinstance(event, RunBegun):
            services.machine.describe(f"run {event.run_id} of suite {event.suite}")
        services.events(event)

    return RunOptions(machine_id=services.machine_id, output_dir=output_dir, seed=seed, tier=tier,
                      probe=services.probe, events=events, clock=services.clock)


@dataclass(frozen=True, slots=True)
class Measured:
    outcome: RunOutcome  # the measured commit's run (the last attempt)
    reference: ReferenceRecord | None = None  # what it was paired with
    ratios: tuple[RatioRecord, ...] = ()  # its ratios to the reference


@dataclass(frozen=True, slots=True)
class RunReport:
    outcome: RunOutcome  # the last attempt
    budgets: BudgetCheck | None  # its budget verdicts (None: contended, not held to budgets)
    reference: ReferenceRecord | None = None
    ratios: tuple[RatioRecord, ...] = ()


def run(services: Services, request: RunRequest) -> RunReport:
    """Measure (see :func:`measure`), then hold a completed run to its suite's budgets."""
    m = measure(services, request)
    budgets = None if m.outcome.contended else evaluate_run_budgets(services, m.outcome.run_id)
    return RunReport(m.outcome, budgets, m.reference, m.ratios)


def measure(services: Services, request: RunRequest) -> Measured:
    """Build and measure a suite at a commit under the machine lock; store it atomically.

    A run that comes out CONTENDED (its samples were taken off their CPU) is kept as such and
    measured again, up to ``retries`` times; the last outcome is returned, so the caller sees
    whether it is still contended. Raises ConfigError, RepositoryError, BuildError,
    HarnessError, StorageError, MachineBusyError."""
    suite = services.suite(request.suite)
    repo = services.repository(suite, request.repository)
    options = run_options(services, tier=request.tier, seed=request.seed,
                          output_dir=request.output_dir)
    reference = None if request.solo else services.store.current_reference(
        suite.name, request.branch or suite.branches[0])
    with services.machine.hold(f"a run of suite {suite.name} at {request.commit}"):
        recover_interrupted(services)
        for attempt in range(1, request.retries + 2):
            if reference is None:
                measured = Measured(run_suite(suite, repo, services.builder, request.commit,
                                              services.store, options))
            else:
                measured = _paired(services, suite, repo, reference, request.commit, options)
            outcome = measured.outcome
            if not outcome.contended or attempt > request.retries:
                return measured
            services.events(RunContended(outcome.run_id, outcome.contended_reason or "",
                                         attempt, request.retries + 1, request.retry_delay_s))
            time.sleep(request.retry_delay_s)
    raise AssertionError("unreachable: the last attempt returns")
