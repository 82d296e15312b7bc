"""`perfd alert`: judge each series' newest runs against the stable runs before them; open,
update or resolve alerts.

Which runs face which (:func:`perfd.flows.history.trailing_step`): the newest runs that are
all worse than the median of the five runs before them by more than the threshold (the
streak; the regression checklist's consistency count), against those five runs without any
one-run outlier; with no streak, the newest run alone against the runs before it. With an
active alert, its baseline run (and the stable runs before it) against the newest run. On a
reference-paired series the values are the runs' pair ratios to the reference, pooled over
each side's runs, so a small step that one run's five pairs cannot show is found as the
streak grows. Across all series of a suite the p-values are corrected (Benjamini-Hochberg);
when most of a suite moved together, one infrastructure alert opens instead of one code alert
per benchmark.

**Confirm before paging.** A code alert that would open is first re-measured: the last good
commit (the baseline run's) and the first bad one run now in adaptive lock-step pairs, as
`perfd compare` runs them. The alert opens with the A/B's change, CI and confidence when the
A/B shows the regression; otherwise it is recorded as a FALSE_POSITIVE of perfd's, with the
A/B's answer. A step an alert was raised for once (the same last good and first bad commit
of the series), refuted or resolved since, is not raised again. When commits nobody measured
lie between the two, the alert names the range.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from perfd.analysis.compare import Comparison, compare_independent
from perfd.analysis.fdr import apply_fdr, infrastructure_shift
from perfd.analysis.results import Decision
from perfd.config import SuiteConfig
from perfd.context import Services
from perfd.errors import PerfdError
from perfd.events import EvidenceFailed
from perfd.flows.compare import CompareRequest, compare
from perfd.flows.evidence import AlertEvidenceRequest, EvidenceBundle, alert_evidence
from perfd.flows.history import (
    Step,
    metric_info,
    ratio_series,
    stable_stretch,
    trailing_step,
    trailing_worse_runs,
)
from perfd.model import NOT_HISTORY_TIERS, AlertAction, Confidence, Direction, Status
from perfd.store import Alert, AlertDraft, AlertEvent, ResultStore, SeriesKey, SeriesPoint
from perfd.store.reader import Reader

# The machine-wide series key of an infrastructure alert: every benchmark, metric and config.
INFRA_METRIC = "*"
INFRA_CONFIG = "*"
# How the reason of an alert that a lock-step A/B refuted begins (so it is not asked again).
REFUTED = "refuted by a"
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
    confirm: bool = True  # re-measure each step in lock-step pairs before an alert opens
    min_pairs: int = 5
    max_pairs: int = 20


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the lock-step A/B of a step said (comparison None: it could not be measured)."""

    comparison: Comparison | None
    pairs: int | None
    note: str


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
    confirm = _confirmer(services, request) if request.confirm else None
    decisions = evaluate(services.store, services.config.suites, services.machine_id,
                         request.policy, suite_filter=request.suite, confirm=confirm)
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


Confirmer = Callable[[str, Sequence["_Candidate"]], dict[SeriesKey, Confirmation]]


def _confirmer(services: Services, request: EvaluateRequest) -> Confirmer:
    """Lock-step A/B of each step's last good and first bad commit, one compare per commit
    pair, limited to the benchmarks that stepped there."""
    def confirm(suite: str, candidates: Sequence[_Candidate]) -> dict[SeriesKey, Confirmation]:
        out: dict[SeriesKey, Confirmation] = {}
        steps: dict[tuple[str, str], list[_Candidate]] = {}
        for c in candidates:
            steps.setdefault((c.last_good.commit_sha, c.first_bad_commit), []).append(c)
        for (good, bad), group in steps.items():
            names = tuple(sorted({c.key.benchmark for c in group}))
            try:
                report = compare(services, CompareRequest(
                    suite=suite, baseline=good, current=bad, benchmarks=names,
                    threshold_pct=request.policy.threshold_pct, alpha=request.policy.alpha,
                    fdr_q=request.policy.fdr_q, min_pairs=request.min_pairs,
                    max_pairs=request.max_pairs, interleave=True, seed=request.policy.seed))
            except PerfdError as exc:
                for c in group:
                    out[c.key] = Confirmation(None, None, f"could not be confirmed: {exc}")
                continue
            rows = {(r.benchmark, r.metric): r for r in report.rows}
            span = _range_note(services, suite, good, bad)
            for c in group:
                row = rows.get((c.key.benchmark, c.key.metric))
                if row is None:
                    out[c.key] = Confirmation(None, None, "the A/B did not measure this metric")
                    continue
                out[c.key] = Confirmation(
                    row.comparison, row.pairs,
                    f"lock-step A/B of {good[:12]} and {bad[:12]} ({row.pairs} pairs): "
                    f"{row.comparison.reason}{span}")
        return out

    return confirm


