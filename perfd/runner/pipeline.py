"""One suite at one commit: build, run every benchmark in N processes (or in lock-step pairs
with another commit), store.

The repository, the builder and the store are handed in (see perfd.context.Services); the
caller holds the machine lock. Progress goes to ``opts.events`` as typed events.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perfd.analysis.contention import ContentionPolicy, ProcessTimes, assess_contention
from perfd.analysis.summary import summarize_processes
from perfd.atomic import write_text_atomically
from perfd.config import SuiteConfig, expand
from perfd.errors import ConfigError, HarnessError, PerfdError
from perfd.events import (
    BuildFinished,
    BuildStarted,
    EventSink,
    PairStarted,
    ProcessStarted,
    RunBegun,
    RunNotMarked,
    discard,
)
from perfd.model import (
    BENCHMARK_DATA_VERSION,
    COUNTER_METRICS,
    EnvFingerprint,
    HarnessContext,
    ProcessResult,
    RunOutcome,
    RunResult,
    RunStart,
    RunStatus,
    RunTier,
    Summary,
    stable_hash,
)
from perfd.runner.build import Builder, BuiltHarness
from perfd.runner.execute import HarnessRunner, Measure, PlannedProcess, plan_rounds, run_in_turns
from perfd.runner.fingerprint import HostProbe
from perfd.runner.git import Repository
from perfd.store import ResultStore


@dataclass(frozen=True)
class RunOptions:
    machine_id: str
    output_dir: Path | None = None
    seed: int | None = None
    tier: str = RunTier.MANUAL
    probe: HostProbe = field(default_factory=HostProbe)
    events: EventSink = discard
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # aware UTC: when runs start/end
    contention: ContentionPolicy = ContentionPolicy()


def measures_for(suite: SuiteConfig, tier: str | None = None) -> list[Measure]:
    """How each benchmark is measured, with the tier's sizes (None: the suite's own)."""
    out = []
    for bench in suite.benchmarks:
        s = suite.settings_for(bench.name, tier)
        out.append(Measure(
            name=bench.name, warmup=s.warmup, samples=s.samples, min_time_s=s.min_time_s,
            repetitions=s.repetitions, cpus=tuple(s.cpus), timeout_s=s.timeout_s,
            counters=s.counters or any(m.name in COUNTER_METRICS for m in s.metrics),
        ))
    return out


def benchmark_config_hash(suite: SuiteConfig, name: str, tier: str | None = None) -> str:
    """Series identity part: how this benchmark is built and measured (not the commit); a
    tier with other sizes makes other series."""
    s = suite.settings_for(name, tier)
    return stable_hash({
        "build": suite.build.model_dump(mode="json"),
        "harness": suite.harness.model_dump(mode="json"),
        "settings": {"warmup": s.warmup, "samples": s.samples, "min_time_s": s.min_time_s,
                     "cpus": list(s.cpus), "counters": s.counters},
    })


def build_reporting(builder: Builder, suite: SuiteConfig, repo: Repository, sha: str,
                    events: EventSink) -> BuiltHarness:
    """Build (or reuse) suite at sha, telling events. Raises BuildError, RepositoryError."""
    events(BuildStarted(suite.name, sha))
    built = builder.build(suite, repo, sha)
    events(BuildFinished(str(built.binary), built.cached))
    return built


class _Side:
    """One commit of a suite being measured: its build, its run row and its processes."""

    def __init__(self, suite: SuiteConfig, sha: str, built: BuiltHarness, store: ResultStore,
                 opts: RunOptions, config_hashes: dict[str, str], tier: str,
                 commit_time: datetime | None) -> None:
        self.suite, self.sha, self.built, self.store, self.opts = suite, sha, built, store, opts
        self.config_hashes = config_hashes
        self.processes: list[ProcessResult] = []
        self.context: HarnessContext | None = None
        self.environment: EnvFingerprint | None = None
        self.cpus: tuple[int, ...] = ()
        self.cpu_times_start: tuple[int, int] | None = None
        self.runner = HarnessRunner(built.binary, [expand(a, built.variables) for a in suite.harness.args])
        self.run_id = store.begin_run(RunStart(
            suite=suite.name, commit_sha=sha, machine_id=opts.machine_id,
            config_hash=stable_hash(sorted(config_hashes.items())), build_hash=built.build_hash,
            started_at=opts.clock(), pid=os.getpid(), tier=tier, commit_time=commit_time,
        ))
        opts.events(RunBegun(self.run_id, suite.name, sha, tier))

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Any error, Ctrl-C or other exit inside marks this run FAILED (no statistics) and
        propagates."""
        try:
            yield
        except PerfdError as exc:
            self.fail(str(exc))
            raise
        except KeyboardInterrupt:
            self.fail("interrupted by the user (SIGINT)")
            raise
        except BaseException as exc:  # e.g. stderr closed under us: never leave it RUNNING
            self.fail(f"perfd stopped: {type(exc).__name__}: {exc}")
            raise

    def fail(self, error: str) -> None:
        try:
            self.store.fail_run(self.run_id, error, self.processes, self.environment)
        except PerfdError as exc:  # keep the original error; the next run marks it
            self.opts.events(RunNotMarked(self.run_id, str(exc)))

    def check_offers(self, measures: Sequence[Measure]) -> None:
        offered = set(self.runner.list_benchmarks())
        missing = [m.name for m in measures if m.name not in offered]
        if missing:
            raise HarnessError(
                f"suite {self.suite.name}: benchmark(s) {', '.join(missing)} not in the harness "
                f"at {self.sha[:12]} (it offers: {', '.join(sorted(offered)) or 'nothing'})"
            )

    def run(self, planned: PlannedProcess) -> ProcessResult:
        process, context = self.runner.run_one(planned)
        self.record(process, context)
        return process

    def record(self, process: ProcessResult, context: HarnessContext) -> None:
        self.processes.append(process)
        self.context = context

    def complete(self, environment: EnvFingerprint) -> RunOutcome:
        """Summarise and store the run in one transaction."""
        self.environment = environment
        assert self.context is not None, "complete() before any process ran"
        statistics: list[Summary] = []
        unavailable: dict[str, str] = {}
        for bench in self.suite.benchmarks:
            metrics = self.suite.settings_for(bench.name).metrics
            mine = [p for p in self.processes if p.benchmark == bench.name]
            if not mine:
                continue
            summaries = summarize_processes(bench.name, metrics, mine)
            statistics += summaries
            measured = {s.metric for s in summaries}
            for metric in metrics:
                if metric.name not in measured:
                    unavailable[f"{bench.name}:{metric.name}"] = (
                        mine[0].counters_unavailable_reason or "not reported by the harness")
        result = RunResult(
            environment=environment, harness=self.context, processes=tuple(self.processes),
            statistics=tuple(statistics), finished_at=self.opts.clock(),
            benchmark_config_hashes=self.config_hashes, steal_fraction=self.steal_fraction(),
        )
        contention = assess_contention(self.sample_times(), self.opts.contention)
        reason = contention.reason if contention.contended else None
        out = self.opts.output_dir
        self.store.complete_run(self.run_id, result, output_dir=str(out) if out else None,
                                contended=reason)
        return RunOutcome(self.run_id, self.suite.name, self.sha, self.opts.machine_id,
                          self.built.build_hash, str(self.built.binary), result, unavailable,
                          status=RunStatus.CONTENDED if reason else RunStatus.COMPLETED,
                          contended_reason=reason)

    def start_measuring(self, environment: EnvFingerprint, cpus: tuple[int, ...]) -> None:
        self.environment, self.cpus = environment, cpus
        self.cpu_times_start = self.opts.probe.cpu_times(cpus)

    def steal_fraction(self) -> float | None:
        """Steal time over all CPU time of the pinned CPUs since start_measuring."""
        end = self.opts.probe.cpu_times(self.cpus)
        if self.cpu_times_start is None or end is None:
            return None
        steal, total = (b - a for a, b in zip(self.cpu_times_start, end, strict=True))
        return steal / total if total > 0 else None

    def sample_times(self) -> dict[str, list[ProcessTimes]]:
        """Wall and on-CPU time (and switches) of every sample, by benchmark."""
        out: dict[str, list[ProcessTimes]] = {}
        for p in self.processes:
            s = p.samples
            out.setdefault(p.benchmark, []).append((s.samples_ns, s.cpu_ns, s.involuntary_switches))
        return out


