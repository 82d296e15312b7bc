"""One suite at one commit: check out, build, run every benchmark in N processes, store."""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perfd.analysis.summary import summarize_processes
from perfd.config import SuiteConfig, expand
from perfd.errors import ConfigError, HarnessError, PerfdError
from perfd.model import (
    BENCHMARK_DATA_VERSION,
    COUNTER_METRICS,
    EnvFingerprint,
    HarnessContext,
    ProcessResult,
    RunResult,
    RunStart,
    Summary,
    stable_hash,
)
from perfd.runner.build import Builder, BuiltHarness
from perfd.runner.execute import HarnessRunner, Measure, plan_rounds
from perfd.runner.fingerprint import HostProbe
from perfd.runner.git import Repository
from perfd.runner.procs import pid_alive
from perfd.store import ResultStore

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_id: int
    commit_sha: str
    built: BuiltHarness
    result: RunResult
    # metrics the suite asked for that this machine could not measure, with the reason
    unavailable: dict[str, str] = field(default_factory=dict)
    data_path: Path | None = None


@dataclass
class RunOptions:
    data_dir: Path
    machine_id: str
    output_dir: Path | None = None
    repository: str | None = None  # overrides the suite's repository
    seed: int | None = None
    tier: str = "manual"
    probe: HostProbe = field(default_factory=HostProbe)
    progress: Progress = lambda message: None

    def allowed_cpus(self) -> set[int]:
        """CPUs this process may run on (respects cgroup cpusets and systemd CPUAffinity=)."""
        return set(os.sched_getaffinity(0))


def measures_for(suite: SuiteConfig) -> list[Measure]:
    out = []
    for bench in suite.benchmarks:
        s = suite.settings_for(bench.name)
        out.append(Measure(
            name=bench.name, warmup=s.warmup, samples=s.samples, min_time_s=s.min_time_s,
            repetitions=s.repetitions, cpus=tuple(s.cpus), timeout_s=s.timeout_s,
            counters=s.counters or any(m.name in COUNTER_METRICS for m in s.metrics),
        ))
    return out


def benchmark_config_hash(suite: SuiteConfig, name: str) -> str:
    """Series identity part: how this benchmark is built and measured (not the commit)."""
    s = suite.settings_for(name)
    return stable_hash({
        "build": suite.build.model_dump(mode="json"),
        "harness": suite.harness.model_dump(mode="json"),
        "settings": {"warmup": s.warmup, "samples": s.samples, "min_time_s": s.min_time_s,
                     "cpus": list(s.cpus), "counters": s.counters},
    })


def run_suite(suite: SuiteConfig, rev: str, store: ResultStore, opts: RunOptions) -> RunOutcome:
    """Build and measure suite at rev; store the run atomically. Raises PerfdError subclasses."""
    repo = Repository.open(opts.repository or suite.repository_location(),
                           opts.data_dir / "mirrors")
    sha = repo.resolve(rev)
    hostname = socket.gethostname()
    for stale in store.recover_interrupted(hostname, pid_alive):
        opts.progress(f"run {stale} was interrupted earlier (its perfd process is gone): marked FAILED")

    measures = measures_for(suite)
    check_cpus(suite, measures, opts.allowed_cpus())
    config_hashes = {m.name: benchmark_config_hash(suite, m.name) for m in measures}
    builder = Builder(opts.data_dir / "builds")
    opts.progress(f"building {suite.name} at {sha[:12]}")
    built = builder.build(suite, repo, sha)
    opts.progress(f"build {'reused' if built.cached else 'done'}: {built.binary}")

    run_id = store.begin_run(RunStart(
        suite=suite.name, commit_sha=sha, machine_id=opts.machine_id,
        config_hash=stable_hash(sorted(config_hashes.items())), build_hash=built.build_hash,
        started_at=datetime.now(UTC), pid=os.getpid(), tier=opts.tier,
    ))
    processes: list[ProcessResult] = []
    environment: EnvFingerprint | None = None
    try:
        runner = HarnessRunner(built.binary, [expand(a, built.variables) for a in suite.harness.args])
        offered = set(runner.list_benchmarks())
        missing = [m.name for m in measures if m.name not in offered]
        if missing:
            raise HarnessError(
                f"suite {suite.name}: benchmark(s) {', '.join(missing)} not in the harness "
                f"(it offers: {', '.join(sorted(offered)) or 'nothing'})"
            )
        all_cpus = tuple(sorted({c for m in measures for c in m.cpus}))
        environment = opts.probe.fingerprint(all_cpus)
        plan = plan_rounds(measures, random.Random(opts.seed))
        context: HarnessContext | None = None
        for i, planned in enumerate(plan, start=1):
            opts.progress(f"[{i}/{len(plan)}] {planned.benchmark.name} "
                          f"process {planned.repetition + 1}/{planned.benchmark.repetitions}")
            process, context = runner.run_one(planned)
            processes.append(process)
        assert context is not None  # a suite has at least one benchmark
        statistics: list[Summary] = []
        unavailable: dict[str, str] = {}
        for bench in suite.benchmarks:
            metrics = suite.settings_for(bench.name).metrics
            mine = [p for p in processes if p.benchmark == bench.name]
            summaries = summarize_processes(bench.name, metrics, mine)
            statistics += summaries
            measured = {s.metric for s in summaries}
            for metric in metrics:
                if metric.name not in measured:
                    unavailable[f"{bench.name}:{metric.name}"] = (
                        mine[0].counters_unavailable_reason or "not reported by the harness")
        result = RunResult(
            environment=environment, harness=context, processes=tuple(processes),
            statistics=tuple(statistics), finished_at=datetime.now(UTC),
            benchmark_config_hashes=config_hashes,
        )
        store.complete_run(run_id, result,
                           output_dir=str(opts.output_dir) if opts.output_dir else None)
    except PerfdError as exc:
        _record_failure(store, run_id, str(exc), processes, environment, opts.progress)
        raise
    except KeyboardInterrupt:
        _record_failure(store, run_id, "interrupted by the user (SIGINT)", processes, environment,
                        opts.progress)
        raise
    data_path = None
    if opts.output_dir is not None:
        data_path = write_benchmark_data(opts.output_dir, run_id, suite, sha, opts, built, result)
    return RunOutcome(run_id, sha, built, result, unavailable, data_path)


