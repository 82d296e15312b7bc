"""The machine lock: two perfd processes on one machine take turns, a dead holder never keeps
the machine, and --no-wait fails at once with exit 7 naming the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfd.errors import EXIT_BUSY
from perfd.locks import MachineLock

pytestmark = pytest.mark.slow


def perfd(workspace, lock: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """A real perfd process in the workspace, with its own machine-lock path."""
    return subprocess.Popen(
        [sys.executable, "-m", "perfd", *args], cwd=workspace.path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PERFD_MACHINE_LOCK": str(lock), **env})


def spans(log: Path) -> dict[int, list[tuple[float, float]]]:
    """perfd pid -> (start, end) of each harness process it ran."""
    out: dict[int, list[tuple[float, float]]] = {}
    for line in log.read_text().splitlines():
        pid, start, end = line.split()
        out.setdefault(int(pid), []).append((float(start), float(end)))
    return out


def wait_for_holder(lock: Path, pid: int, prefix: str = "", timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holder = MachineLock(lock).holder()
        if holder is not None and holder.pid == pid and holder.what.startswith(prefix):
            return holder.what
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never took the machine lock")


def test_two_concurrent_runs_take_turns_and_the_second_says_it_waited(workspace, tmp_path):
    workspace.suite()
    lock, log = tmp_path / "machine.lock", tmp_path / "spans.log"
    env = {"FAKE_HARNESS_SPAN_LOG": str(log), "FAKE_HARNESS_SLEEP": "0.15"}
    first = perfd(workspace, lock, "run", "--suite", "fake", "--commit", workspace.commits[0], **env)
    assert wait_for_holder(lock, first.pid, prefix="run ") == "run 1 of suite fake"
    second = perfd(workspace, lock, "run", "--suite", "fake", "--commit", workspace.commits[1], **env)
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "waiting for the machine" not in err1
    # the holder's note names its run once the run row exists
    assert f"perfd: waiting for the machine: run 1 of suite fake (pid {first.pid}) holds it" in err2
    assert "got the machine after waiting" in err2

    by_pid = spans(log)
    assert set(by_pid) == {first.pid, second.pid}
    assert len(by_pid[first.pid]) == len(by_pid[second.pid]) == 6  # 2 benchmarks x 3 processes
    # every harness process of the second run started after the last one of the first ended
    assert max(end for _, end in by_pid[first.pid]) <= min(start for start, _ in by_pid[second.pid])
    assert {r[0] for r in workspace.rows("SELECT status FROM benchmark_runs")} == {"COMPLETED"}


def test_a_killed_holder_never_keeps_the_machine(workspace, tmp_path):
    workspace.suite()
    lock, log = tmp_path / "machine.lock", tmp_path / "spans.log"
    victim = perfd(workspace, lock, "run", "--suite", "fake", "--commit", workspace.commits[0],
                   FAKE_HARNESS_SPAN_LOG=str(log), FAKE_HARNESS_SLEEP="30")
    wait_for_holder(lock, victim.pid, prefix="run ")  # its run row exists: it is measuring
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    # at once, without waiting: the kernel dropped the dead holder's lock
    after = perfd(workspace, lock, "--no-wait", "run", "--suite", "fake", "--commit",
                  workspace.commits[1])
    out, err = after.communicate(timeout=120)
    assert after.returncode == 0, err
    assert "interrupted earlier" in err  # the dead run is marked FAILED, not left RUNNING
    statuses = sorted(r[0] for r in workspace.rows("SELECT status FROM benchmark_runs"))
    assert statuses == ["COMPLETED", "FAILED"]


def test_no_wait_fails_at_once_naming_the_holder(workspace, tmp_path, cli, monkeypatch):
    workspace.suite()
    lock = tmp_path / "machine.lock"
    monkeypatch.setenv("PERFD_MACHINE_LOCK", str(lock))
    with MachineLock(lock).hold("run 41 of suite other"):
        started = time.monotonic()
        code, out, err = cli("--no-wait", "run", "--suite", "fake", "--commit", workspace.commits[0])
        assert time.monotonic() - started < 5
    assert code == EXIT_BUSY
    assert f"the machine is busy: run 41 of suite other (pid {os.getpid()}) holds it" in err
    assert "--no-wait" in err
    assert workspace.count("benchmark_runs") == 0  # nothing was started, nothing half-written