def _range_note(services: Services, suite_name: str, good: str, bad: str) -> str:
    """"; in one of N commits good..bad" when unmeasured commits lie between the two."""
    try:
        suite = services.suite(suite_name)
        between = services.repository(suite).commits_between(good, bad)
    except PerfdError:
        return ""
    if len(between) < 2:
        return ""
    return (f"; the change is in one of {len(between)} commits {good[:12]}..{bad[:12]} "
            "(not all measured: bisect them)")


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
    last_good: SeriesPoint  # the run just before the step (the A/B measures its commit)
    latest: SeriesPoint
    streak: int
    threshold_pct: float
    comparison: Comparison
    first_bad_commit: str


def evaluate(store: ResultStore, suites: Mapping[str, SuiteConfig], machine_id: str,
             policy: AlertPolicy, *, suite_filter: str | None = None,
             confirm: Confirmer | None = None) -> list[Decision]:
    """Evaluate every series of this machine (optionally of one suite); returns what happened.

    Everything is read through one snapshot first, then the alert writes follow. With
    ``confirm``, code alerts open only once their step is confirmed (module docstring)."""
    with store.reading() as reader:
        decisions, by_suite, active = _judge(reader, suites, machine_id, policy, suite_filter)
        # the steps (series, last good, first bad) an alert was raised for already, refuted
        # by its A/B or not: a later run that sees the same step again pages nobody twice
        raised = {(a.series, a.baseline_commit, a.first_bad_commit): a for a in reader.list_alerts(
            suite=suite_filter, machine_id=machine_id, limit=1000)} if confirm is not None else {}
    for suite_name, candidates in by_suite.items():
        adjusted = apply_fdr([c.comparison for c in candidates], q=policy.fdr_q)
        candidates = [replace(c, comparison=a) for c, a in zip(candidates, adjusted, strict=True)]
        infra = infrastructure_shift(adjusted)
        if infra is not None and infra.direction == "worse":
            decisions.append(_infrastructure_alert(store, suite_name, machine_id, candidates,
                                                   infra.reason, infra.median_shift_pct, active))
            continue
        to_open: list[_Candidate] = []
        for c in candidates:
            if confirm is not None and active.get(c.key) is None and _serious(c, policy):
                earlier = raised.get((c.key, c.last_good.commit_sha, c.first_bad_commit))
                if earlier is not None:
                    what = ("a lock-step A/B refuted it" if earlier.reason.startswith(REFUTED)
                            else f"it is {earlier.state}")
                    decisions.append(Decision(
                        c.key, AlertAction.KEPT, f"alert {earlier.id} was raised for this step "
                        f"({c.last_good.commit_sha[:12]}..{c.first_bad_commit[:12]}) and {what}",
                        earlier.id, c.comparison))
                else:
                    to_open.append(c)
                continue
            decisions.append(_decide(store, c, policy, active.get(c.key)))
        if to_open and confirm is not None:
            confirmations = confirm(suite_name, to_open)
            decisions += [_open_confirmed(store, c, policy, confirmations[c.key]) for c in to_open]
    return decisions


