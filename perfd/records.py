"""What the store gives back: runs, series and alerts as frozen values.

These live beside ``perfd.model`` rather than inside ``perfd.store`` so that everything
above the store (analysis results, renderers, the daemon's API) can name them without
importing SQL code; ``perfd.store`` re-exports them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from perfd.model import RunStatus, Summary

ALERT_KINDS = ("code", "infrastructure")
ALERT_STATES = ("OPEN", "ACKNOWLEDGED", "RESOLVED", "FALSE_POSITIVE", "INVALID", "DOWNSTREAM")
ACTIVE_STATES = ("OPEN", "ACKNOWLEDGED")
TERMINAL_STATES = ("RESOLVED", "FALSE_POSITIVE", "INVALID", "DOWNSTREAM")
CONFIDENCES = ("HIGH", "MEDIUM", "LOW")

_SHA = re.compile(r"[0-9a-f]{40}")


def check_sha(value: str, what: str) -> None:
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        raise ValueError(f"{what}: must be 40 lowercase hex digits, got {value!r}")


def check_measure(
    owner: str, change_pct: float, confidence: str, p_value: float | None
) -> None:
    if not math.isfinite(change_pct):
        raise ValueError(f"{owner}.change_pct: must be finite, got {change_pct!r}")
    if confidence not in CONFIDENCES:
        raise ValueError(
            f"{owner}.confidence: must be one of {', '.join(CONFIDENCES)}, got {confidence!r}"
        )
    if p_value is not None and not 0.0 <= p_value <= 1.0:
        raise ValueError(f"{owner}.p_value: must be within [0, 1] or None, got {p_value!r}")


def check_pairs(record: RatioRecord | LinkMeasure | LinkRecord, center: str) -> None:
    """Validate a paired measure: ``center`` (its median ratio), ci_low and ci_high finite
    and > 0 in order, every pair ratio too, n_pairs = their count; stores them as a tuple."""
    owner = type(record).__name__
    object.__setattr__(record, "pair_ratios", tuple(float(r) for r in record.pair_ratios))
    for name in (center, "ci_low", "ci_high"):
        value = getattr(record, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{owner}.{name}: must be finite and > 0, got {value!r}")
    if record.ci_low > record.ci_high:
        raise ValueError(
            f"{owner}.ci_low: must be <= ci_high, got {record.ci_low!r} > {record.ci_high!r}"
        )
    bad = [r for r in record.pair_ratios if not (math.isfinite(r) and r > 0)]
    if bad:
        raise ValueError(f"{owner}.pair_ratios: must be finite and > 0, got {bad[0]!r}")
    if record.n_pairs < 1 or record.n_pairs != len(record.pair_ratios):
        raise ValueError(
            f"{owner}.n_pairs: must be >= 1 and equal len(pair_ratios) "
            f"({len(record.pair_ratios)}), got {record.n_pairs}"
        )


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Identity of a series: results are only ever compared within one.

    ``config_hash`` is the benchmark's own (``statistics.config_hash``). ``benchmark`` is ""
    for a machine-wide key (infrastructure alerts); None is accepted and read as "".
    """

    suite: str
    benchmark: str
    metric: str
    machine_id: str
    config_hash: str

    def __post_init__(self) -> None:
        if self.benchmark is None:
            object.__setattr__(self, "benchmark", "")
        for name in ("suite", "metric", "machine_id", "config_hash"):
            if not getattr(self, name):
                raise ValueError(f"SeriesKey.{name}: must not be empty")

    def __str__(self) -> str:
        return (
            f"{self.suite}/{self.benchmark or '*'}/{self.metric} on {self.machine_id} "
            f"(config {self.config_hash})"
        )


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One completed run of a series. ``median`` and ``cv`` are over process-level values
    (statistics.median / statistics.cv); ``environment_hash`` is the run's environment
    fingerprint, None if it was never recorded."""

    run_id: int
    commit_sha: str
    started_at: datetime
    finished_at: datetime
    median: float
    cv: float
    n_processes: int
    environment_hash: str | None


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """What the detector knows when it opens an alert. ``change_pct`` is signed, in percent
    of the baseline (+12.5 = 12.5 % higher); an infrastructure alert has no benchmark."""

    kind: str
    series: SeriesKey
    baseline_commit: str
    first_bad_commit: str
    baseline_run_id: int | None
    last_run_id: int | None
    change_pct: float
    confidence: str
    p_value: float | None
    reason: str

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise ValueError(
                f"AlertDraft.kind: must be one of {', '.join(ALERT_KINDS)}, got {self.kind!r}"
            )
        if self.kind == "code" and not self.series.benchmark:
            raise ValueError("AlertDraft.series.benchmark: a code alert needs a benchmark")
        if self.kind == "infrastructure" and self.series.benchmark:
            raise ValueError(
                "AlertDraft.series.benchmark: an infrastructure alert is machine-wide, "
                f"got benchmark {self.series.benchmark!r}"
            )
        check_sha(self.baseline_commit, "AlertDraft.baseline_commit")
        check_sha(self.first_bad_commit, "AlertDraft.first_bad_commit")
        check_measure("AlertDraft", self.change_pct, self.confidence, self.p_value)
        if not self.reason.strip():
            raise ValueError("AlertDraft.reason: must say why the alert opens")


@dataclass(frozen=True, slots=True)
class Alert:
    """One stored alert. ``last_commit`` / ``last_run_id`` are the latest evaluated run that
    still showed the change, ``runs_seen`` how many evaluated runs did."""

    id: int
    created_at: datetime
    updated_at: datetime
    kind: str
    state: str
    series: SeriesKey
    baseline_commit: str
    first_bad_commit: str
    last_commit: str
    baseline_run_id: int | None
    last_run_id: int | None
    change_pct: float
    confidence: str
    p_value: float | None
    reason: str
    runs_seen: int
    parent_alert_id: int | None
    evidence_path: str | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One step of an alert's lifecycle; ``from_state`` is None for its creation."""

    at: datetime
    actor: str
    from_state: str | None
    to_state: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One row of a run listing. ``n_benchmarks`` counts benchmarks with statistics."""

    id: int
    suite: str
    commit_sha: str
    machine_id: str
    status: RunStatus
    tier: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    n_benchmarks: int


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One stored harness process (without its samples)."""

    benchmark: str
    repetition: int
    round_index: int
    cpu: int | None
    exit_code: int
    duration_s: float
    iterations_per_sample: int
    n_samples: int
    counters_unavailable_reason: str | None


