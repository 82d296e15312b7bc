"""Budgets: hold each completed run to budgets.yaml and store the verdicts with the run.

For every budget of the run's suite, every benchmark its glob matches and that recorded its
metric is judged by perfd.analysis.budgets: the run's values against the absolute limit, and
for a relative limit against the series' previous history run (the baseline) or, with
``against: reference``, against the reference side of the run's own lock-step pairs. The verdicts
replace the run's earlier ones in one transaction, so `perfd runs show` and `perfd budgets
check` always show one consistent evaluation.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import numpy as np

from perfd.analysis.budgets import BudgetSpec, BudgetStatus, RunValues, evaluate_budget
from perfd.config import Budget, BudgetAgainst, SuiteConfig
from perfd.context import Services
from perfd.errors import ConflictError
from perfd.flows.history import metric_info
from perfd.model import NOT_HISTORY_TIERS, Confidence, Direction, RunStatus, Summary
from perfd.records import BudgetRecord, RunInfo, SeriesKey
from perfd.store.reader import Reader


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """The budget verdicts of one run."""

    run_id: int
    suite: str
    commit_sha: str
    results: tuple[BudgetRecord, ...]

    @property
    def failed(self) -> tuple[BudgetRecord, ...]:
        return tuple(r for r in self.results if r.status == BudgetStatus.FAIL)

    @property
    def warned(self) -> tuple[BudgetRecord, ...]:
        return tuple(r for r in self.results if r.status == BudgetStatus.WARN)


@dataclass(frozen=True, slots=True)
class CheckRequest:
    suite: str | None = None  # only this suite (default: every suite with budgets)
    run_id: int | None = None  # this run (default: the latest history run of each suite)


def limit_text(budget: Budget) -> str:
    """The budget's limits as people wrote them, e.g. "2.5us, +5%" (a ceiling or a floor by
    the metric's direction; the percentage against the baseline run)."""
    parts = []
    if budget.max_value is not None:
        parts.append(budget.max_value_display() or f"{budget.max_value:g}")
    if budget.max_regression_pct is not None:
        versus = " vs reference" if budget.against is BudgetAgainst.REFERENCE else ""
        parts.append(f"+{budget.max_regression_pct:g}%{versus}")
    return ", ".join(parts)


def spec_of(budget: Budget) -> BudgetSpec:
    return BudgetSpec(
        label=f"{budget.suite} {budget.benchmark} {budget.metric}",
        statistic=budget.statistic.value, max_value=budget.max_value,
        max_regression_pct=budget.max_regression_pct,
        min_confidence=Confidence(budget.confidence.value.upper()),
        blocking=budget.action.value == "block",
        against_reference=budget.against is BudgetAgainst.REFERENCE)


