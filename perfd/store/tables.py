"""The current database schema as SQLAlchemy Core tables (what queries are written against).

Migrations build the schema step by step (``migrations.py``); a test checks that a database
created by them has exactly these tables, columns and indexes. Change both together.

Types are portable (SQLite, PostgreSQL): timestamps are timezone-aware UTC through
``UtcDateTime``, JSON documents are stored as text written with sorted keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Naming convention so constraints have the same, predictable names on every backend
# (a later migration that drops or alters one needs its name).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Lengths of short identifier columns (PostgreSQL enforces them, SQLite does not).
NAME_LEN = 200  # suite, benchmark, machine id
HASH_LEN = 64
METRIC_LEN = 64


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out; refuses naive datetimes.

    SQLite has no timezone-aware type, so the value is stored as naive UTC there and marked
    UTC again when read; PostgreSQL stores ``timestamp with time zone``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamps must be timezone-aware (UTC), got naive {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# 64-bit ids where a table can outgrow 2**31 rows; on SQLite only INTEGER PRIMARY KEY is an
# auto-incrementing rowid alias, so the variant keeps it that.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(naming_convention=NAMING_CONVENTION)

schema_meta = Table(
    "schema_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint_hash", String(HASH_LEN), nullable=False, unique=True),
    # JSON of EnvFingerprint.hashed_fields() (everything except the load average)
    Column("data", Text, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
)

benchmark_runs = Table(
    "benchmark_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("suite", String(NAME_LEN), nullable=False),
    Column("commit_sha", String(40), nullable=False),
    Column("machine_id", String(NAME_LEN), nullable=False),
    Column("config_hash", String(HASH_LEN), nullable=False),
    Column("build_hash", String(HASH_LEN), nullable=False),
    # NULL until the run has recorded its environment (complete_run / fail_run)
    Column("environment_id", Integer, ForeignKey("environments.id"), nullable=True),
    Column("status", String(16), nullable=False),  # model.RunStatus values
    Column("tier", String(32), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("error", Text, nullable=True),  # cause + stderr tail of a FAILED run
    Column("pid", Integer, nullable=False),  # perfd's pid, to recognise interrupted runs
    Column("hostname", String(255), nullable=False),
    Column("load_avg_1m", Double, nullable=True),
    Column("harness_version", String(64), nullable=True),
    Column("harness_context", Text, nullable=True),  # JSON of the HarnessContext
    Column("output_dir", Text, nullable=True),
    # hypervisor steal on the benchmark CPUs while measuring (schema 5: last, as ALTER adds it)
    Column("steal_fraction", Double, nullable=True),
    # the commit's committer date, which orders history (schema 9; NULL before)
    Column("commit_time", UtcDateTime, nullable=True),
    Index(None, "suite", "machine_id", "commit_sha"),
    Index(None, "status"),
)

processes = Table(
    "processes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("benchmark_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("benchmark", String(NAME_LEN), nullable=False),
    Column("repetition", Integer, nullable=False),
    Column("round_index", Integer, nullable=False),
    Column("cpu", Integer, nullable=True),
    Column("exit_code", Integer, nullable=False),
    Column("duration_s", Double, nullable=False),
    Column("iterations_per_sample", BigInteger, nullable=False),
    Column("n_samples", Integer, nullable=False),
    Column("counters_unavailable_reason", Text, nullable=True),
    UniqueConstraint("run_id", "benchmark", "repetition"),
)

# The big table: one row per iteration sample per metric per process.
measurements = Table(
    "measurements",
    metadata,
    Column("id", BigId, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("benchmark_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "process_id",
        Integer,
        ForeignKey("processes.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("benchmark", String(NAME_LEN), nullable=False),
    Column("metric", String(METRIC_LEN), nullable=False),
    Column("sample_index", Integer, nullable=False),
    Column("value", Double, nullable=False),
    Index(None, "run_id", "benchmark", "metric"),
    # PostgreSQL runs ON DELETE CASCADE from processes as one DELETE per process row, which
    # scans this table without an index. SQLite does not need it, and every index costs
    # ingest speed there, so it is PostgreSQL-only.
    Index(None, "process_id").ddl_if(dialect="postgresql"),
)

# One row per process x stored metric: the median of that process's samples (the
# process-level value analysis works on) and how many samples it had. Written with the
# measurements, so reading history never has to load raw samples.
process_summaries = Table(
    "process_summaries",
    metadata,
    Column(
        "process_id",
        Integer,
        ForeignKey("processes.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("metric", String(METRIC_LEN), primary_key=True),
    Column("median", Double, nullable=False),
    Column("n_samples", Integer, nullable=False),
)

# One row per run x budget x matched benchmark: what the budget saw and decided (replaced
# whole when the run's budgets are evaluated again).
budget_results = Table(
    "budget_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="CASCADE"), nullable=False),
    Column("budget_index", Integer, nullable=False),  # position in budgets.yaml
    Column("suite", String(NAME_LEN), nullable=False),
    Column("benchmark", String(NAME_LEN), nullable=False),
    Column("metric", String(METRIC_LEN), nullable=False),
    Column("statistic", String(16), nullable=False),
    Column("limit_text", String(NAME_LEN), nullable=False),
    Column("action", String(16), nullable=False),  # block | warn
    Column("min_confidence", String(16), nullable=False),
    Column("owner", String(NAME_LEN), nullable=True),
    Column("status", String(16), nullable=False),  # analysis.budgets.BudgetStatus values
    Column("value", Double, nullable=True),
    Column("baseline_run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
           nullable=True),
    Column("baseline_value", Double, nullable=True),
    Column("change_pct", Double, nullable=True),
    Column("confidence", String(16), nullable=True),
    Column("reason", Text, nullable=False),
    Column("evaluated_at", UtcDateTime, nullable=False),
    Index(None, "run_id"),
)

statistics = Table(
    "statistics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("benchmark_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("benchmark", String(NAME_LEN), nullable=False),
    Column("metric", String(METRIC_LEN), nullable=False),
    Column("unit", String(32), nullable=False),
    Column("direction", String(32), nullable=False),  # model.Direction values
    Column("config_hash", String(HASH_LEN), nullable=False),  # the benchmark's, not the run's
    Column("n_processes", Integer, nullable=False),
    Column("n_samples", Integer, nullable=False),
    Column("median", Double, nullable=False),
    Column("mean", Double, nullable=False),
    Column("stddev", Double, nullable=False),
    Column("cv", Double, nullable=False),
    Column("min", Double, nullable=False),
    Column("max", Double, nullable=False),
    Column("p95", Double, nullable=False),
    Column("p99", Double, nullable=False),
    Column("sample_cv", Double, nullable=False),
    Column("mad", Double, nullable=False),
    Column("sample_median", Double, nullable=False),
    Column("sample_mean", Double, nullable=False),
    Column("sample_mad", Double, nullable=False),
    UniqueConstraint("run_id", "benchmark", "metric"),
    # Reading one series' history (store.series_points) without scanning every run.
    Index(None, "benchmark", "metric", "config_hash"),
)

# One row per regression (or infrastructure change) that perfd opened; its lifecycle is in
# alert_events. ``benchmark`` is NULL for an infrastructure alert (a whole machine moved).
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),  # "code" | "infrastructure"
    Column("state", String(16), nullable=False),  # store.alerts.ALERT_STATES
    Column("suite", String(NAME_LEN), nullable=False),
    Column("benchmark", String(NAME_LEN), nullable=True),
    Column("metric", String(METRIC_LEN), nullable=False),
    Column("machine_id", String(NAME_LEN), nullable=False),
    Column("config_hash", String(HASH_LEN), nullable=False),
    Column("baseline_commit", String(40), nullable=False),
    Column("first_bad_commit", String(40), nullable=False),
    Column("last_commit", String(40), nullable=False),
    Column(
        "baseline_run_id",
        Integer,
        ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column(
        "last_run_id",
        Integer,
        ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("change_pct", Double, nullable=False),
    Column("confidence", String(16), nullable=False),  # HIGH | MEDIUM | LOW
    Column("p_value", Double, nullable=True),
    Column("reason", Text, nullable=False),
    Column("runs_seen", Integer, nullable=False),  # evaluated runs that showed it
    Column(
        "parent_alert_id",
        Integer,
        ForeignKey("alerts.id", ondelete="SET NULL"),
        nullable=True,
    ),  # the alert a DOWNSTREAM one follows from
    Column("evidence_path", Text, nullable=True),
    Index(None, "suite", "benchmark", "metric", "machine_id", "config_hash", "state"),
)

# Who moved an alert from which state to which, when and why; the creation is the event
# with from_state NULL.
alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "alert_id",
        Integer,
        ForeignKey("alerts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(NAME_LEN), nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Index(None, "alert_id"),
)

# Every setting of a suite's reference build on a branch, with who/when/why; the current
# reference of (suite, branch) is its newest row, so the history is never overwritten.
suite_references = Table(
    "suite_references",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("suite", String(NAME_LEN), nullable=False),
    Column("branch", String(NAME_LEN), nullable=False),
    Column("rev", String(NAME_LEN), nullable=False),  # as typed, e.g. "v1.2"
    Column("commit_sha", String(40), nullable=False),  # what rev resolved to
    Column("set_at", UtcDateTime, nullable=False),
    Column("set_by", String(NAME_LEN), nullable=False),
    Column("reason", Text, nullable=False),
    Index(None, "suite", "branch"),
)

# One row per run x benchmark x metric measured against a reference build: the median of
# the interleaved pairs' current/reference ratios, its confidence interval and every pair's
# ratio (JSON list, in pair order).
run_ratios = Table(
    "run_ratios",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="CASCADE"), nullable=False),
    Column("reference_run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
           nullable=True),
    Column("reference_id", Integer, ForeignKey("suite_references.id"), nullable=False),
    Column("benchmark", String(NAME_LEN), nullable=False),
    Column("metric", String(METRIC_LEN), nullable=False),
    Column("ratio", Double, nullable=False),  # current / reference
    Column("ci_low", Double, nullable=False),
    Column("ci_high", Double, nullable=False),
    Column("n_pairs", Integer, nullable=False),
    Column("pair_ratios", Text, nullable=False),
    UniqueConstraint("run_id", "benchmark", "metric"),
    Index(None, "run_id"),
)

# One row per reference setting x benchmark x metric measured against the reference it
# replaced, in a long lock-step paired run: factor = new reference / previous reference (the
# median of every pair's new/previous ratio, JSON list in pair order) with its confidence
# interval. A ratio r against the previous reference is r / factor against the new one, so a
# ratio series stays continuous when the reference moves.
reference_links = Table(
    "reference_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("reference_id", Integer, ForeignKey("suite_references.id"), nullable=False),  # new
    Column("previous_reference_id", Integer, ForeignKey("suite_references.id"), nullable=False),
    Column("benchmark", String(NAME_LEN), nullable=False),
    Column("metric", String(METRIC_LEN), nullable=False),
    Column("factor", Double, nullable=False),  # new / previous
    Column("ci_low", Double, nullable=False),
    Column("ci_high", Double, nullable=False),
    Column("n_pairs", Integer, nullable=False),
    Column("pair_ratios", Text, nullable=False),
    # the paired run's two stored sides
    Column("previous_run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
           nullable=True),
    Column("reference_run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
           nullable=True),
    UniqueConstraint("reference_id", "benchmark", "metric"),
    Index(None, "reference_id"),
)

# The daemon's job queue (store/jobs.py): one row per requested measurement of a suite at a
# commit on one machine. A worker claims a job with a lease (lease_owner, lease_expires_at)
# that its heartbeat extends; a lease that expires means the worker died and the job can be
# claimed again. Rows are never deleted by perfd: they are the record of what ran.
JOB_ACTIVE_SQL = "state IN ('QUEUED', 'RUNNING')"  # records.JOB_ACTIVE_STATES

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("suite", String(NAME_LEN), nullable=False),
    Column("commit_sha", String(40), nullable=False),
    Column("branch", String(NAME_LEN), nullable=True),
    Column("tier", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # records.JOB_KINDS
    Column("machine_id", String(NAME_LEN), nullable=False),
    Column("state", String(16), nullable=False),  # records.JOB_STATES
    Column("priority", Integer, nullable=False),  # higher is claimed first
    Column("attempts", Integer, nullable=False),  # claims so far
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(NAME_LEN), nullable=True),  # set while RUNNING
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("heartbeat_at", UtcDateTime, nullable=True),  # the worker's last sign of life
    Column("not_before", UtcDateTime, nullable=True),
    Column("error", Text, nullable=True),  # the last failure
    Column("note", Text, nullable=False),  # why it was finished, cancelled or skipped
    Column("run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
           nullable=True),
    Column("payload", Text, nullable=False),  # JSON object, kind-specific arguments
    Column("requested_by", String(NAME_LEN), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),  # first claim
    Column("finished_at", UtcDateTime, nullable=True),
    # Claiming: a machine's claimable jobs by priority, then age.
    Index(None, "machine_id", "state", "priority", "id"),
    # Listing newest first by state (all machines), and a suite's last job of a tier.
    Index(None, "state", "id"),
    Index(None, "suite", "tier", "machine_id", "created_at"),
    # At most one active job per suite x commit x tier x kind x machine: enqueue is
    # idempotent even when two triggers (poll and webhook) fire at once.
    Index("uq_jobs_active", "suite", "commit_sha", "tier", "kind", "machine_id", unique=True,
          sqlite_where=text(JOB_ACTIVE_SQL), postgresql_where=text(JOB_ACTIVE_SQL)),
)

# One row per `perfd gate` decision (store/gates.py): which commits, the verdict, whether an
# override turned a block into a pass (and its reason and where it came from: a
# Perf-Override trailer or the --override flag), and the perfd-gate/1 JSON document that was
# shown. Never updated: a re-run of the gate is a new row.
gate_verdicts = Table(
    "gate_verdicts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("suite", String(NAME_LEN), nullable=False),
    Column("machine_id", String(NAME_LEN), nullable=False),
    Column("baseline_commit", String(40), nullable=False),
    Column("current_commit", String(40), nullable=False),
    Column("verdict", String(16), nullable=False),  # PASS | BLOCKED | ERROR
    Column("overridden", Boolean, nullable=False),  # a block that an override let pass
    Column("override_reason", Text, nullable=True),  # set whenever an override was given
    Column("override_source", String(16), nullable=True),  # trailer | flag
    Column("summary_json", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "suite", "machine_id", "current_commit"),
)