@dataclass(frozen=True, slots=True)
class RunDetail:
    """Everything stored about one run except its iteration samples."""

    info: RunInfo
    config_hash: str
    build_hash: str
    hostname: str
    pid: int
    load_avg_1m: float | None
    harness_version: str | None
    environment: Mapping[str, Any] | None  # EnvFingerprint.hashed_fields(), once known
    harness_context: Mapping[str, Any] | None
    processes: tuple[ProcessInfo, ...]  # ordered by benchmark, repetition
    statistics: tuple[Summary, ...]  # ordered by benchmark, metric
    output_dir: str | None
    steal_fraction: float | None = None  # hypervisor steal on the benchmark CPUs meanwhile


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    """One budget's verdict on one benchmark x metric of a run, as stored."""

    run_id: int
    budget_index: int  # position of the budget in budgets.yaml
    suite: str
    benchmark: str
    metric: str
    statistic: str
    limit_text: str  # the limits as written, e.g. "<= 2.5us, at most +5%"
    action: str  # block | warn
    min_confidence: str
    owner: str | None
    status: str  # PASS | FAIL | WARN | NO_DATA
    value: float | None
    baseline_run_id: int | None
    baseline_value: float | None
    change_pct: float | None
    confidence: str | None
    reason: str
    evaluated_at: datetime | None = None

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


@dataclass(frozen=True, slots=True)
class ReferenceRecord:
    """One setting of a suite's reference build on a branch: what was typed (``rev``), the
    commit it resolved to, who set it, when and why. The newest row is the current one."""

    id: int
    suite: str
    branch: str
    rev: str  # as the user typed it, e.g. "v1.2"
    commit_sha: str
    set_at: datetime
    set_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class RatioRecord:
    """A run's current/reference ratio of one benchmark x metric, from interleaved pairs:
    ``ratio`` is the median of ``pair_ratios`` (one per pair, in pair order) and
    ``ci_low``/``ci_high`` its confidence interval. ``reference_run_id`` is the run of the
    reference build's side (None once that run is deleted)."""

    run_id: int
    reference_run_id: int | None
    reference_id: int
    benchmark: str
    metric: str
    ratio: float
    ci_low: float
    ci_high: float
    n_pairs: int
    pair_ratios: tuple[float, ...]

    def __post_init__(self) -> None:
        check_pairs(self, "ratio")


