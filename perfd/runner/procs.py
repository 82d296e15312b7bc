"""Run one child process from an argv list, with a timeout that kills its whole process group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

STDERR_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if perfd dies, so no benchmark outlives it.

    Linux sends it when the *thread* that started the child exits: start benchmarks from a
    long-lived thread (the daemon's worker), not from a short-lived pool thread.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the process-group kill on timeout still applies


@dataclass(frozen=True, slots=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int  # negative: killed by that signal (subprocess convention)
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        return "\n".join(self.stderr.rstrip().splitlines()[-lines:])

    def stderr_section(self, label: str = "stderr") -> str:
        """The stderr tail as a block to append to an error message ("" when empty)."""
        tail = self.stderr_tail()
        return f"\n--- {label} (last lines) ---\n{tail}" if tail else ""

    def describe_failure(self) -> str | None:
        """Why the process failed, in words, or None if it exited 0."""
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f} s and was killed"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"was killed by {name}"
        if self.returncode > 0:
            return f"exited with status {self.returncode}"
        return None


def run_process(
    argv: Sequence[str],
    *,
    timeout_s: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Run argv (never through a shell); on timeout SIGKILL its process group.

    Raises FileNotFoundError / PermissionError when the program cannot be started.
    """
    return run_together([(argv, (), env)], timeout_s=timeout_s, cwd=cwd)[0]


def run_together(
    commands: Sequence[tuple[Sequence[str], Sequence[int], Mapping[str, str] | None]],
    *,
    timeout_s: float,
    cwd: Path | None = None,
    on_started: Callable[[], None] | None = None,
) -> list[Completed]:
    """Run (argv, fds to pass, env or None) commands at once, each with its own timeout.

    Each child gets only the listed inherited descriptors (besides stdio). On timeout a
    child's process group is SIGKILLed; on any error or Ctrl-C in perfd all of them are.
    on_started runs once all of them have started. Raises FileNotFoundError /
    PermissionError when a program cannot be started.
    """
    started = time.monotonic()
    procs: list[subprocess.Popen[str]] = []
    try:
        for argv, fds, env in commands:
            # A new session makes the child the leader of its own process group, so a hung
            # harness and anything it forked are killed together.
            procs.append(subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                pass_fds=tuple(fds),
                text=True,
                errors="replace",
            ))
        if on_started is not None:
            on_started()
        if len(procs) == 1:
            return [_finish(procs[0], commands[0][0], timeout_s, started)]
        pool = ThreadPoolExecutor(len(procs))
        try:
            futures = [pool.submit(_finish, proc, argv, timeout_s, started)
                       for proc, (argv, _, _) in zip(procs, commands, strict=True)]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=False)  # on Ctrl-C the kills below end the waiting threads
    except BaseException:
        # Ctrl-C or an error in perfd: never leave a benchmark running behind us.
        for proc in procs:
            _kill_group(proc.pid)
            proc.wait()
        raise


def _finish(proc: subprocess.Popen[str], argv: Sequence[str], timeout_s: float,
            started: float) -> Completed:
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=max(0.0, started + timeout_s - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        stdout, stderr = proc.communicate()
    return Completed(
        argv=tuple(argv),
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
