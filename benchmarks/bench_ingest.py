"""How fast ResultStore.complete_run stores measurements (target: >= 200,000 per second).

Builds a synthetic RunResult (benchmarks x processes x samples of the metric ``time``),
times ``complete_run`` (one transaction: processes, measurements, statistics) into a SQLite
file in WAL mode (or any database URL), and prints a block that can be pasted into
benchmarks/RESULTS.md.

    python benchmarks/bench_ingest.py                      # 1,000,000 measurements, temp db
    python benchmarks/bench_ingest.py --measurements 5000000 --db /var/tmp/ingest.db
    python benchmarks/bench_ingest.py --upgrade    # also time `perfd db upgrade` from schema 2

With ``--upgrade`` the stored runs are then turned back into a schema-2 database (migration 3
only adds ``process_summaries``: dropped, version set to 2) and the upgrade that refills it
from ``measurements`` is timed, as `perfd db upgrade` runs it on an old database.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy

from perfd.locks import holding_machine
from perfd.model import (
    BenchmarkSamples,
    Direction,
    EnvFingerprint,
    HarnessContext,
    ProcessResult,
    RunResult,
    RunStart,
    Summary,
)
from perfd.runner import fingerprint  # noqa: E402
from perfd.store import ResultStore, mask_url
from perfd.store.migrations import VERSION_KEY


def cpu_model() -> str:
    return fingerprint.cpu_model() or platform.processor() or "unknown CPU"


def synthetic_result(n_benchmarks: int, n_processes: int, n_samples: int, seed: int) -> RunResult:
    rng = random.Random(seed)
    processes = []
    summaries = []
    for b in range(n_benchmarks):
        name = f"bench_{b:03d}_{rng.choice(['hash', 'parse', 'sort', 'alloc'])}"
        base_ns = rng.uniform(20.0, 5000.0)
        for rep in range(n_processes):
            samples = tuple(base_ns * rng.lognormvariate(0.0, 0.03) for _ in range(n_samples))
            processes.append(
                ProcessResult(
                    benchmark=name,
                    repetition=rep,
                    round_index=rep,
                    cpu=2,
                    exit_code=0,
                    duration_s=1.0,
                    samples=BenchmarkSamples(
                        name=name, iterations_per_sample=1000, samples_ns=samples
                    ),
                    counters_unavailable_reason="synthetic",
                )
            )
        summaries.append(
            Summary(
                benchmark=name, metric="time", unit="ns", direction=Direction.LOWER,
                n_processes=n_processes, n_samples=n_processes * n_samples, median=base_ns,
                mean=base_ns, stddev=0.03 * base_ns, cv=0.03, min=0.9 * base_ns,
                max=1.1 * base_ns, p95=1.05 * base_ns, p99=1.07 * base_ns, sample_cv=0.03,
            )
        )
    return RunResult(
        environment=EnvFingerprint(
            hostname=platform.node(), kernel=platform.release(), cpu_model=cpu_model(),
            cpu_count=os.cpu_count() or 1, governor=None, boost=None, smt=None,
            isolated_cpus=None, nohz_full=None, compiler=None, memory_total_bytes=None,
            load_avg_1m=None,
        ),
        harness=HarnessContext(
            format_version="1", harness_version="synthetic", host=platform.node(),
            pinned_cpu=None, timer_resolution_ns=1.0, timer_overhead_ns=20.0,
            counters_available=(), counters_unavailable_reason="synthetic",
        ),
        processes=tuple(processes),
        statistics=tuple(summaries),
        finished_at=datetime.now(UTC),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", type=int, default=1_000_000,
                        help="measurements per run (default: 1,000,000)")
    parser.add_argument("--benchmarks", type=int, default=50, help="benchmarks (default: 50)")
    parser.add_argument("--processes", type=int, default=20,
                        help="processes per benchmark (default: 20)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs to store, each timed on its own (default: 3)")
    parser.add_argument("--db", type=Path, default=None,
                        help="SQLite file to write (default: a temporary file, removed after)")
    parser.add_argument("--url", default=None,
                        help="database URL instead of a SQLite file (e.g. an empty PostgreSQL "
                             "database; the runs stay in it)")
    parser.add_argument("--upgrade", action="store_true",
                        help="then time the schema 2 -> 3 upgrade of what was stored (SQLite)")
    args = parser.parse_args(argv)

    per_process = args.benchmarks * args.processes
    n_samples = max(1, args.measurements // per_process)
    total = n_samples * per_process
    result = synthetic_result(args.benchmarks, args.processes, n_samples, seed=1)

    with tempfile.TemporaryDirectory(prefix="perfd-bench-ingest-") as tmp:
        db = args.db or Path(tmp) / "ingest.db"
        store = ResultStore.open(args.url or f"sqlite:///{db}")
        rates = []
        for n in range(args.repeat):
            run_id = store.begin_run(
                RunStart(
                    suite="bench_ingest", commit_sha=f"{n:040x}", machine_id=platform.node(),
                    config_hash="bench", build_hash="bench", started_at=datetime.now(UTC),
                    pid=os.getpid(),
                )
            )
            started = time.perf_counter()
            store.complete_run(run_id, result)
            elapsed = time.perf_counter() - started
            rates.append(total / elapsed)
            print(f"run {n + 1}: {total:,} measurements in {elapsed:.2f} s "
                  f"= {total / elapsed:,.0f} /s", file=sys.stderr)
        upgrade_line = time_upgrade(store, total * args.repeat) if args.upgrade else ""
        store.close()
        where = (
            f"{mask_url(args.url)}" if args.url
            else f"SQLite file in WAL mode ({db.stat().st_size / 2**20:.0f} MiB at the end)"
        )

    command = "python benchmarks/bench_ingest.py " + shlex.join(argv or sys.argv[1:])
    print(f"""## Ingest: ResultStore.complete_run

- date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- machine: {cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}
- software: Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, \
SQLite {sqlite3.sqlite_version}
- command: `{command.strip()}`
- data: {total:,} measurements per run ({args.benchmarks} benchmarks x {args.processes} \
processes x {n_samples} samples, metric time), {args.repeat} runs into {where}
- result: median {statistics.median(rates):,.0f} measurements/s \
(min {min(rates):,.0f}, max {max(rates):,.0f}); target >= 200,000/s{upgrade_line}""")
    return 0


def time_upgrade(store: ResultStore, measurements: int) -> str:
    """Make the database schema 2 again (no process_summaries), time upgrade(), check it."""
    with store.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP TABLE process_summaries"))
        conn.execute(sqlalchemy.text(f"UPDATE schema_meta SET value = '2' WHERE key = '{VERSION_KEY}'"))
    started = time.perf_counter()
    before, after = store.upgrade()
    elapsed = time.perf_counter() - started
    with store.engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT count(*) FROM process_summaries")).scalar_one()
    print(f"upgrade {before} -> {after}: {measurements:,} measurements in {elapsed:.2f} s, "
          f"{rows:,} process summaries", file=sys.stderr)
    return (f"\n- upgrade schema {before} -> {after} (`perfd db upgrade`): {measurements:,} stored "
            f"measurements summarised into {rows:,} process medians in {elapsed:.2f} s "
            f"= {measurements / elapsed:,.0f} measurements/s")


if __name__ == "__main__":
    # Never two benchmarks at once: wait for any perfd run, compare or benchmark on this machine.
    with holding_machine("benchmarks/bench_ingest.py"):
        sys.exit(main())
