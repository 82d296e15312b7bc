"""Progress events: what a flow tells its front door while it works.

Flows never print. They hand typed events to an ``EventSink``; the CLI prints each event's
``message`` on stderr, the daemon will turn them into log lines and metrics. An event is a
frozen value with the facts as fields, so a sink can count builds or time pairs without
parsing text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every progress event."""

    @property
    def message(self) -> str:
        raise NotImplementedError


EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """The sink that ignores everything (``--quiet``, tests)."""


@dataclass(frozen=True, slots=True)
class MachineWaiting(Event):
    """The machine lock is held by another process; this one waits for it."""

    holder: str  # what the holder is doing, e.g. "run 12 of suite example"
    holder_pid: int | None

    @property
    def message(self) -> str:
        pid = f" (pid {self.holder_pid})" if self.holder_pid else ""
        return f"waiting for the machine: {self.holder}{pid} holds it"


@dataclass(frozen=True, slots=True)
class MachineAcquired(Event):
    """The machine lock was taken after waiting ``waited_s`` seconds."""

    waited_s: float

    @property
    def message(self) -> str:
        return f"got the machine after waiting {self.waited_s:.1f} s"


@dataclass(frozen=True, slots=True)
class RunBegun(Event):
    """A run row exists (RUNNING); its processes are about to start."""

    run_id: int
    suite: str
    commit_sha: str
    tier: str

    @property
    def message(self) -> str:
        return f"run {self.run_id} started: suite {self.suite} at {self.commit_sha[:12]} ({self.tier})"


@dataclass(frozen=True, slots=True)
class RunContended(Event):
    """Attempt ``attempt`` of ``attempts`` came out CONTENDED; it is measured again."""

    run_id: int
    reason: str
    attempt: int
    attempts: int
    retry_in_s: float

    @property
    def message(self) -> str:
        return (f"run {self.run_id} is CONTENDED ({self.reason}); measuring again in "
                f"{self.retry_in_s:g} s (attempt {self.attempt + 1} of {self.attempts})")


@dataclass(frozen=True, slots=True)
class RunRecovered(Event):
    """A RUNNING run whose perfd process is gone was marked FAILED."""

    run_id: int

    @property
    def message(self) -> str:
        return f"run {self.run_id} was interrupted earlier (its perfd process is gone): marked FAILED"


@dataclass(frozen=True, slots=True)
class RunNotMarked(Event):
    """A failed run could not be marked FAILED (the store itself failed)."""

    run_id: int
    error: str

    @property
    def message(self) -> str:
        return f"could not mark run {self.run_id} FAILED ({self.error}); the next run will"


@dataclass(frozen=True, slots=True)
class BuildStarted(Event):
    suite: str
    commit_sha: str

    @property
    def message(self) -> str:
        return f"building {self.suite} at {self.commit_sha[:12]}"


@dataclass(frozen=True, slots=True)
class BuildFinished(Event):
    binary: str
    cached: bool

    @property
    def message(self) -> str:
        return f"build {'reused' if self.cached else 'done'}: {self.binary}"


@dataclass(frozen=True, slots=True)
class ProcessStarted(Event):
    """Process ``index`` of ``total`` of a solo run starts."""

    index: int
    total: int
    benchmark: str
    repetition: int  # 1-based
    repetitions: int

    @property
    def message(self) -> str:
        return (f"[{self.index}/{self.total}] {self.benchmark} "
                f"process {self.repetition}/{self.repetitions}")


@dataclass(frozen=True, slots=True)
class PairStarted(Event):
    """Lock-step pair ``pair`` (1-based) of a benchmark starts; ``first_sha`` takes the first turn."""

    pair: int
    benchmark: str
    first_sha: str

    @property
    def message(self) -> str:
        return f"pair {self.pair}: {self.benchmark} (taking turns, {self.first_sha[:8]} first)"


@dataclass(frozen=True, slots=True)
class CompareStarted(Event):
    """A compare begins: in interleaved pairs (run ids None) or on stored runs."""

    baseline_sha: str
    current_sha: str
    min_pairs: int
    max_pairs: int
    baseline_run_id: int | None = None
    current_run_id: int | None = None

    @property
    def message(self) -> str:
        if self.baseline_run_id is not None:
            return (f"comparing stored runs {self.baseline_run_id} ({self.baseline_sha[:12]}) and "
                    f"{self.current_run_id} ({self.current_sha[:12]})")
        return (f"comparing {self.baseline_sha[:12]} and {self.current_sha[:12]} in interleaved "
                f"pairs ({self.min_pairs}..{self.max_pairs} per benchmark)")


@dataclass(frozen=True, slots=True)
class Profiling(Event):
    benchmark: str
    commit_sha: str
    side: str  # baseline | current

    @property
    def message(self) -> str:
        return f"profiling {self.benchmark} at {self.commit_sha[:12]} ({self.side})"


@dataclass(frozen=True, slots=True)
class EvidenceFailed(Event):
    """Evidence for ``subject`` could not be collected; the flow goes on without it."""

    subject: str
    error: str

    @property
    def message(self) -> str:
        return f"evidence for {self.subject} not collected: {self.error}"
