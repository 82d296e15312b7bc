"""How fast the daemon answers a /metrics scrape of a big store (target: <= 100 ms for 5,000
series).

Fills a SQLite file (WAL) through ResultStore with a realistic machine's history: suites x
benchmarks x metrics (time in ns, throughput in ops/s) measured by several runs of each
suite across the commit and nightly tiers, every history run paired with the reference
build (its REFERENCE side stored too, and current/reference ratios), budgets on every
tenth benchmark (time median with a ceiling and a relative limit, throughput median
relative), a few contended and failed runs, open and acknowledged alerts, and queued jobs. Runs are
stored with their statistics only: a scrape never reads processes or samples. Then times
``render()`` (every query through one snapshot + the text exposition), as the HTTP handler
runs it per scrape, twice: the first scrape after a run was stored (a new collector, nothing
kept) and the scrapes in between (the benchmark families kept by the store's values
version), and prints a block for benchmarks/RESULTS.md.

    python benchmarks/bench_metrics_scrape.py                # 50 x 50 x 2 = 5,000 series
    python benchmarks/bench_metrics_scrape.py --statistics median   # the lean scrape
    python benchmarks/bench_metrics_scrape.py --suites 100 --runs 10 --scrapes 50
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
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import sqlalchemy
from prometheus_client import CollectorRegistry

from perfd.daemon.metrics import (
    STATISTICS,
    DaemonStatus,
    PerfdCollector,
    metrics_registry,
    render,
)
from perfd.locks import holding_machine
from perfd.model import (
    Direction,
    EnvFingerprint,
    HarnessContext,
    RunResult,
    RunStart,
    RunTier,
    Summary,
)
from perfd.runner import fingerprint
from perfd.store import AlertDraft, BudgetRecord, JobDraft, RatioRecord, ResultStore, SeriesKey

MACHINE = "bench-01"
T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


def cpu_model() -> str:
    return fingerprint.cpu_model() or platform.processor() or "unknown CPU"


ENV = EnvFingerprint(
    hostname="bench-01", kernel="6.8.0", cpu_model="synthetic", cpu_count=16,
    governor="performance", boost=False, smt=False, isolated_cpus="2-7", nohz_full=None,
    compiler="gcc 13.2.0", memory_total_bytes=64 * 2**30, load_avg_1m=0.1,
)
HARNESS = HarnessContext(
    format_version="1.2", harness_version="synthetic", host="bench-01", pinned_cpu=2,
    timer_resolution_ns=1.0, timer_overhead_ns=20.0, counters_available=(),
    counters_unavailable_reason="synthetic",
)


def summaries(benchmarks: list[str], base_ns: dict[str, float], rng: random.Random,
              drift: float) -> tuple[Summary, ...]:
    out = []
    for name in benchmarks:
        ns = base_ns[name] * drift * rng.lognormvariate(0.0, 0.01)
        for metric, unit, direction, median in (
            ("time", "ns", Direction.LOWER, ns),
            ("throughput", "ops/s", Direction.HIGHER, 1e9 / ns),
        ):
            out.append(Summary(
                benchmark=name, metric=metric, unit=unit, direction=direction, n_processes=10,
                n_samples=100, median=median, mean=median * 1.002, stddev=median * 0.01,
                cv=0.01, min=median * 0.98, max=median * 1.03, p95=median * 1.04,
                p99=median * 1.08, sample_cv=0.02))
    return tuple(out)


def fill(store: ResultStore, n_suites: int, n_benchmarks: int, n_runs: int, budget_every: int,
         seed: int) -> int:
    """Store the history; returns the number of runs stored."""
    rng = random.Random(seed)
    stored = 0
    commit = 0
    for s in range(n_suites):
        suite = f"suite_{s:02d}"
        benchmarks = [f"{rng.choice(['hash', 'parse', 'sort', 'alloc', 'io'])}/case_{b:02d}"
                      for b in range(n_benchmarks)]
        base_ns = {b: rng.uniform(20.0, 50_000.0) for b in benchmarks}
        reference = store.set_reference(suite, "main", "v1.0", f"{10**9 + s:040x}",
                                        set_by="bench", reason="benchmark history")
        for n in range(n_runs):
            commit += 1
            tier = RunTier.NIGHTLY if n % 3 == 2 else RunTier.COMMIT
            started = T0 + timedelta(hours=6 * n, minutes=s)
            duration = rng.uniform(60.0, 900.0)
            contended = "38% of samples off-CPU" if rng.random() < 0.05 else None
            ids = []
            for side, sha in ((tier, f"{commit:040x}"), (RunTier.REFERENCE, f"{10**9 + s:040x}")):
                run_id = store.begin_run(RunStart(
                    suite=suite, commit_sha=sha, machine_id=MACHINE, config_hash="cfg",
                    build_hash=f"bld{commit}", started_at=started, pid=os.getpid(), tier=side),
                    hostname="bench-01")
                store.complete_run(run_id, RunResult(
                    environment=ENV, harness=HARNESS, processes=(),
                    statistics=summaries(benchmarks, base_ns, rng, 1.0),
                    finished_at=started + timedelta(seconds=duration),
                    benchmark_config_hashes={b: "bcfg" for b in benchmarks}),
                    contended=contended if side is tier else None)
                ids.append(run_id)
                stored += 1
            current, ref = ids
            if contended:
                continue
            store.save_ratios([
                RatioRecord(run_id=current, reference_run_id=ref, reference_id=reference.id,
                            benchmark=b, metric=m, ratio=r, ci_low=r * 0.99, ci_high=r * 1.01,
                            n_pairs=5, pair_ratios=(r,) * 5)
                for b in benchmarks for m in ("time", "throughput")
                for r in [rng.lognormvariate(0.0, 0.02)]])
            store.save_budget_results(current, [
                BudgetRecord(run_id=current, budget_index=i, suite=suite, benchmark=b,
                             metric=metric, statistic="median", limit_text=limit, action=action,
                             min_confidence="MEDIUM", owner="perf-team",
                             status=rng.choice(["PASS"] * 18 + ["FAIL", "NO_DATA"]), value=1.0,
                             baseline_run_id=None, baseline_value=None, change_pct=0.5,
                             confidence="LOW", reason="synthetic")
                for b in benchmarks[::budget_every]
                for i, metric, limit, action in ((0, "time", "50us, +5%", "block"),
                                                 (1, "throughput", "+10%", "warn"))])
        # Every few suites a failed build, and a regression or two under investigation.
        if s % 5 == 0:
            commit += 1
            run_id = store.begin_run(RunStart(
                suite=suite, commit_sha=f"{commit:040x}", machine_id=MACHINE,
                config_hash="cfg", build_hash="bld", started_at=T0 + timedelta(days=30),
                pid=os.getpid(), tier=RunTier.COMMIT), hostname="bench-01")
            store.fail_run(run_id, "build failed: exit status 2")
            stored += 1
            store.open_alert(AlertDraft(
                kind="code", series=SeriesKey(suite, benchmarks[0], "time", MACHINE, "bcfg"),
                baseline_commit=f"{1:040x}", first_bad_commit=f"{2:040x}", baseline_run_id=None,
                last_run_id=None, change_pct=7.5, confidence=rng.choice(["HIGH", "MEDIUM"]),
                p_value=0.001, reason="synthetic"))
        store.enqueue(JobDraft(suite=suite, commit_sha=f"{commit + 1:040x}", tier="commit",
                               kind="run", machine_id=MACHINE))
    return stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=int, default=50, help="suites (default: 50)")
    parser.add_argument("--benchmarks", type=int, default=50,
                        help="benchmarks per suite, each with metrics time and throughput "
                             "(default: 50)")
    parser.add_argument("--runs", type=int, default=5,
                        help="history runs per suite, each paired with a reference run "
                             "(default: 5)")
    parser.add_argument("--budget-every", type=int, default=10,
                        help="budgets on every n-th benchmark of a suite, its time and "
                             "throughput medians (default: 10; 1 = every benchmark)")
    parser.add_argument("--statistics", default=",".join(STATISTICS),
                        help="statistics exported per series (default: all of "
                             f"{','.join(STATISTICS)})")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes timed (default: 20)")
    parser.add_argument("--db", type=Path, default=None,
                        help="SQLite file to write (default: a temporary file, removed after)")
    args = parser.parse_args(argv)
    series = args.suites * args.benchmarks * 2

    with tempfile.TemporaryDirectory(prefix="perfd-bench-scrape-") as tmp:
        db = args.db or Path(tmp) / "scrape.db"
        store = ResultStore.open(f"sqlite:///{db}")
        started = time.perf_counter()
        n_runs = fill(store, args.suites, args.benchmarks, args.runs, args.budget_every, seed=1)
        print(f"filled {n_runs:,} runs ({series:,} series) in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        status = DaemonStatus(started_timestamp=time.time(), reload_success=True,
                              reload_timestamp=time.time(), poll_failures={"minilib": 0},
                              version="bench")
        chosen = tuple(args.statistics.split(","))
        def registry() -> CollectorRegistry:
            return metrics_registry(PerfdCollector(store, MACHINE, lambda: status,
                                                   statistics=chosen))

        render(registry())  # warm the connection pool and the page cache, as a running daemon has
        # the first scrape after a run was stored (or deleted): a new collector has nothing kept
        cold = []
        for _ in range(args.scrapes):
            fresh = registry()
            t = time.perf_counter()
            body = render(fresh)
            cold.append(time.perf_counter() - t)
        # the scrapes in between (Prometheus every 15 s, a run every few minutes)
        kept = registry()
        render(kept)
        times, size, lines = [], 0, 0
        for _ in range(args.scrapes):
            t = time.perf_counter()
            again = render(kept)
            times.append(time.perf_counter() - t)
            size, lines = len(again), again.count(b"\n")
        def steady(text: bytes) -> list[bytes]:  # the queue's oldest age grows by the second
            return [line for line in text.splitlines()
                    if not line.startswith(b"perfd_job_queue_oldest_age_seconds ")]

        assert steady(again) == steady(body), "a kept scrape must answer what a fresh one does"
        samples = sum(1 for line in body.splitlines() if not line.startswith(b"#"))
        store.close()
        db_mib = db.stat().st_size / 2**20

    command = "python benchmarks/bench_metrics_scrape.py " + shlex.join(argv or sys.argv[1:])
    median_ms, max_ms = statistics.median(times) * 1e3, max(times) * 1e3
    cold_ms, cold_max_ms = statistics.median(cold) * 1e3, max(cold) * 1e3
    print(f"""## /metrics scrape: PerfdCollector + render()

- date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- machine: {cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}
- software: Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, \
SQLite {sqlite3.sqlite_version}, prometheus-client {version("prometheus-client")}
- command: `{command.strip()}`
- data: {series:,} series ({args.suites} suites x {args.benchmarks} benchmarks x 2 metrics), \
{n_runs:,} runs ({args.runs} history runs per suite, each with its reference side), SQLite file \
in WAL mode ({db_mib:.0f} MiB); budgets on every {args.budget_every}th benchmark; statistics \
exported: {", ".join(chosen)}
- output: {samples:,} samples, {lines:,} lines, {size / 1024:,.0f} KiB per scrape

| figure | value |
|---|---|
| scrape between runs (benchmark families kept), median of {args.scrapes} | **{median_ms:.1f} ms** \
(target <= 100 ms) |
| same, max | {max_ms:.1f} ms |
| first scrape after a run was stored (nothing kept), median of {args.scrapes} | **{cold_ms:.1f} ms** \
(target <= 100 ms) |
| same, max | {cold_max_ms:.1f} ms |""")
    return 0


if __name__ == "__main__":
    # Never two benchmarks at once: wait for any perfd run, compare or benchmark on this machine.
    with holding_machine("benchmarks/bench_metrics_scrape.py"):
        sys.exit(main())