@dataclass(frozen=True, slots=True)
class LinkMeasure:
    """How a newly set reference build measured against the previous one, for one
    benchmark x metric, in a long lock-step paired run: ``factor`` = new reference /
    previous reference (the median of ``pair_ratios``, each pair's new/previous ratio in
    pair order), ``ci_low``/``ci_high`` its confidence interval. A ratio r measured against
    the previous reference is r / factor against the new one. ``previous_run_id`` and
    ``reference_run_id`` are the paired run's stored sides (previous, new; None once
    deleted)."""

    benchmark: str
    metric: str
    factor: float
    ci_low: float
    ci_high: float
    n_pairs: int
    pair_ratios: tuple[float, ...]
    previous_run_id: int | None
    reference_run_id: int | None

    def __post_init__(self) -> None:
        check_pairs(self, "factor")


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """A stored link from reference ``previous_reference_id`` to the newer ``reference_id``
    (set with it), for one benchmark x metric: ``factor`` = new reference / previous
    reference, so a ratio r against the previous reference is r / factor against the new
    one. The other fields are as in ``LinkMeasure``."""

    id: int
    reference_id: int
    previous_reference_id: int
    benchmark: str
    metric: str
    factor: float
    ci_low: float
    ci_high: float
    n_pairs: int
    pair_ratios: tuple[float, ...]
    previous_run_id: int | None
    reference_run_id: int | None

    def __post_init__(self) -> None:
        check_pairs(self, "factor")


# ----------------------------------------------------------------------------- jobs

# rerun: a run again after CONTENDED; bisect: the commits of a confirmed alert's range
JOB_KINDS = ("run", "confirm", "evidence", "rerun", "bisect")
JOB_STATES = ("QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "SKIPPED")
JOB_ACTIVE_STATES = ("QUEUED", "RUNNING")
# Claimed first: a confirmation before routine work (it decides whether someone is paged).
JOB_PRIORITY = {"confirm": 20, "evidence": 10, "bisect": 10, "rerun": 5, "run": 0}


@dataclass(frozen=True, slots=True)
class JobDraft:
    """A job to enqueue: measure ``suite`` at ``commit_sha`` with ``tier``'s sizes on
    ``machine_id``. ``payload`` carries kind-specific arguments (JSON-able)."""

    suite: str
    commit_sha: str
    tier: str
    kind: str
    machine_id: str
    branch: str | None = None
    priority: int | None = None  # None: JOB_PRIORITY[kind]
    max_attempts: int = 3
    not_before: datetime | None = None  # not claimed before this time
    payload: Mapping[str, Any] | None = None
    requested_by: str = "perfd"  # who or what asked: "poll", "webhook", "schedule", a user

    def __post_init__(self) -> None:
        check_sha(self.commit_sha, "JobDraft.commit_sha")
        if self.kind not in JOB_KINDS:
            raise ValueError(f"JobDraft.kind: must be one of {', '.join(JOB_KINDS)}, "
                             f"got {self.kind!r}")
        if self.max_attempts < 1:
            raise ValueError(f"JobDraft.max_attempts: must be >= 1, got {self.max_attempts}")


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job. ``lease_owner``/``lease_expires_at``: the worker that claimed it and
    until when (extended by its heartbeat); ``attempts`` counts claims; ``error`` is the last
    failure; ``run_id`` the run a finished run job stored."""

    id: int
    suite: str
    commit_sha: str
    branch: str | None
    tier: str
    kind: str
    machine_id: str
    state: str
    priority: int
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    not_before: datetime | None
    error: str | None
    note: str
    run_id: int | None
    payload: Mapping[str, Any]
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None = None  # the worker's last claim or heartbeat


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The queue of one machine (or all) at one moment, for metrics and /readyz."""

    by_state: Mapping[str, int]  # every JOB_STATES key, 0 when none
    oldest_queued_age_s: float | None  # the longest-waiting QUEUED job, None when none
    running: int  # RUNNING jobs whose lease has not expired
    expired_leases: int  # RUNNING jobs whose lease has expired (a worker died)
    # attempts made, and attempts after a job's first (retries), by job kind (every kind)
    attempts_by_kind: Mapping[str, int]
    retries_by_kind: Mapping[str, int]