def _open_confirmed(store: ResultStore, c: _Candidate, policy: AlertPolicy,
                    confirmation: Confirmation) -> Decision:
    """Open the alert with the A/B's numbers, record it refuted, or open it unconfirmed."""
    ab = confirmation.comparison
    if ab is None:  # nothing could be re-measured: page on the stored runs, and say so
        return _open(store, c, c.comparison, f"{c.comparison.reason}; {confirmation.note}")
    confirmed = (ab.alert_worthy and ab.confidence is not None
                 and ab.confidence.rank >= policy.min_confidence.rank)
    if confirmed:
        return _open(store, c, ab, f"confirmed by a {confirmation.note}")
    decision = _open(store, c, c.comparison,
                     f"{REFUTED} {confirmation.note} (the stored runs said: {c.comparison.reason})")
    assert decision.alert_id is not None
    store.transition(decision.alert_id, "FALSE_POSITIVE", actor="perfd",
                     reason=f"the lock-step A/B shows no regression: {ab.status.value}")
    return Decision(c.key, AlertAction.REFUTED, f"{ab.status.value}: {confirmation.note}",
                    decision.alert_id, ab)


def _open(store: ResultStore, c: _Candidate, comp: Comparison, reason: str) -> Decision:
    confidence = comp.confidence.value if comp.confidence else "LOW"
    alert_id = store.open_alert(AlertDraft(
        kind="code", series=c.key, baseline_commit=c.last_good.commit_sha,
        first_bad_commit=c.first_bad_commit, baseline_run_id=c.last_good.run_id,
        last_run_id=c.latest.run_id, change_pct=comp.change_pct, confidence=confidence,
        p_value=comp.p_adjusted if comp.p_adjusted is not None else comp.p_value,
        reason=reason,
    ))
    return Decision(c.key, AlertAction.OPENED, reason, alert_id, comp)


def _judge(reader: Reader, suites: Mapping[str, SuiteConfig], machine_id: str,
           policy: AlertPolicy, suite_filter: str | None,
           ) -> tuple[list[Decision], dict[str, list[_Candidate]], dict[SeriesKey, Alert]]:
    """Each series' newest runs against the stable stretch before them, before FDR (reads
    only). On a ratio series the values of the runs on each side are pooled; measured alone,
    the last baseline run's processes face the newest run's."""
    decisions: list[Decision] = []
    by_suite: dict[str, list[_Candidate]] = {}
    rng = np.random.default_rng(policy.seed)
    active_alerts = reader.active_alerts(suite=suite_filter, machine_id=machine_id)
    references = {r.id: r for r in reader.list_references(suite_filter)}
    links = reader.list_links(suite_filter)
    for key in reader.series_keys(suite=suite_filter, machine_id=machine_id):
        points = reader.series_points(key, exclude_tiers=NOT_HISTORY_TIERS)
        latest = points[-1] if points else None
        active = active_alerts.get(key)
        if active is not None and latest is not None and active.last_run_id == latest.run_id:
            decisions.append(Decision(key, AlertAction.KEPT,
                                      f"alert {active.id}: no new run since", active.id))
            continue
        ratios = ratio_series(reader, key, points, references, links)
        judged = list(ratios.points) if ratios is not None else points
        if len(judged) < 2:
            decisions.append(Decision(key, AlertAction.SKIPPED, "needs at least two runs"))
            continue
        _, direction, threshold = metric_info(suites.get(key.suite), key)
        threshold = policy.threshold_pct or threshold
        step = _step(judged, active, direction, threshold)
        if ratios is not None:
            before = [v for p in step.baseline for v in ratios.pair_ratios[p.run_id]]
            after = [v for p in step.after for v in ratios.pair_ratios[p.run_id]]
        else:
            values = reader.process_values_for_runs(
                [step.baseline[-1].run_id, step.after[-1].run_id], key.benchmark, key.metric)
            before, after = values[step.baseline[-1].run_id], values[step.after[-1].run_id]
        comparison = compare_independent(
            before, after, direction=direction, threshold_pct=threshold, alpha=policy.alpha,
            consecutive_worse_runs=step.worse_runs,
            env_changed=step.baseline[-1].environment_hash != step.after[-1].environment_hash,
            rng=rng,
        )
        if ratios is not None:
            comparison = replace(comparison, reason=f"{ratios.label}: {comparison.reason}")
        by_suite.setdefault(key.suite, []).append(_Candidate(
            key, step.last_good, step.after[-1], step.worse_runs, threshold, comparison,
            step.after[0].commit_sha))
    return decisions, by_suite, active_alerts