def _record_failure(store: ResultStore, run_id: int, error: str, processes: list[ProcessResult],
                    environment: EnvFingerprint | None, progress: Progress) -> None:
    """Mark the run FAILED; if even that fails, say so but let the original error through."""
    try:
        store.fail_run(run_id, error, processes, environment)
    except PerfdError as exc:
        progress(f"could not mark run {run_id} FAILED ({exc}); the next run will")


def check_cpus(suite: SuiteConfig, measures: list[Measure], allowed: set[int]) -> None:
    """Refuse to start when the suite pins to CPUs this process may not use."""
    wanted = {c for m in measures for c in m.cpus}
    missing = sorted(wanted - allowed)
    if missing:
        raise ConfigError(
            f"suite {suite.name} ({suite.source_path}): pins to CPU(s) "
            f"{', '.join(map(str, missing))}, but perfd may only use CPU(s) "
            f"{', '.join(map(str, sorted(allowed)))} here: change `cpus` in the suite"
        )


def write_benchmark_data(out_dir: Path, run_id: int, suite: SuiteConfig, sha: str,
                         opts: RunOptions, built: BuiltHarness, result: RunResult) -> Path:
    """Write benchmark_data.json atomically (temp file + rename); returns its path."""
    benches: list[dict[str, Any]] = []
    for bench in suite.benchmarks:
        s = suite.settings_for(bench.name)
        benches.append({
            "name": bench.name,
            "config_hash": result.benchmark_config_hashes[bench.name],
            "settings": {"warmup": s.warmup, "samples": s.samples, "min_time_s": s.min_time_s,
                         "repetitions": s.repetitions, "cpus": list(s.cpus)},
            "metrics": [{"name": m.name, "unit": m.unit, "direction": m.direction.value}
                        for m in s.metrics],
            "statistics": {st.metric: _summary_dict(st)
                           for st in result.statistics if st.benchmark == bench.name},
            "processes": [
                {"repetition": p.repetition, "round": p.round_index, "cpu": p.cpu,
                 "duration_s": round(p.duration_s, 6),
                 "iterations_per_sample": p.samples.iterations_per_sample,
                 "values": {m.name: list(v) for m in s.metrics
                            if (v := p.samples.metric_values(m.name)) is not None}}
                for p in result.processes if p.benchmark == bench.name
            ],
        })
    doc = {
        "format": "perfd-benchmark-data",
        "version": BENCHMARK_DATA_VERSION,
        "run": {"id": run_id, "suite": suite.name, "commit": sha, "machine_id": opts.machine_id,
                "build_hash": built.build_hash, "finished_at": result.finished_at.isoformat()},
        "environment": result.environment.to_dict(),
        "environment_hash": result.environment.fingerprint_hash,
        "harness": dict(result.harness.raw),
        "benchmarks": benches,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "benchmark_data.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def _summary_dict(s: Summary) -> dict[str, Any]:
    return {
        "unit": s.unit, "direction": s.direction.value, "n_processes": s.n_processes,
        "n_samples": s.n_samples, "median": s.median, "mean": s.mean, "stddev": s.stddev,
        "cv": s.cv, "min": s.min, "max": s.max, "p95": s.p95, "p99": s.p99,
        "sample_cv": s.sample_cv,
    }
