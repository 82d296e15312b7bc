"""`perfd run` (and every history run of the daemon): one suite at one commit, stored."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from perfd.context import Services
from perfd.errors import UsageError
from perfd.events import Event, RunBegun, RunContended, RunRecovered
from perfd.flows.budgets import BudgetCheck, evaluate_run_budgets
from perfd.model import RunOutcome, RunTier
from perfd.runner.pipeline import RunOptions, run_suite
from perfd.runner.procs import pid_alive


@dataclass(frozen=True, slots=True)
class RunRequest:
    suite: str  # a suite name of the config, or a path to its YAML
    commit: str  # commit id, branch or tag
    output_dir: Path | None = None  # also write benchmark_data.json here
    repository: str | None = None  # instead of the suite's repository
    seed: int | None = None  # order of processes within a round
    tier: RunTier = RunTier.MANUAL
    retries: int = 2  # measure again this many times while a run comes out CONTENDED
    retry_delay_s: float = 5.0  # wait before each retry (a neighbour may be gone by then)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.retry_delay_s < 0:
            raise UsageError(f"retries and retry delay must be >= 0, got {self.retries} and "
                             f"{self.retry_delay_s:g} s")


def recover_interrupted(services: Services) -> list[int]:
    """Mark FAILED the RUNNING runs of this host whose perfd process is gone; returns their ids."""
    stale = services.store.recover_interrupted(socket.gethostname(), pid_alive)
    for run_id in stale:
        services.events(RunRecovered(run_id))
    return stale


def run_options(services: Services, *, tier: RunTier, seed: int | None = None,
                output_dir: Path | None = None) -> RunOptions:
    """Options of the runner for this machine; run ids reach the machine lock's holder note."""
    def events(event: Event) -> None:
        if isinstance(event, RunBegun):
            services.machine.describe(f"run {event.run_id} of suite {event.suite}")
        services.events(event)

    return RunOptions(machine_id=services.machine_id, output_dir=output_dir, seed=seed, tier=tier,
                      probe=services.probe, events=events, clock=services.clock)


@dataclass(frozen=True, slots=True)
class RunReport:
    outcome: RunOutcome  # the last attempt
    budgets: BudgetCheck | None  # its budget verdicts (None: contended, not held to budgets)


def run(services: Services, request: RunRequest) -> RunReport:
    """Measure (see :func:`measure`), then hold a completed run to its suite's budgets."""
    outcome = measure(services, request)
    if outcome.contended:
        return RunReport(outcome, None)
    return RunReport(outcome, evaluate_run_budgets(services, outcome.run_id))


def measure(services: Services, request: RunRequest) -> RunOutcome:
    """Build and measure a suite at a commit under the machine lock; store it atomically.

    A run that comes out CONTENDED (its samples were taken off their CPU) is kept as such and
    measured again, up to ``retries`` times; the last outcome is returned, so the caller sees
    whether it is still contended. Raises ConfigError, RepositoryError, BuildError,
    HarnessError, StorageError, MachineBusyError."""
    suite = services.suite(request.suite)
    repo = services.repository(suite, request.repository)
    options = run_options(services, tier=request.tier, seed=request.seed,
                          output_dir=request.output_dir)
    with services.machine.hold(f"a run of suite {suite.name} at {request.commit}"):
        recover_interrupted(services)
        for attempt in range(1, request.retries + 2):
            outcome = run_suite(suite, repo, services.builder, request.commit, services.store,
                                options)
            if not outcome.contended or attempt > request.retries:
                return outcome
            services.events(RunContended(outcome.run_id, outcome.contended_reason or "",
                                         attempt, request.retries + 1, request.retry_delay_s))
            time.sleep(request.retry_delay_s)
    raise AssertionError("unreachable: the last attempt returns")
