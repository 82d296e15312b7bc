"""Run harness processes: one benchmark per process, N processes each, spread over rounds."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from perfd.errors import HarnessError
from perfd.model import HarnessContext, ProcessResult
from perfd.runner.parse import parse_harness_json
from perfd.runner.procs import Completed, run_process, run_together

LIST_TIMEOUT_S = 30.0
_ERE_SPECIAL = set(".[]{}()\\*+?^$|")


def ere_escape(text: str) -> str:
    """Escape text for a POSIX extended regular expression (the harness's --filter)."""
    return "".join("\\" + c if c in _ERE_SPECIAL else c for c in text)


@dataclass(frozen=True, slots=True)
class Measure:
    """How to measure one benchmark (resolved from the suite)."""

    name: str
    warmup: int
    samples: int
    min_time_s: float
    repetitions: int
    cpus: tuple[int, ...]
    timeout_s: float
    counters: bool


@dataclass(frozen=True, slots=True)
class PlannedProcess:
    benchmark: Measure
    repetition: int
    round_index: int
    cpu: int | None


def plan_rounds(measures: Sequence[Measure], rng: random.Random) -> list[PlannedProcess]:
    """Interleave benchmarks: round r runs repetition r of every benchmark, in shuffled order.

    Slow drift of the machine (thermal, background load) then lands on every benchmark
    evenly instead of on whichever happened to run last.
    """
    plan = []
    for r in range(max((m.repetitions for m in measures), default=0)):
        this_round = [m for m in measures if m.repetitions > r]
        rng.shuffle(this_round)
        for m in this_round:
            cpu = m.cpus[r % len(m.cpus)] if m.cpus else None
            plan.append(PlannedProcess(m, r, r, cpu))
    return plan


class HarnessRunner:
    """Talks to one built benchmark binary."""

    def __init__(
        self, binary: Path, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> None:
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self.env = env

    def argv(self, args: Sequence[str]) -> list[str]:
        return [str(self.binary), *self.extra_args, *args]

    def _run(self, args: Sequence[str], timeout_s: float) -> Completed:
        try:
            return run_process(self.argv(args), timeout_s=timeout_s, env=self.env)
        except (FileNotFoundError, PermissionError) as exc:
            raise HarnessError(f"cannot start harness {self.binary}: {exc.strerror}") from None

    def list_benchmarks(self) -> list[str]:
        """Names the binary offers (`--list`)."""
        done = self._run(["--list"], LIST_TIMEOUT_S)
        failure = done.describe_failure()
        if failure:
            raise HarnessError(
                f"harness {self.binary} --list {failure}" + _tail(done)
            )
        return [line.strip() for line in done.stdout.splitlines() if line.strip()]

    def run_one(self, planned: PlannedProcess) -> tuple[ProcessResult, HarnessContext]:
        """Run one process of one benchmark; raise HarnessError with the cause and stderr tail."""
        done = self._run(_harness_args(planned), planned.benchmark.timeout_s)
        return self._result(planned, done)

    def _result(self, planned: PlannedProcess, done: Completed,
                side: str = "") -> tuple[ProcessResult, HarnessContext]:
        m = planned.benchmark
        where = f"benchmark {m.name!r} (process {planned.repetition + 1} of {m.repetitions}{side})"
        failure = harness_failure(done, m.timeout_s, "(per-process timeout) ")
        if failure:
            raise HarnessError(f"{where}: harness {failure}" + _tail(done))
        try:
            output = parse_harness_json(done.stdout)
        except HarnessError as exc:
            raise HarnessError(f"{where}: {exc}" + _tail(done)) from None
        matches = [b for b in output.benchmarks if b.name == m.name]
        if len(matches) != 1:
            got = ", ".join(b.name for b in output.benchmarks) or "nothing"
            raise HarnessError(f"{where}: expected results for {m.name!r}, harness reported {got}")
        if len(matches[0].samples_ns) != m.samples:
            raise HarnessError(
                f"{where}: asked for {m.samples} samples, harness reported "
                f"{len(matches[0].samples_ns)}"
            )
        return ProcessResult(
            benchmark=m.name,
            repetition=planned.repetition,
            round_index=planned.round_index,
            cpu=planned.cpu,
            exit_code=done.returncode,
            duration_s=done.duration_s,
            samples=matches[0],
            counters_unavailable_reason=output.context.counters_unavailable_reason,
        ), output.context


def run_in_turns(runners: Sequence[HarnessRunner], planned: PlannedProcess, *, first: int,
                 labels: Sequence[str]) -> list[tuple[ProcessResult, HarnessContext]]:
    """Run one process of the same benchmark per runner, taking turns sample by sample.

    The processes (pinned alike by planned.cpu) pass a token around a ring of pipes
    (harness --turns IN,OUT): runner k's sample i runs right after runner k-1's, so
    sample i of every side sees the same state of a noisy machine. runners[first] starts.
    """
    n = len(runners)
    pipes = [os.pipe() for _ in range(n)]  # pipes[k]: runner k reads its turns from it
    open_fds = {fd for pipe in pipes for fd in pipe}

    def close_ours() -> None:  # once the children hold them: a side whose partner died reads EOF
        while open_fds:
            os.close(open_fds.pop())

    try:
        commands = []
        for k, runner in enumerate(runners):
            read_end, write_end = pipes[k][0], pipes[(k + 1) % n][1]
            argv = runner.argv([*_harness_args(planned), "--turns", f"{read_end},{write_end}"])
            commands.append((argv, (read_end, write_end), runner.env))
        os.write(pipes[first][1], b"t")
        try:
            done = run_together(commands, timeout_s=planned.benchmark.timeout_s,
                                on_started=close_ours)
        except (FileNotFoundError, PermissionError) as exc:
            raise HarnessError(f"cannot start harness {exc.filename}: {exc.strerror}") from None
    finally:
        close_ours()
    results, errors = [], []
    for runner, d, label in zip(runners, done, labels, strict=True):
        try:
            results.append(runner._result(planned, d, f", {label}"))
        except HarnessError as exc:  # report every side: one that hung stalls its partner
            errors.append(str(exc))
    if errors:
        raise HarnessError("\n".join(errors))
    return results


def _harness_args(planned: PlannedProcess) -> list[str]:
    m = planned.benchmark
    args = [
        "--filter", f"^{ere_escape(m.name)}$", "--json",
        "--warmup", str(m.warmup), "--samples", str(m.samples),
        "--min-time", repr(m.min_time_s),
    ]
    if planned.cpu is not None:
        args += ["--cpu", str(planned.cpu)]
    if m.counters:
        args.append("--counters")
    return args


def harness_failure(done: Completed, timeout_s: float, timeout_note: str = "") -> str | None:
    """Why a harness process failed, with the harness's own reason when its JSON gives one
    (it exits with the number of failed benchmarks); None when it exited 0."""
    if done.timed_out:
        return f"timed out after {timeout_s:g} s {timeout_note}and was killed"
    failure = done.describe_failure()
    if failure and done.returncode > 0:
        try:
            parse_harness_json(done.stdout)
        except HarnessError as exc:
            failure += f": {exc}"
    return failure


def _tail(done: Completed) -> str:
    return done.stderr_section("harness stderr")
