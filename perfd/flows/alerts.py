"""`perfd alert`: judge each series' latest run against its baseline; open, update or resolve alerts.

Baseline of a series: the run an active alert was opened against, otherwise the run before
the latest. The regression checklist's consistency item counts the trailing runs that are
worse than that baseline by more than the threshold. Across all series of a suite the
p-values are corrected (Benjamini-Hochberg); when most of a suite moved together, one
infrastructure alert opens instead of one code alert per benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from perfd.analysis.compare import Comparison, Confidence, Status, compare_independent
from perfd.analysis.fdr import apply_fdr, infrastructure_shift
from perfd.config import SuiteConfig
from perfd.flows.history import metric_info, trailing_worse_runs
from perfd.store import AlertDraft, ResultStore, SeriesKey, SeriesPoint

CONFIDENCE_ORDER = {Confidence.LOW: 1, Confidence.MEDIUM: 2, Confidence.HIGH: 3}
INFRA_METRIC = "*"


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    threshold_pct: float | None = None  # None: each benchmark's threshold_pct (5 if unknown)
    min_confidence: Confidence = Confidence.MEDIUM
    alpha: float = 0.05
    fdr_q: float = 0.05
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    series: SeriesKey
    action: str  # opened | updated | resolved | kept | quiet | skipped
    note: str
    alert_id: int | None = None
    comparison: Comparison | None = None


@dataclass(frozen=True, slots=True)
class _Candidate:
    key: SeriesKey
    baseline: SeriesPoint
    latest: SeriesPoint
    streak: int
    threshold_pct: float
    comparison: Comparison


def evaluate(store: ResultStore, suites: Mapping[str, SuiteConfig], machine_id: str,
             policy: AlertPolicy, *, suite_filter: str | None = None) -> list[Decision]:
    """Evaluate every series of this machine (optionally of one suite); returns what happened."""
    decisions: list[Decision] = []
    by_suite: dict[str, list[_Candidate]] = {}
    rng = np.random.default_rng(policy.seed)
    for key in store.series_keys(suite=suite_filter, machine_id=machine_id):
        points = store.series_points(key, exclude_tiers=("compare",))
        if len(points) < 2:
            decisions.append(Decision(key, "skipped", "needs at least two runs"))
            continue
        latest = points[-1]
        active = store.active_alert(key)
        if active is not None and active.last_run_id == latest.run_id:
            decisions.append(Decision(key, "kept", f"alert {active.id}: no new run since",
                                      active.id))
            continue
        baseline = points[-2]
        if active is not None:
            baseline = next((p for p in points if p.run_id == active.baseline_run_id), baseline)
        suite = suites.get(key.suite)
        _, direction, threshold = metric_info(suite, key)
        threshold = policy.threshold_pct or threshold
        baseline_id = baseline.run_id
        streak = trailing_worse_runs(points, lambda p: p.run_id == baseline_id,  # noqa: B023
                                     baseline.median, direction, threshold)
        comparison = compare_independent(
            store.process_values(baseline.run_id, key.benchmark, key.metric),
            store.process_values(latest.run_id, key.benchmark, key.metric),
            direction=direction, threshold_pct=threshold, alpha=policy.alpha,
            consecutive_worse_runs=streak,
            env_changed=baseline.environment_hash != latest.environment_hash, rng=rng,
        )
        by_suite.setdefault(key.suite, []).append(
            _Candidate(key, baseline, latest, streak, threshold, comparison))

    for suite_name, candidates in by_suite.items():
        adjusted = apply_fdr([c.comparison for c in candidates], q=policy.fdr_q)
        candidates = [_Candidate(c.key, c.baseline, c.latest, c.streak, c.threshold_pct, a)
                      for c, a in zip(candidates, adjusted, strict=True)]
        infra = infrastructure_shift(adjusted)
        if infra is not None and infra.direction == "worse":
            decisions.append(_infrastructure_alert(store, suite_name, machine_id, candidates,
                                                   infra.reason, infra.median_shift_pct))
            continue
        for c in candidates:
            decisions.append(_decide(store, c, policy))
    return decisions


def _serious(c: _Candidate, policy: AlertPolicy) -> bool:
    comp = c.comparison
    return (comp.alert_worthy and comp.confidence is not None
            and CONFIDENCE_ORDER[comp.confidence] >= CONFIDENCE_ORDER[policy.min_confidence])


def _decide(store: ResultStore, c: _Candidate, policy: AlertPolicy) -> Decision:
    comp = c.comparison
    active = store.active_alert(c.key)
    confidence = comp.confidence.value if comp.confidence else "LOW"
    if active is not None and comp.status in (Status.NOISY, Status.INSUFFICIENT_DATA,
                                              Status.INCOMPARABLE):
        return Decision(c.key, "kept", f"{comp.status.value}: {comp.reason}", active.id, comp)
    if active is not None:
        back = comp.status in (Status.UNCHANGED, Status.IMPROVED) or (
            comp.status is Status.REGRESSED and abs(comp.change_pct) < c.threshold_pct)
        if back:
            store.transition(active.id, "RESOLVED", actor="perfd",
                             reason=f"run {c.latest.run_id} at {c.latest.commit_sha[:12]} is back "
                                    f"within {c.threshold_pct:g}%: {comp.reason}")
            return Decision(c.key, "resolved", comp.reason, active.id, comp)
        store.update_alert(active.id, last_commit=c.latest.commit_sha, last_run_id=c.latest.run_id,
                           change_pct=comp.change_pct, confidence=confidence,
                           p_value=comp.p_adjusted if comp.p_adjusted is not None else comp.p_value,
                           reason=comp.reason)
        return Decision(c.key, "updated", comp.reason, active.id, comp)
    if not _serious(c, policy):
        return Decision(c.key, "quiet", f"{comp.status.value}: {comp.reason}", None, comp)
    # The first bad run is the first of the trailing streak (or the latest when streak is 0/1).
    first_bad = c.latest.commit_sha
    points = store.series_points(c.key, exclude_tiers=("compare",))
    if c.streak > 1:
        first_bad = points[-c.streak].commit_sha
    alert_id = store.open_alert(AlertDraft(
        kind="code", series=c.key, baseline_commit=c.baseline.commit_sha,
        first_bad_commit=first_bad, baseline_run_id=c.baseline.run_id,
        last_run_id=c.latest.run_id, change_pct=comp.change_pct, confidence=confidence,
        p_value=comp.p_adjusted if comp.p_adjusted is not None else comp.p_value,
        reason=comp.reason,
    ))
    return Decision(c.key, "opened", comp.reason, alert_id, comp)


def _infrastructure_alert(store: ResultStore, suite: str, machine_id: str,
                          candidates: Sequence[_Candidate], reason: str, shift_pct: float) -> Decision:
    key = SeriesKey(suite, "", INFRA_METRIC, machine_id, "")
    latest = max(candidates, key=lambda c: c.latest.started_at)
    active = store.active_alert(key)
    if active is not None:
        store.update_alert(active.id, last_commit=latest.latest.commit_sha,
                           last_run_id=latest.latest.run_id, change_pct=shift_pct,
                           confidence="HIGH", p_value=None, reason=reason)
        return Decision(key, "updated", reason, active.id)
    alert_id = store.open_alert(AlertDraft(
        kind="infrastructure", series=key, baseline_commit=latest.baseline.commit_sha,
        first_bad_commit=latest.latest.commit_sha, baseline_run_id=latest.baseline.run_id,
        last_run_id=latest.latest.run_id, change_pct=shift_pct, confidence="HIGH", p_value=None,
        reason=f"{reason}: check the machine (governor, load, kernel, neighbours) before the code",
    ))
    return Decision(key, "opened", reason, alert_id)
