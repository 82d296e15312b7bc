"""`perfd alert`: judge each series' latest run against its baseline; open, update or resolve alerts.

Baseline of a series: the run an active alert was opened against, otherwise the run before
the latest. The regression checklist's consistency item counts the trailing runs that are
worse than that baseline by more than the threshold. Across all series of a suite the
p-values are corrected (Benjamini-Hochberg); when most of a suite moved together, one
infrastructure alert opens instead of one code alert per benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from perfd.analysis.compare import Comparison, compare_independent
from perfd.analysis.fdr import apply_fdr, infrastructure_shift
from perfd.analysis.results import Decision
from perfd.config import SuiteConfig
from perfd.context import Services
from perfd.errors import PerfdError
from perfd.events import EvidenceFailed
from perfd.flows.evidence import AlertEvidenceRequest, EvidenceBundle, alert_evidence
from perfd.flows.history import metric_info, trailing_worse_runs
from perfd.model import NOT_HISTORY_TIERS, AlertAction, Confidence, Status
from perfd.store import Alert, AlertDraft, AlertEvent, ResultStore, SeriesKey, SeriesPoint
from perfd.store.reader import Reader

INFRA_METRIC = "*"
# CLI verbs of the alert lifecycle -> the state they move an alert to.
TRANSITIONS = {"ack": "ACKNOWLEDGED", "resolve": "RESOLVED", "false-positive": "FALSE_POSITIVE",
               "invalid": "INVALID", "downstream": "DOWNSTREAM"}


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    threshold_pct: float | None = None  # None: each benchmark's threshold_pct (5 if unknown)
    min_confidence: Confidence = Confidence.MEDIUM
    alpha: float = 0.05
    fdr_q: float = 0.05
    seed: int = 0


@dataclass(frozen=True, slots=True)
class EvaluateRequest:
    policy: AlertPolicy = AlertPolicy()
    suite: str | None = None  # only this suite (default: every suite with stored runs)
    evidence: bool = True  # profile each newly opened code alert
    evidence_profiler: str = "auto"


@dataclass(frozen=True, slots=True)
class AlertEvidence:
    alert_id: int
    bundle: EvidenceBundle


@dataclass(frozen=True, slots=True)
class Evaluation:
    decisions: tuple[Decision, ...]
    evidence: tuple[AlertEvidence, ...]
    evidence_errors: tuple[str, ...]
    open_alerts: int  # OPEN alerts of the evaluated suites on this machine afterwards


@dataclass(frozen=True, slots=True)
class TransitionRequest:
    alert_id: int
    to_state: str
    actor: str
    reason: str = ""
    parent_alert_id: int | None = None


def evaluate_alerts(services: Services, request: EvaluateRequest) -> Evaluation:
    """Evaluate every series of this machine, then collect evidence for each opened code alert."""
    decisions = evaluate(services.store, services.config.suites, services.machine_id,
                         request.policy, suite_filter=request.suite)
    found: list[AlertEvidence] = []
    errors: list[str] = []
    if request.evidence:
        for d in decisions:
            if d.action is not AlertAction.OPENED or d.alert_id is None or not d.series.benchmark:
                continue
            try:
                bundle = alert_evidence(services, AlertEvidenceRequest(
                    d.alert_id, profiler=request.evidence_profiler))
            except PerfdError as exc:
                errors.append(f"alert {d.alert_id}: {exc}")
                services.events(EvidenceFailed(f"alert {d.alert_id}", str(exc)))
                continue
            found.append(AlertEvidence(d.alert_id, bundle))
    still_open = services.store.list_alerts(state=["OPEN"], suite=request.suite,
                                            machine_id=services.machine_id)
    return Evaluation(tuple(decisions), tuple(found), tuple(errors), len(still_open))


def transition_alert(services: Services, request: TransitionRequest) -> Alert:
    """Move an alert through its lifecycle, recording who/when/why. Raises NotFoundError,
    ConflictError for a move the lifecycle does not allow."""
    return services.store.transition(request.alert_id, request.to_state, actor=request.actor,
                                     reason=request.reason,
                                     parent_alert_id=request.parent_alert_id)


def show_alert(services: Services, alert_id: int) -> tuple[Alert, list[AlertEvent]]:
    """An alert and its history, oldest event first. Raises NotFoundError."""
    return services.store.get_alert(alert_id)


def list_alerts(services: Services, *, states: Sequence[str] | None, suite: str | None,
                limit: int) -> list[Alert]:
    """Alerts newest first (any machine), filtered by state and suite."""
    return services.store.list_alerts(state=states, suite=suite, limit=limit)


@dataclass(frozen=True, slots=True)
class _Candidate:
    key: SeriesKey
    baseline: SeriesPoint
    latest: SeriesPoint
    streak: int
    threshold_pct: float
    comparison: Comparison
    first_bad_commit: str


def evaluate(store: ResultStore, suites: Mapping[str, SuiteConfig], machine_id: str,
             policy: AlertPolicy, *, suite_filter: str | None = None) -> list[Decision]:
    """Evaluate every series of this machine (optionally of one suite); returns what happened.

    Everything is read through one snapshot first, then the alert writes follow."""
    with store.reading() as reader:
        decisions, by_suite, active = _judge(reader, suites, machine_id, policy, suite_filter)
    for suite_name, candidates in by_suite.items():
        adjusted = apply_fdr([c.comparison for c in candidates], q=policy.fdr_q)
        candidates = [replace(c, comparison=a) for c, a in zip(candidates, adjusted, strict=True)]
        infra = infrastructure_shift(adjusted)
        if infra is not None and infra.direction == "worse":
            decisions.append(_infrastructure_alert(store, suite_name, machine_id, candidates,
                                                   infra.reason, infra.median_shift_pct, active))
            continue
        for c in candidates:
            decisions.append(_decide(store, c, policy, active.get(c.key)))
    return decisions


def _judge(reader: Reader, suites: Mapping[str, SuiteConfig], machine_id: str,
           policy: AlertPolicy, suite_filter: str | None,
           ) -> tuple[list[Decision], dict[str, list[_Candidate]], dict[SeriesKey, Alert]]:
    """Each series' latest run against its baseline, before FDR (reads only)."""
    decisions: list[Decision] = []
    by_suite: dict[str, list[_Candidate]] = {}
    rng = np.random.default_rng(policy.seed)
    active_alerts = reader.active_alerts(suite=suite_filter, machine_id=machine_id)
    for key in reader.series_keys(suite=suite_filter, machine_id=machine_id):
        points = reader.series_points(key, exclude_tiers=NOT_HISTORY_TIERS)
        if len(points) < 2:
            decisions.append(Decision(key, AlertAction.SKIPPED, "needs at least two runs"))
            continue
        latest = points[-1]
        active = active_alerts.get(key)
        if active is not None and active.last_run_id == latest.run_id:
            decisions.append(Decision(key, AlertAction.KEPT,
                                      f"alert {active.id}: no new run since", active.id))
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
        values = reader.process_values_for_runs([baseline.run_id, latest.run_id],
                                                key.benchmark, key.metric)
        comparison = compare_independent(
            values.get(baseline.run_id, []), values.get(latest.run_id, []),
            direction=direction, threshold_pct=threshold, alpha=policy.alpha,
            consecutive_worse_runs=streak,
            env_changed=baseline.environment_hash != latest.environment_hash, rng=rng,
        )
        # The first bad run is the first of the trailing streak (or the latest when streak is 0/1).
        first_bad = points[-streak].commit_sha if streak > 1 else latest.commit_sha
        by_suite.setdefault(key.suite, []).append(
            _Candidate(key, baseline, latest, streak, threshold, comparison, first_bad))
    return decisions, by_suite, active_alerts