def _step(points: list[SeriesPoint], active: Alert | None, direction: Direction,
          threshold: float) -> Step:
    """With an active alert: its baseline (and the stable runs before it) against the newest
    run; otherwise the newest runs' streak against the stable stretch before it."""
    if active is not None:
        at = next((i for i, p in enumerate(points) if p.run_id == active.baseline_run_id), None)
        if at is not None:
            baseline = stable_stretch(points[:at + 1], threshold)
            level = statistics.median(p.median for p in baseline)
            streak = trailing_worse_runs(points[at + 1:], lambda _p: False, level, direction,
                                         threshold)
            return Step(baseline, (points[-1],), streak, points[at])
    return trailing_step(points, direction, threshold)


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
        within = comp.status in (Status.UNCHANGED, Status.IMPROVED) or (
            comp.status is Status.REGRESSED and abs(comp.change_pct) < c.threshold_pct)
        if within:
            # Back only when the run shows it: its worst case (the CI's worse end) is within
            # the threshold, or within half of the alert's change for a large one. A run too
            # noisy to tell is no proof, and a step resolved by noise would never page again.
            bound = max(c.threshold_pct, abs(active.change_pct) / 2.0)
            worst = _worst_change_pct(comp)
            if worst >= bound:
                return Decision(c.key, AlertAction.KEPT,
                                f"not shown back yet: it may still be {worst:+.1f}% worse "
                                f"(CI end; resolves below {bound:.2g}%): {comp.reason}",
                                active.id, comp)
            store.transition(active.id, "RESOLVED", actor="perfd",
                             reason=f"run {c.latest.run_id} at {c.latest.commit_sha[:12]} is back "
                                    f"within {bound:.2g}% (worst case {worst:+.1f}%): {comp.reason}")
            return Decision(c.key, AlertAction.RESOLVED, comp.reason, active.id, comp)
        store.update_alert(active.id, last_commit=c.latest.commit_sha, last_run_id=c.latest.run_id,
                           change_pct=comp.change_pct, confidence=confidence,
                           p_value=comp.p_adjusted if comp.p_adjusted is not None else comp.p_value,
                           reason=comp.reason)
        return Decision(c.key, AlertAction.UPDATED, comp.reason, active.id, comp)
    if not _serious(c, policy):
        return Decision(c.key, AlertAction.QUIET, f"{comp.status.value}: {comp.reason}", None, comp)
    return _open(store, c, comp, comp.reason)


def _worst_change_pct(comp: Comparison) -> float:
    """How much worse the current side may be, in percent: the worse end of the ratio CI
    (up for a lower-is-better metric, down for a higher-is-better one)."""
    low, high = comp.ratio_ci
    return (high - 1.0) * 100.0 if comp.direction is Direction.LOWER else (1.0 - low) * 100.0


def _infrastructure_alert(store: ResultStore, suite: str, machine_id: str,
                          candidates: Sequence[_Candidate], reason: str, shift_pct: float,
                          active_alerts: Mapping[SeriesKey, Alert]) -> Decision:
    key = SeriesKey(suite, "", INFRA_METRIC, machine_id, INFRA_CONFIG)
    latest = max(candidates, key=lambda c: c.latest.started_at)
    active = active_alerts.get(key)
    if active is not None:
        store.update_alert(active.id, last_commit=latest.latest.commit_sha,
                           last_run_id=latest.latest.run_id, change_pct=shift_pct,
                           confidence="HIGH", p_value=None, reason=reason)
        return Decision(key, AlertAction.UPDATED, reason, active.id)
    alert_id = store.open_alert(AlertDraft(
        kind="infrastructure", series=key, baseline_commit=latest.last_good.commit_sha,
        first_bad_commit=latest.latest.commit_sha, baseline_run_id=latest.last_good.run_id,
        last_run_id=latest.latest.run_id, change_pct=shift_pct, confidence="HIGH", p_value=None,
        reason=f"{reason}: check the machine (governor, load, kernel, neighbours) before the code",
    ))
    return Decision(key, AlertAction.OPENED, reason, alert_id)