def allowed_cpus() -> set[int]:
    """CPUs this process may run on (respects cgroup cpusets and systemd CPUAffinity=)."""
    return set(os.sched_getaffinity(0))


def run_suite(suite: SuiteConfig, repo: Repository, builder: Builder, rev: str,
              store: ResultStore, opts: RunOptions) -> RunOutcome:
    """Build and measure suite at rev; store the run atomically. Raises PerfdError subclasses."""
    sha = repo.resolve(rev)
    measures = measures_for(suite, opts.tier)
    check_cpus(suite, measures, allowed_cpus())
    config_hashes = {m.name: benchmark_config_hash(suite, m.name, opts.tier) for m in measures}
    built = build_reporting(builder, suite, repo, sha, opts.events)
    side = _Side(suite, sha, built, store, opts, config_hashes, opts.tier, repo.commit_time(sha))
    with side.recording():
        side.check_offers(measures)
        cpus = tuple(sorted({c for m in measures for c in m.cpus}))
        environment = opts.probe.fingerprint(cpus)
        side.start_measuring(environment, cpus)
        plan = plan_rounds(measures, random.Random(opts.seed))
        for i, planned in enumerate(plan, start=1):
            opts.events(ProcessStarted(i, len(plan), planned.benchmark.name,
                                       planned.repetition + 1, planned.benchmark.repetitions))
            side.run(planned)
        outcome = side.complete(environment)
    if opts.output_dir is not None:
        outcome = with_benchmark_data(outcome, suite, opts)
    return outcome


