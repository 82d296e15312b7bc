"""Jobs: what the daemon measures, queued in perfd's own tables and run one at a time.

Every trigger (a poll that found new commits, a signed push webhook, a cron tier, `perfd
enqueue`, the API) enqueues through :func:`enqueue`; the daemon's one worker per machine
claims jobs and runs each through :func:`execute`, which calls the same flows as the CLI:

- ``run`` (and ``rerun``, a run measured again after it came out CONTENDED): `perfd run` at
  the job's commit with its tier's sizes (reference-paired when the suite has a reference),
  budgets included. A completed run queues a ``confirm`` job; a contended one a ``rerun``
  ``RERUN_DELAY_S`` later, at most ``max_attempts`` times in a row.
- ``confirm``: `perfd alert` for the suite, confirmation included: every suspected step is
  re-measured in lock-step pairs before an alert opens. The alerts it opens queue one
  ``evidence`` job. Confirmations outrank routine runs (``JOB_PRIORITY``).
- ``evidence``: profiles an opened alert's two commits (`perfd evidence` for an alert).
- ``bisect`` (with the daemon file's ``jobs.bisect``, the default): a confirmed alert whose
  range (last good..first bad commit) spans commits nobody measured is bisected (`perfd
  bisect --alert`, at most ``jobs.bisect_max_steps`` commits) and the first bad commit, or
  the smallest range proven, is recorded on it. One job per first bad commit; its payload
  lists the alerts (id, benchmark, metric), and each benchmark among them is bisected once.

A burst of pushes (several new commits of one suite x branch at once): with the daemon
file's ``jobs.burst: newest`` (the default) only the newest commit is measured; the queued
older run jobs become SKIPPED, kept as the unmeasured commits a bisection looks at.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from perfd.context import Services
from perfd.errors import PerfdError, UsageError
from perfd.flows.alerts import EvaluateRequest, evaluate_alerts
from perfd.flows.bisect import bisect, record_on_alert, request_for_alert
from perfd.flows.evidence import AlertEvidenceRequest, alert_evidence
from perfd.flows.run import RunRequest, run
from perfd.model import AlertAction, RunTier
from perfd.records import JOB_KINDS, Alert, Job, JobDraft

# A run that came out CONTENDED is measured again this much later (a neighbour may be gone).
RERUN_DELAY_S = 120.0
# What the API and webhooks accept as a commit: hex only, so nothing else reaches git.
COMMIT_ID = re.compile(r"^[0-9a-f]{7,40}$")
DAEMON_TIERS = (RunTier.COMMIT.value, RunTier.NIGHTLY.value, RunTier.WEEKLY.value)
# How the reason of an alert its lock-step A/B confirmed begins (flows.alerts._open_confirmed).
CONFIRMED = "confirmed by a "


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    suite: str
    commit: str  # a commit id, branch or tag (the API and webhooks pass commit ids only)
    tier: str = RunTier.COMMIT.value
    kind: str = "run"
    branch: str | None = None  # the tracked branch the commit is on (default: the suite's first)
    requested_by: str = "perfd"
    payload: dict[str, object] | None = None

    def __post_init__(self) -> None:
        if self.tier not in DAEMON_TIERS:
            raise UsageError(f"tier {self.tier!r}: a job runs a daemon tier: "
                             f"{', '.join(DAEMON_TIERS)}")
        if self.kind not in JOB_KINDS:
            raise UsageError(f"kind {self.kind!r}: one of {', '.join(JOB_KINDS)}")


@dataclass(frozen=True, slots=True)
class Enqueued:
    job: Job
    created: bool  # False: the same job was already queued or running
    skipped: tuple[int, ...] = ()  # older queued jobs the burst policy skipped


def check_commit_id(value: object) -> str:
    """``value`` if it is a hex commit id (7-40 digits); UsageError otherwise (HTTP 400)."""
    if not isinstance(value, str) or not COMMIT_ID.match(value):
        raise UsageError(f"not a commit id: {str(value)[:80]!r} (7 to 40 lowercase hex digits)")
    return value


def enqueue(services: Services, request: EnqueueRequest) -> Enqueued:
    """Resolve the commit in the suite's repository and queue the job for this machine
    (idempotent: the same queued or running job is returned). Raises ConfigError (unknown
    suite, or a tier it does not run in), RepositoryError, StorageError."""
    suite = services.suite(request.suite)
    if request.tier not in suite.tier_names():
        raise UsageError(f"suite {suite.name} does not run in tier {request.tier} (its tiers: "
                         f"{', '.join(suite.tier_names()) or 'none'})")
    sha = services.repository(suite).resolve(request.commit)
    branch = request.branch or suite.branches[0]
    jobs = services.config.daemon.jobs
    job, created = services.store.enqueue(JobDraft(
        suite=suite.name, commit_sha=sha, tier=request.tier, kind=request.kind,
        machine_id=services.machine_id, branch=branch, max_attempts=jobs.max_attempts,
        payload=request.payload, requested_by=request.requested_by))
    skipped: list[int] = []
    if created and request.kind == "run" and jobs.burst == "newest":
        skipped = services.store.skip_queued(
            suite.name, branch, request.tier, services.machine_id, keep_job_id=job.id,
            reason=f"superseded by job {job.id} at {sha[:12]}; kept as unmeasured for bisection")
    return Enqueued(job, created, tuple(skipped))


@dataclass(frozen=True, slots=True)
class Executed:
    """What a job did: its run (if it stored one), a note, and the jobs it queues next."""

    note: str
    run_id: int | None = None
    follow_ups: tuple[JobDraft, ...] = ()


def execute(services: Services, job: Job) -> Executed:
    """Run one claimed job through the flows (module docstring). Raises what those flows
    raise (PerfdError subclasses); the worker records it on the job."""
    if job.kind in ("run", "rerun"):
        return _run(services, job)
    if job.kind == "confirm":
        return _confirm(services, job)
    if job.kind == "bisect":
        return _bisect(services, job)
    return _evidence(services, job)


def _run(services: Services, job: Job) -> Executed:
    report = run(services, RunRequest(suite=job.suite, commit=job.commit_sha,
                                      tier=RunTier(job.tier), retries=0, branch=job.branch))
    outcome = report.outcome
    if outcome.contended:
        reruns = int(str(job.payload.get("reruns", 0))) + 1
        if reruns > job.max_attempts:
            return Executed(f"run {outcome.run_id} CONTENDED ({outcome.contended_reason}), "
                            f"still after {reruns - 1} re-run(s): not measured again",
                            outcome.run_id)
        again = replace(_follow_up(job, "rerun", {"reruns": reruns}),
                        not_before=services.clock() + timedelta(seconds=RERUN_DELAY_S))
        return Executed(f"run {outcome.run_id} CONTENDED ({outcome.contended_reason}); measured "
                        f"again in {RERUN_DELAY_S:g} s", outcome.run_id, (again,))
    failed = len(report.budgets.failed) if report.budgets else 0
    note = f"run {outcome.run_id} completed" + (f"; {failed} budget(s) failed" if failed else "")
    return Executed(note, outcome.run_id, (_follow_up(job, "confirm"),))


def _confirm(services: Services, job: Job) -> Executed:
    evaluation = evaluate_alerts(services, EvaluateRequest(suite=job.suite, evidence=False))
    opened = [d.alert_id for d in evaluation.decisions
              if d.action is AlertAction.OPENED and d.alert_id is not None and d.series.benchmark]
    refuted = sum(d.action is AlertAction.REFUTED for d in evaluation.decisions)
    follow = [_follow_up(job, "evidence", {"alert_ids": opened})] if opened else []
    bisects = _bisect_follow_ups(services, job, opened)
    note = (f"{len(opened)} alert(s) opened, {refuted} suspected step(s) refuted; "
            f"{evaluation.open_alerts} open")
    if bisects:
        note += f"; {len(bisects)} bisection(s) queued"
    return Executed(note, None, tuple(follow + bisects))


def _bisect_follow_ups(services: Services, job: Job, alert_ids: Sequence[int]) -> list[JobDraft]:
    """One bisect job per first bad commit of the confirmed alerts whose range spans
    unmeasured commits (none when the daemon file's jobs.bisect is off)."""
    if not services.config.daemon.jobs.bisect:
        return []
    by_first_bad: dict[str, list[dict[str, object]]] = {}
    for alert_id in alert_ids:
        alert, _ = services.store.get_alert(alert_id)
        if alert.reason.startswith(CONFIRMED) and _unmeasured_between(services, alert):
            by_first_bad.setdefault(alert.first_bad_commit, []).append(
                {"alert_id": alert.id, "benchmark": alert.series.benchmark,
                 "metric": alert.series.metric})
    return [replace(_follow_up(job, "bisect", {"alerts": entries}), commit_sha=first_bad)
            for first_bad, entries in by_first_bad.items()]


def _unmeasured_between(services: Services, alert: Alert) -> bool:
    """More than one commit after the alert's last good commit up to its first bad one."""
    try:
        repo = services.repository(services.suite(alert.series.suite))
        return len(repo.commits_between(alert.baseline_commit, alert.first_bad_commit)) > 1
    except PerfdError:
        return False


def _bisect(services: Services, job: Job) -> Executed:
    """Bisect each benchmark of the job's alerts once (its first alert's metric) and record
    the result on every alert of that benchmark and range that is still active."""
    groups: dict[tuple[str, str, str], list[Alert]] = {}
    closed: list[str] = []
    for entry in _bisect_entries(job):
        alert, _ = services.store.get_alert(entry)
        if not alert.active:
            closed.append(f"alert {alert.id} is {alert.state}")
            continue
        key = (alert.series.benchmark, alert.baseline_commit, alert.first_bad_commit)
        groups.setdefault(key, []).append(alert)
    notes = [f"{', '.join(closed)}: not bisected"] if closed else []
    max_steps = services.config.daemon.jobs.bisect_max_steps
    for (benchmark, _good, _bad), alerts in groups.items():
        first, *others = alerts
        result = bisect(services, replace(request_for_alert(services, first.id),
                                          max_steps=max_steps, seed=job.id))
        for other in others:
            record_on_alert(services, result, other.id)
        ids = ", ".join(str(a.id) for a in alerts)
        notes.append(f"{benchmark} (alert {ids}): {result.summary}")
    return Executed("; ".join(notes) or "nothing to bisect")


def _bisect_entries(job: Job) -> list[int]:
    """The alert ids of a bisect job's payload. Raises UsageError for a malformed payload."""
    entries = job.payload.get("alerts")
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and isinstance(e.get("alert_id"), int) for e in entries):
        raise UsageError(f"bisect job {job.id} has no alerts (a list of {{alert_id, benchmark, "
                         "metric}})")
    return [int(e["alert_id"]) for e in entries]