def evaluate_run_budgets(services: Services, run_id: int) -> BudgetCheck:
    """Judge a completed run against its suite's budgets and store the verdicts. Raises
    NotFoundError for an unknown run, ConflictError for a run that is not COMPLETED."""
    with services.store.reading() as reader:
        detail = reader.get_run(run_id)
        info = detail.info
        if info.status is not RunStatus.COMPLETED:
            raise ConflictError(f"run {run_id} is {info.status}: only completed runs are held "
                                "to budgets")
        budgets = services.config.budgets
        chosen = [(i, b) for i, b in enumerate(budgets.budgets if budgets else ())
                  if b.suite == info.suite]
        suite = services.config.suites.get(info.suite)
        results = _judge(reader, run_id, detail.statistics, chosen, suite, info.suite,
                         info.machine_id)
    services.store.save_budget_results(run_id, results)
    return BudgetCheck(run_id, info.suite, info.commit_sha, tuple(results))


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What every budget on one benchmark x metric of the run reads (looked up once)."""

    current: RunValues
    baseline: RunValues | None  # the series' previous history run
    baseline_id: int | None
    reference: RunValues | None  # the reference side of the run's lock-step pairs
    reference_id: int | None
    reference_pairs: tuple[float, ...] | None  # those pairs' current/reference ratios
    direction: Direction


def _judge(reader: Reader, run_id: int, statistics: tuple[Summary, ...],
           chosen: list[tuple[int, Budget]], suite: SuiteConfig | None, suite_name: str,
           machine_id: str) -> list[BudgetRecord]:
    by_key = {(s.benchmark, s.metric): s for s in statistics}
    keys = reader.series_keys(suite=suite_name, machine_id=machine_id) if chosen else []
    other_stats: dict[int, dict[tuple[str, str], Summary]] = {}
    inputs: dict[tuple[str, str], _Inputs] = {}

    def values_of(other: int | None, values: dict[int, list[float]], benchmark: str,
                  metric: str) -> RunValues | None:
        if other is None or other not in values:
            return None
        if other not in other_stats:
            other_stats[other] = {(s.benchmark, s.metric): s for s in reader.statistics(other)}
        st = other_stats[other].get((benchmark, metric))
        return RunValues(tuple(values[other]), st.p95 if st else None, st.p99 if st else None,
                         st.n_samples if st else 0)

    def inputs_of(benchmark: str, metric: str) -> _Inputs:
        if (benchmark, metric) in inputs:
            return inputs[(benchmark, metric)]
        summary = by_key[(benchmark, metric)]
        baseline_id = _baseline_run(reader, keys, benchmark, metric, run_id)
        ratio = reader.ratios_for_runs([run_id], benchmark, metric).get(run_id)
        reference_id = ratio.reference_run_id if ratio is not None else None
        ids = [i for i in (run_id, baseline_id, reference_id) if i is not None]
        values = reader.process_values_for_runs(ids, benchmark, metric)
        _, direction, _ = metric_info(suite, SeriesKey(suite_name, benchmark, metric,
                                                       machine_id, "-"))
        found = inputs[(benchmark, metric)] = _Inputs(
            RunValues(tuple(values[run_id]), summary.p95, summary.p99, summary.n_samples),
            values_of(baseline_id, values, benchmark, metric), baseline_id,
            values_of(reference_id, values, benchmark, metric), reference_id,
            ratio.pair_ratios if ratio is not None else None, direction)
        return found

    rng = np.random.default_rng(0)
    results = []
    for index, budget in chosen:
        spec = spec_of(budget)
        for benchmark, metric in by_key:
            if metric != budget.metric or not fnmatch.fnmatchcase(benchmark, budget.benchmark):
                continue
            got = inputs_of(benchmark, metric)
            if spec.against_reference:
                verdict = evaluate_budget(spec, got.current, got.reference,
                                          direction=got.direction, rng=rng,
                                          reference_pairs=got.reference_pairs)
                other_id = got.reference_id
            else:
                verdict = evaluate_budget(spec, got.current, got.baseline,
                                          direction=got.direction, rng=rng)
                other_id = got.baseline_id
            results.append(BudgetRecord(
                run_id=run_id, budget_index=index, suite=suite_name, benchmark=benchmark,
                metric=metric, statistic=budget.statistic.value, limit_text=limit_text(budget),
                action=budget.action.value, min_confidence=budget.confidence.value.upper(),
                owner=budget.owner, status=verdict.status.value, value=verdict.value,
                baseline_run_id=other_id if verdict.baseline_value is not None else None,
                baseline_value=verdict.baseline_value, change_pct=verdict.change_pct,
                confidence=verdict.confidence.value if verdict.confidence else None,
                reason=verdict.reason))
    return results


def _baseline_run(reader: Reader, keys: list[SeriesKey], benchmark: str, metric: str,
                  run_id: int) -> int | None:
    """The run just before ``run_id`` in the history series that holds it (None for the
    series' first run)."""
    for key in keys:
        if (key.benchmark, key.metric) != (benchmark, metric):
            continue
        ids = [p.run_id for p in reader.series_points(key, exclude_tiers=NOT_HISTORY_TIERS)]
        if run_id in ids:
            at = ids.index(run_id)
            return ids[at - 1] if at > 0 else None
    return None


def latest_history_run(reader: Reader, suite: str, machine_id: str) -> RunInfo | None:
    """The newest COMPLETED history run (not a compare or reference side) of a suite on a
    machine, among its latest 200 runs."""
    return next((r for r in reader.list_runs(suite=suite, status=RunStatus.COMPLETED.value,
                                             limit=200)
                 if r.machine_id == machine_id and r.tier not in NOT_HISTORY_TIERS), None)


def check_budgets(services: Services, request: CheckRequest) -> list[BudgetCheck]:
    """Evaluate (again) the budgets of one run, or of the latest history run of each suite
    with budgets on this machine. Raises NotFoundError."""
    if request.run_id is not None:
        return [evaluate_run_budgets(services, request.run_id)]
    budgets = services.config.budgets
    suites = sorted({b.suite for b in budgets.budgets} if budgets else set())
    if request.suite is not None:
        suites = [s for s in suites if s == request.suite]
    checks = []
    for name in suites:
        with services.store.reading() as reader:
            latest = latest_history_run(reader, name, services.machine_id)
        if latest is not None:
            checks.append(evaluate_run_budgets(services, latest.id))
    return checks
