"""`perfd run` (and every history run of the daemon): one suite at one commit, stored."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from perfd.context import Services
from perfd.events import Event, RunBegun, RunRecovered
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


def run(services: Services, request: RunRequest) -> RunOutcome:
    """Build and measure a suite at a commit under the machine lock; store it atomically.

    Raises ConfigError, RepositoryError, BuildError, HarnessError, StorageError, MachineBusyError."""
    suite = services.suite(request.suite)
    repo = services.repository(suite, request.repository)
    with services.machine.hold(f"a run of suite {suite.name} at {request.commit}"):
        recover_interrupted(services)
        return run_suite(suite, repo, services.builder, request.commit, services.store,
                         run_options(services, tier=request.tier, seed=request.seed,
                                     output_dir=request.output_dir))