def _evidence(services: Services, job: Job) -> Executed:
    alert_ids = job.payload.get("alert_ids")
    if not isinstance(alert_ids, list) or not all(isinstance(i, int) for i in alert_ids):
        raise UsageError(f"evidence job {job.id} has no alert_ids")
    where = [str(alert_evidence(services, AlertEvidenceRequest(i)).directory) for i in alert_ids]
    return Executed(f"evidence of alert(s) {', '.join(map(str, alert_ids))} in {', '.join(where)}")


def _follow_up(job: Job, kind: str, payload: dict[str, object] | None = None) -> JobDraft:
    return JobDraft(suite=job.suite, commit_sha=job.commit_sha, tier=job.tier, kind=kind,
                    machine_id=job.machine_id, branch=job.branch, max_attempts=job.max_attempts,
                    payload=payload, requested_by=f"job {job.id}")


def list_jobs(services: Services, *, states: Sequence[str] | None = None,
              suite: str | None = None, limit: int = 50, before_id: int | None = None,
              all_machines: bool = False) -> list[Job]:
    """Jobs newest first (this machine's unless ``all_machines``)."""
    with services.store.reading() as r:
        return r.list_jobs(states=states, suite=suite, limit=limit, before_id=before_id,
                           machine_id=None if all_machines else services.machine_id)


def show_job(services: Services, job_id: int) -> Job:
    """One job. Raises NotFoundError."""
    with services.store.reading() as r:
        return r.get_job(job_id)


def cancel_job(services: Services, job_id: int, actor: str, reason: str) -> Job:
    """Cancel a queued or running job (a running one stops at its next heartbeat). Raises
    NotFoundError, ConflictError (already finished)."""
    return services.store.cancel_job(job_id, actor, reason or "cancelled")