def _serious(c: _Candidate, policy: AlertPolicy) -> bool:
    comp = c.comparison
    return (comp.alert_worthy and comp.confidence is not None
            and comp.confidence.rank >= policy.min_confidence.rank)


def _decide(store: ResultStore, c: _Candidate, policy: AlertPolicy,
            active: Alert | None) -> Decision:
    comp = c.comparison
    confidence = comp.confidence.value if comp.confidence else "LOW"
    if active is not None and comp.status in (Status.NOISY, Status.INSUFFICIENT_DATA,
                                              Status.INCOMPARABLE):
        return Decision(c.key, AlertAction.KEPT, f"{comp.status.value}: {comp.reason}", active.id,
                        comp)
    if active is not None:
        back = comp.status in (Status.UNCHANGED, Status.IMPROVED) or (
            comp.status is Status.REGRESSED and abs(comp.change_pct) < c.threshold_pct)
        if back:
            store.transition(active.id, "RESOLVED", actor="perfd",
                             reason=f"run {c.latest.run_id} at {c.latest.commit_sha[:12]} is back "
                                    f"within {c.threshold_pct:g}%: {comp.reason}")
            return Decision(c.key, AlertAction.RESOLVED, comp.reason, active.id, comp)
        store.update_alert(active.id, last_commit=c.latest.commit_sha, last_run_id=c.latest.run_id,
                           change_pct=comp.change_pct, confidence=confidence,
                           p_value=comp.p_adjusted if comp.p_adjusted is not None else comp.p_value,
                           reason=comp.reason)
        return Decision(c.key, AlertAction.UPDATED, comp.reason, active.id, comp)
    if not _serious(c, policy):
        return Decision(c.key, AlertAction.QUIET, f"{comp.status.value}: {comp.reason}", None, comp)
    alert_id = store.open_alert(AlertDraft(
        kind="code", series=c.key, baseline_commit=c.baseline.commit_sha,
        first_bad_commit=c.first_bad_commit, baseline_run_id=c.baseline.run_id,
        last_run_id=c.latest.run_id, change_pct=comp.change_pct, confidence=confidence,
        p_value=comp.p_adjusted if comp.p_adjusted is not None else comp.p_value,
        reason=comp.reason,
    ))
    return Decision(c.key, AlertAction.OPENED, comp.reason, alert_id, comp)


def _infrastructure_alert(store: ResultStore, suite: str, machine_id: str,
                          candidates: Sequence[_Candidate], reason: str, shift_pct: float,
                          active_alerts: Mapping[SeriesKey, Alert]) -> Decision:
    key = SeriesKey(suite, "", INFRA_METRIC, machine_id, "")
    latest = max(candidates, key=lambda c: c.latest.started_at)
    active = active_alerts.get(key)
    if active is not None:
        store.update_alert(active.id, last_commit=latest.latest.commit_sha,
                           last_run_id=latest.latest.run_id, change_pct=shift_pct,
                           confidence="HIGH", p_value=None, reason=reason)
        return Decision(key, AlertAction.UPDATED, reason, active.id)
    alert_id = store.open_alert(AlertDraft(
        kind="infrastructure", series=key, baseline_commit=latest.baseline.commit_sha,
        first_bad_commit=latest.latest.commit_sha, baseline_run_id=latest.baseline.run_id,
        last_run_id=latest.latest.run_id, change_pct=shift_pct, confidence="HIGH", p_value=None,
        reason=f"{reason}: check the machine (governor, load, kernel, neighbours) before the code",
    ))
    return Decision(key, AlertAction.OPENED, reason, alert_id)