def with_benchmark_data(outcome: RunOutcome, suite: SuiteConfig, opts: RunOptions) -> RunOutcome:
    """Write the run's benchmark_data.json into opts.output_dir; the outcome says where."""
    assert opts.output_dir is not None
    path = write_benchmark_data(opts.output_dir, outcome.run_id, suite, outcome.commit_sha, opts,
                                outcome.build_hash, outcome.result)
    return replace(outcome, data_path=str(path))


# Decides, after each pair, whether a benchmark needs more pairs:
# (benchmark, baseline processes, current processes) -> keep going?
KeepGoing = Callable[[str, Sequence[ProcessResult], Sequence[ProcessResult]], bool]


@dataclass(frozen=True, slots=True)
class PairedOutcome:
    baseline: RunOutcome
    current: RunOutcome
    pairs: dict[str, int]  # benchmark -> pairs measured


def run_interleaved(suite: SuiteConfig, repo: Repository, builder: Builder, baseline_rev: str,
                    current_rev: str, store: ResultStore, opts: RunOptions, *,
                    keep_going: KeepGoing, min_pairs: int = 5, max_pairs: int = 20,
                    only: Collection[str] | None = None,
                    tiers: tuple[str, str] = (RunTier.COMPARE, RunTier.COMPARE)) -> PairedOutcome:
    """Build both commits and run them in randomised pairs of processes on this machine.

    Pair i of a benchmark runs one baseline and one current process at the same time on the
    same CPU, taking turns sample by sample (harness --turns; a random side goes first), so
    sample j of both sides sees the same state of the machine: drift, and the slow phases of
    a shared or virtual CPU, cancel in the pair's sample ratios. After min_pairs, keep_going
    decides per benchmark whether more pairs are needed (up to max_pairs); ``only`` limits
    the pairs to those benchmarks. Both sides are stored as runs (of ``tiers``, default
    "compare" for both) whose processes carry the pair index as round_index.
    """
    if not 2 <= min_pairs <= max_pairs:
        raise ConfigError(f"pairs: need 2 <= min_pairs <= max_pairs, got {min_pairs}..{max_pairs}")
    shas = repo.resolve(baseline_rev), repo.resolve(current_rev)
    measures = [m for m in measures_for(suite, opts.tier) if only is None or m.name in only]
    check_cpus(suite, measures, allowed_cpus())
    config_hashes = {m.name: benchmark_config_hash(suite, m.name, opts.tier) for m in measures}
    builds = [build_reporting(builder, suite, repo, sha, opts.events) for sha in shas]
    sides = [_Side(suite, sha, built, store, opts, config_hashes, tier, repo.commit_time(sha))
             for sha, built, tier in zip(shas, builds, tiers, strict=True)]
    rng = random.Random(opts.seed)
    pairs = dict.fromkeys((m.name for m in measures), 0)
    with ExitStack() as stack:
        for side in sides:
            stack.enter_context(side.recording())
        for side in sides:
            side.check_offers(measures)
        cpus = tuple(sorted({c for m in measures for c in m.cpus}))
        environment = opts.probe.fingerprint(cpus)
        for side in sides:
            side.start_measuring(environment, cpus)
        active = list(measures)
        for i in range(max_pairs):
            rng.shuffle(active)
            for m in active:
                cpu = m.cpus[i % len(m.cpus)] if m.cpus else None
                first = rng.randrange(2)
                opts.events(PairStarted(i + 1, m.name, sides[first].sha))
                results = run_in_turns([s.runner for s in sides], PlannedProcess(m, i, i, cpu),
                                       first=first, labels=("baseline", "current"))
                for side, (process, context) in zip(sides, results, strict=True):
                    side.record(process, context)
                pairs[m.name] += 1
            if i + 1 >= min_pairs:
                active = [m for m in active if keep_going(
                    m.name, *[[p for p in s.processes if p.benchmark == m.name] for s in sides])]
            if not active:
                break
        baseline, current = (side.complete(environment) for side in sides)
    return PairedOutcome(baseline, current, pairs)


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
                         opts: RunOptions, build_hash: str, result: RunResult) -> Path:
    """Write benchmark_data.json atomically (temp file + rename); returns its path."""
    benches: list[dict[str, Any]] = []
    for bench in suite.benchmarks:
        s = suite.settings_for(bench.name, opts.tier)
        benches.append({
            "name": bench.name,
            "config_hash": result.benchmark_config_hashes[bench.name],
            "settings": {"warmup": s.warmup, "samples": s.samples, "min_time_s": s.min_time_s,
                         "repetitions": s.repetitions, "cpus": list(s.cpus)},
            "metrics": [{"name": m.name, "unit": m.unit, "direction": m.direction.value}
                        for m in s.metrics],
            "statistics": {st.metric: st.to_dict()
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
                "build_hash": build_hash, "finished_at": result.finished_at.isoformat()},
        "environment": result.environment.to_dict(),
        "environment_hash": result.environment.fingerprint_hash,
        "harness": dict(result.harness.raw),
        "benchmarks": benches,
    }
    path = out_dir / "benchmark_data.json"
    write_text_atomically(path, json.dumps(doc, indent=1) + "\n")
    return path
