"""Hand-written, ordered schema migrations and the schema version stored in ``schema_meta``.

Each migration is a function of a ``Connection`` that runs inside its own transaction,
together with the update of ``schema_meta.schema_version``, so a database is always at one
well-defined version. A migration describes the schema *as of its version*: it never reads
``tables.py`` (which is the current schema and keeps changing), so upgrading an empty
database through every step always gives the same result.

To add a migration: append ``(N, "what it does", _vN)`` to ``MIGRATIONS``, bump
``SCHEMA_VERSION`` with a history line, and change ``tables.py`` to match (a test compares
the two).
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import median

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    inspect,
    select,
    text,
    update,
)

from perfd.errors import StorageError
from perfd.store.engine import mask_url, write_transaction
from perfd.store.tables import NAMING_CONVENTION, BigId, UtcDateTime, schema_meta

# Schema versions, newest last:
#   1 - environments, benchmark_runs, processes, measurements, statistics.
#   2 - alerts and alert_events (alert lifecycle with who/when/why); series index on statistics.
#   3 - process_summaries (median and sample count per process x metric), backfilled.
#   4 - budget_results (each run's budgets: value, limit, verdict, confidence, why).
#   5 - benchmark_runs.steal_fraction (hypervisor steal on the benchmark CPUs during the run).
#   6 - suite_references (reference build per suite x branch, who/why) and run_ratios.
#   7 - reference_links (new/previous factor per benchmark x metric when a reference moves).
#   8 - jobs (the daemon's queue: claimed with a lease and heartbeat, one active per key).
#   9 - benchmark_runs.commit_time (committer date: history is in commit order, so a commit
#       re-measured later, after contention, keeps its place).
#  10 - gate_verdicts (each `perfd gate` decision: commits, verdict, override and its source,
#       the perfd-gate/1 document).
SCHEMA_VERSION = 10

VERSION_KEY = "schema_version"


def _v1(conn: Connection) -> None:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    Table(
        "schema_meta",
        md,
        Column("key", String(64), primary_key=True),
        Column("value", String(200), nullable=False),
    )
    Table(
        "environments",
        md,
        Column("id", Integer, primary_key=True),
        Column("fingerprint_hash", String(64), nullable=False, unique=True),
        Column("data", Text, nullable=False),
        Column("first_seen_at", UtcDateTime, nullable=False),
    )
    Table(
        "benchmark_runs",
        md,
        Column("id", Integer, primary_key=True),
        Column("suite", String(200), nullable=False),
        Column("commit_sha", String(40), nullable=False),
        Column("machine_id", String(200), nullable=False),
        Column("config_hash", String(64), nullable=False),
        Column("build_hash", String(64), nullable=False),
        Column("environment_id", Integer, ForeignKey("environments.id"), nullable=True),
        Column("status", String(16), nullable=False),
        Column("tier", String(32), nullable=False),
        Column("started_at", UtcDateTime, nullable=False),
        Column("finished_at", UtcDateTime, nullable=True),
        Column("error", Text, nullable=True),
        Column("pid", Integer, nullable=False),
        Column("hostname", String(255), nullable=False),
        Column("load_avg_1m", Double, nullable=True),
        Column("harness_version", String(64), nullable=True),
        Column("harness_context", Text, nullable=True),
        Column("output_dir", Text, nullable=True),
        Index(None, "suite", "machine_id", "commit_sha"),
        Index(None, "status"),
    )
    Table(
        "processes",
        md,
        Column("id", Integer, primary_key=True),
        Column(
            "run_id",
            Integer,
            ForeignKey("benchmark_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("benchmark", String(200), nullable=False),
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
    Table(
        "measurements",
        md,
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
        Column("benchmark", String(200), nullable=False),
        Column("metric", String(64), nullable=False),
        Column("sample_index", Integer, nullable=False),
        Column("value", Double, nullable=False),
        Index(None, "run_id", "benchmark", "metric"),
        Index(None, "process_id").ddl_if(dialect="postgresql"),
    )
    Table(
        "statistics",
        md,
        Column("id", Integer, primary_key=True),
        Column(
            "run_id",
            Integer,
            ForeignKey("benchmark_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("benchmark", String(200), nullable=False),
        Column("metric", String(64), nullable=False),
        Column("unit", String(32), nullable=False),
        Column("direction", String(32), nullable=False),
        Column("config_hash", String(64), nullable=False),
        *(
            Column(name, Integer, nullable=False)
            for name in ("n_processes", "n_samples")
        ),
        *(
            Column(name, Double, nullable=False)
            for name in (
                "median", "mean", "stddev", "cv", "min", "max", "p95", "p99", "sample_cv",
                "mad", "sample_median", "sample_mean", "sample_mad",
            )
        ),
        UniqueConstraint("run_id", "benchmark", "metric"),
    )
    md.create_all(conn)


def _v2(conn: Connection) -> None:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    # Only the key of benchmark_runs, so the foreign keys resolve; the table exists (v1).
    Table("benchmark_runs", md, Column("id", Integer, primary_key=True))
    alerts = Table(
        "alerts",
        md,
        Column("id", Integer, primary_key=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("state", String(16), nullable=False),
        Column("suite", String(200), nullable=False),
        Column("benchmark", String(200), nullable=True),
        Column("metric", String(64), nullable=False),
        Column("machine_id", String(200), nullable=False),
        Column("config_hash", String(64), nullable=False),
        Column("baseline_commit", String(40), nullable=False),
        Column("first_bad_commit", String(40), nullable=False),
        Column("last_commit", String(40), nullable=False),
        *(
            Column(name, Integer, ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
                   nullable=True)
            for name in ("baseline_run_id", "last_run_id")
        ),
        Column("change_pct", Double, nullable=False),
        Column("confidence", String(16), nullable=False),
        Column("p_value", Double, nullable=True),
        Column("reason", Text, nullable=False),
        Column("runs_seen", Integer, nullable=False),
        Column(
            "parent_alert_id",
            Integer,
            ForeignKey("alerts.id", ondelete="SET NULL"),
            nullable=True,
        ),
        Column("evidence_path", Text, nullable=True),
        Index(None, "suite", "benchmark", "metric", "machine_id", "config_hash", "state"),
    )
    alert_events = Table(
        "alert_events",
        md,
        Column("id", Integer, primary_key=True),
        Column("alert_id", Integer, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        Column("at", UtcDateTime, nullable=False),
        Column("actor", String(200), nullable=False),
        Column("from_state", String(16), nullable=True),
        Column("to_state", String(16), nullable=False),
        Column("reason", Text, nullable=False),
        Index(None, "alert_id"),
    )
    md.create_all(conn, tables=[alerts, alert_events])
    statistics = Table(
        "statistics",
        md,
        Column("benchmark", String(200)),
        Column("metric", String(64)),
        Column("config_hash", String(64)),
    )
    Index(None, statistics.c.benchmark, statistics.c.metric, statistics.c.config_hash).create(conn)


def _v3(conn: Connection) -> None:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    processes = Table(
        "processes", md, Column("id", Integer, primary_key=True), Column("run_id", Integer)
    )
    summaries = Table(
        "process_summaries",
        md,
        Column(
            "process_id",
            Integer,
            ForeignKey("processes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("metric", String(64), primary_key=True),
        Column("median", Double, nullable=False),
        Column("n_samples", Integer, nullable=False),
    )
    md.create_all(conn, tables=[summaries])
    measurements = Table(
        "measurements",
        md,
        Column("run_id", Integer),
        Column("process_id", Integer),
        Column("metric", String(64)),
        Column("value", Double),
    )
    m = measurements.c
    run_ids = conn.execute(
        select(processes.c.run_id).distinct().order_by(processes.c.run_id)
    ).scalars().all()
    # One run at a time: memory stays bounded by the largest run (which complete_run held in
    # memory once already), however big the database is. Sample order does not matter to a
    # median, so the query needs no ORDER BY.
    for run_id in run_ids:
        samples: dict[tuple[int, str], list[float]] = {}
        query = select(m.process_id, m.metric, m.value).where(m.run_id == run_id)
        for process_id, metric, value in conn.execute(query):
            samples.setdefault((process_id, metric), []).append(value)
        if samples:
            conn.execute(
                insert(summaries),
                [
                    {"process_id": process_id, "metric": metric, "median": median(values),
                     "n_samples": len(values)}
                    for (process_id, metric), values in samples.items()
                ],
            )


def _v4(conn: Connection) -> None:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    Table("benchmark_runs", md, Column("id", Integer, primary_key=True))
    results = Table(
        "budget_results",
        md,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="CASCADE"),
               nullable=False),
        Column("budget_index", Integer, nullable=False),
        Column("suite", String(200), nullable=False),
        Column("benchmark", String(200), nullable=False),
        Column("metric", String(64), nullable=False),
        Column("statistic", String(16), nullable=False),
        Column("limit_text", String(200), nullable=False),
        Column("action", String(16), nullable=False),
        Column("min_confidence", String(16), nullable=False),
        Column("owner", String(200), nullable=True),
        Column("status", String(16), nullable=False),
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
    md.create_all(conn, tables=[results])


def _v5(conn: Connection) -> None:
    # A nullable column: every earlier run simply has no steal figure.
    double = Double().compile(dialect=conn.dialect)  # DOUBLE on SQLite, DOUBLE PRECISION on PG
    conn.execute(text(f"ALTER TABLE benchmark_runs ADD COLUMN steal_fraction {double}"))


def _v6(conn: Connection) -> None:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    Table("benchmark_runs", md, Column("id", Integer, primary_key=True))
    references = Table(
        "suite_references",
        md,
        Column("id", Integer, primary_key=True),
        Column("suite", String(200), nullable=False),
        Column("branch", String(200), nullable=False),
        Column("rev", String(200), nullable=False),
        Column("commit_sha", String(40), nullable=False),
        Column("set_at", UtcDateTime, nullable=False),
        Column("set_by", String(200), nullable=False),
        Column("reason", Text, nullable=False),
        Index(None, "suite", "branch"),
    )
    ratios = Table(
        "run_ratios",
        md,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="CASCADE"),
               nullable=False),
        Column("reference_run_id", Integer,
               ForeignKey("benchmark_runs.id", ondelete="SET NULL"), nullable=True),
        Column("reference_id", Integer, ForeignKey("suite_references.id"), nullable=False),
        Column("benchmark", String(200), nullable=False),
        Column("metric", String(64), nullable=False),
        Column("ratio", Double, nullable=False),
        Column("ci_low", Double, nullable=False),
        Column("ci_high", Double, nullable=False),
        Column("n_pairs", Integer, nullable=False),
        Column("pair_ratios", Text, nullable=False),
        UniqueConstraint("run_id", "benchmark", "metric"),
        Index(None, "run_id"),
    )
    md.create_all(conn, tables=[references, ratios])


def _v7(conn: Connection) -> None:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    Table("benchmark_runs", md, Column("id", Integer, primary_key=True))
    Table("suite_references", md, Column("id", Integer, primary_key=True))
    links = Table(
        "reference_links",
        md,
        Column("id", Integer, primary_key=True),
        Column("reference_id", Integer, ForeignKey("suite_references.id"), nullable=False),
        Column("previous_reference_id", Integer, ForeignKey("suite_references.id"),
               nullable=False),
        Column("benchmark", String(200), nullable=False),
        Column("metric", String(64), nullable=False),
        Column("factor", Double, nullable=False),
        Column("ci_low", Double, nullable=False),
        Column("ci_high", Double, nullable=False),
        Column("n_pairs", Integer, nullable=False),
        Column("pair_ratios", Text, nullable=False),
        *(
            Column(name, Integer, ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
                   nullable=True)
            for name in ("previous_run_id", "reference_run_id")
        ),
        UniqueConstraint("reference_id", "benchmark", "metric"),
        Index(None, "reference_id"),
    )
    md.create_all(conn, tables=[links])


def _v8(conn: Connection) -> None:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    Table("benchmark_runs", md, Column("id", Integer, primary_key=True))
    active = text("state IN ('QUEUED', 'RUNNING')")
    jobs = Table(
        "jobs",
        md,
        Column("id", Integer, primary_key=True),
        Column("suite", String(200), nullable=False),
        Column("commit_sha", String(40), nullable=False),
        Column("branch", String(200), nullable=True),
        Column("tier", String(32), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("machine_id", String(200), nullable=False),
        Column("state", String(16), nullable=False),
        *(Column(name, Integer, nullable=False)
          for name in ("priority", "attempts", "max_attempts")),
        Column("lease_owner", String(200), nullable=True),
        *(Column(name, UtcDateTime, nullable=True)
          for name in ("lease_expires_at", "heartbeat_at", "not_before")),
        Column("error", Text, nullable=True),
        Column("note", Text, nullable=False),
        Column("run_id", Integer, ForeignKey("benchmark_runs.id", ondelete="SET NULL"),
               nullable=True),
        Column("payload", Text, nullable=False),
        Column("requested_by", String(200), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        *(Column(name, UtcDateTime, nullable=True) for name in ("started_at", "finished_at")),
        Index(None, "machine_id", "state", "priority", "id"),
        Index(None, "state", "id"),
        Index(None, "suite", "tier", "machine_id", "created_at"),
        Index("uq_jobs_active", "suite", "commit_sha", "tier", "kind", "machine_id",
              unique=True, sqlite_where=active, postgresql_where=active),
    )
    md.create_all(conn, tables=[jobs])


def _v9(conn: Connection) -> None:
    # Nullable: earlier runs have no commit time and keep their start-time order.
    stamp = UtcDateTime().compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE benchmark_runs ADD COLUMN commit_time {stamp}"))


def _v10(conn: Connection) -> None:
    md = MetaData(naming_convention=NAMING_CONVENTION)
    verdicts = Table(
        "gate_verdicts",
        md,
        Column("id", Integer, primary_key=True),
        Column("suite", String(200), nullable=False),
        Column("machine_id", String(200), nullable=False),
        Column("baseline_commit", String(40), nullable=False),
        Column("current_commit", String(40), nullable=False),
        Column("verdict", String(16), nullable=False),
        Column("overridden", Boolean, nullable=False),
        Column("override_reason", Text, nullable=True),
        Column("override_source", String(16), nullable=True),
        Column("summary_json", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Index(None, "suite", "machine_id", "current_commit"),
    )
    md.create_all(conn, tables=[verdicts])


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "create environments, benchmark_runs, processes, measurements, statistics", _v1),
    (2, "create alerts and alert_events; index statistics by series", _v2),
    (3, "create process_summaries and fill it from measurements", _v3),
    (4, "create budget_results", _v4),
    (5, "add benchmark_runs.steal_fraction", _v5),
    (6, "create suite_references and run_ratios", _v6),
    (7, "create reference_links", _v7),
    (8, "create jobs", _v8),
    (9, "add benchmark_runs.commit_time", _v9),
    (10, "create gate_verdicts", _v10),
]


def read_version(conn: Connection) -> int | None:
    """Schema version of the database behind ``conn``; None when it has no schema_meta."""
    if not inspect(conn).has_table(schema_meta.name):
        return None
    value = conn.execute(
        select(schema_meta.c.value).where(schema_meta.c.key == VERSION_KEY)
    ).scalar_one_or_none()
    if value is None or not value.isdigit():
        raise StorageError(
            f"schema_meta holds no valid {VERSION_KEY} (got {value!r}): "
            "this is not a perfd database, or a damaged one"
        )
    return int(value)


def current_version(engine: Engine) -> int | None:
    """Schema version of the database; None for an empty one (no perfd tables yet)."""
    with engine.connect() as conn:
        return read_version(conn)


def foreign_tables(conn: Connection) -> list[str]:
    """Tables of a database without schema_meta: non-empty means "not a perfd database"."""
    return sorted(inspect(conn).get_table_names())


def not_a_perfd_database(tables: list[str]) -> StorageError:
    """The error for a database that holds ``tables`` but no perfd schema_meta."""
    shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
    return StorageError(
        f"database holds tables but no perfd schema ({shown}): it is not a perfd database; "
        "use an empty one"
    )


def _set_version(conn: Connection, version: int) -> None:
    changed = conn.execute(
        update(schema_meta).where(schema_meta.c.key == VERSION_KEY).values(value=str(version))
    ).rowcount
    if not changed:
        conn.execute(schema_meta.insert().values(key=VERSION_KEY, value=str(version)))


def require_current(engine: Engine, *, auto_upgrade: bool) -> None:
    """Check that the database is at SCHEMA_VERSION, creating the schema in an empty one
    when ``auto_upgrade``. Raises StorageError saying what to run otherwise."""
    url = mask_url(engine.url)
    with engine.connect() as conn:
        version = read_version(conn)
        tables = foreign_tables(conn) if version is None else []
    if version is None:
        if tables:
            raise not_a_perfd_database(tables)
        if not auto_upgrade:
            raise StorageError(f"database {url} has no perfd schema yet: run `perfd db upgrade`")
        upgrade(engine)
        return
    if version < SCHEMA_VERSION:
        raise StorageError(
            f"database at schema version {version}, perfd needs {SCHEMA_VERSION}: "
            f"run `perfd db upgrade` ({url})"
        )
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"database {url} was written by a newer perfd "
            f"(schema version {version} > {SCHEMA_VERSION}): upgrade perfd"
        )


def upgrade(engine: Engine) -> tuple[int, int]:
    """Apply the missing migrations, each in its own transaction; returns (from, to).

    ``from`` is 0 for an empty database. Raises StorageError for a database written by a
    newer perfd or one that holds other tables but no perfd schema.
    """
    with engine.connect() as conn:
        start = read_version(conn)
        if start is None and (tables := foreign_tables(conn)):
            raise not_a_perfd_database(tables)
    start = start or 0
    if start > SCHEMA_VERSION:
        raise StorageError(
            f"database was written by a newer perfd (schema version {start} > "
            f"{SCHEMA_VERSION}): upgrade perfd"
        )
    for version, _description, migrate in MIGRATIONS:
        if version <= start:
            continue
        with write_transaction(engine) as conn:
            # Another perfd may have applied it while we waited for the write lock.
            if (read_version(conn) or 0) >= version:
                continue
            migrate(conn)
            _set_version(conn, version)
    return start, SCHEMA_VERSION
