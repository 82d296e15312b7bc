"""The daemon's own cost and reaction time, on the real `perfd daemon` process.

1. Quiet while a benchmark runs: a job whose harness takes 10 s or more (the fake harness of the
   tests, sleeping in each of its 3 processes so the benchmark itself uses no CPU); the
   daemon process's own CPU time (user + system of all its threads, read from
   /proc/PID/stat, children excluded) over that window, in percent of one core. Target: at
   most 1%.
2. From a signed webhook to the benchmark process starting, on an idle daemon: the time
   from just before the POST to the first harness process's start (the harness writes its
   start time), over ``--pushes`` new commits. Target: at most 1 s.

Prints a Markdown block for benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_daemon.py [--pushes 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfd.locks import holding_machine  # noqa: E402
from perfd.runner.fingerprint import cpu_model  # noqa: E402
from tests.daemon_process import DaemonProcess, daemon_file, free_port, wait_for  # noqa: E402
from tests.integration.conftest import daemon_suite  # noqa: E402

GIT = ["git", "-c", "user.name=b", "-c", "user.email=b@perfd.invalid", "-c",
       "commit.gpgsign=false"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def commit(repo: Path, i: int) -> str:
    (repo / "version.txt").write_text(f"{i}\n")
    subprocess.run([*GIT, "-C", str(repo), "add", "version.txt"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "-m", f"commit {i}"], check=True)
    return subprocess.run([*GIT, "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="perfd-bench-daemon-") as tmp:
        tmp_path = Path(tmp)
        repo = tmp_path / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        shas = [commit(repo, 0)]
        work = tmp_path / "work"
        (work / "suites").mkdir(parents=True)
        (work / "suites" / "fake.yaml").write_text(daemon_suite(repo))
        port = free_port()
        daemon_file(work, port, poll="{interval_s: 60}", jobs="{burst: all}")
        spans = tmp_path / "spans.log"

        # 1. a benchmark of about 10 s: harness processes sleeping 5 s each
        d = DaemonProcess(work, port, extra_env={"FAKE_HARNESS_SPAN_LOG": str(spans),
                                                 "FAKE_HARNESS_SLEEP": "5"})
        d.wait_ready()
        time.sleep(2)  # the start-up poll and its git calls are over
        push = {"ref": "refs/heads/main", "after": shas[0], "before": "0" * 40,
                "commits": [{"id": shas[0]}], "repository": {"clone_url": str(repo)}}
        assert d.webhook(push)[0] == 202
        time.sleep(1.0)  # claimed, built (a copy) and the first harness process started
        cpu0, wall0 = cpu_seconds(d.proc.pid), time.monotonic()
        wait_for("the three processes", lambda: spans.exists() and len(
            spans.read_text().splitlines()) >= 3, 60, 0.05)
        cpu1, wall1 = cpu_seconds(d.proc.pid), time.monotonic()
        quiet = (cpu1 - cpu0) / (wall1 - wall0) * 100.0
        d.stop()

        # 2. webhook -> harness start, idle daemon, short benchmarks
        spans.unlink()
        d = DaemonProcess(work, port, extra_env={"FAKE_HARNESS_SPAN_LOG": str(spans)})
        d.wait_ready()
        latencies = []
        for i in range(1, args.pushes + 1):
            sha = commit(repo, i)
            wait_for("an idle queue", lambda: all(
                j["state"] not in ("QUEUED", "RUNNING") for j in d.jobs()), 60, 0.1)
            time.sleep(1.5)  # idle: the worker is waiting for work
            before = len(spans.read_text().splitlines()) if spans.exists() else 0
            sent = time.time()
            assert d.webhook({**push, "after": sha, "commits": [{"id": sha}]})[0] == 202
            wait_for("the harness", lambda b=before: spans.exists() and len(
                spans.read_text().splitlines()) > b, 60, 0.005)
            began = float(spans.read_text().splitlines()[before].split()[1])
            latencies.append(began - sent)
        d.stop()
    print("\n".join([
        "## The daemon: its own CPU during a benchmark, webhook to benchmark start (issue 10)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model() or platform.processor()}, {os.cpu_count()} cores, Linux "
        f"{platform.release()}",
        f"- command: `{shlex.join(['.venv/bin/python', 'benchmarks/bench_daemon.py', *argv])}`",
        "- the real `perfd daemon` process (SQLite, the tests' fake harness), poll every 60 s",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| daemon CPU while a {wall1 - wall0:.1f} s benchmark runs (own threads, children "
        f"excluded) | {quiet:.2f}% of one core | <= 1% |",
        f"| signed webhook -> first harness process started, idle daemon (median of "
        f"{len(latencies)}) | {statistics.median(latencies) * 1000:.0f} ms | <= 1 s |",
        f"| same, slowest | {max(latencies) * 1000:.0f} ms | |",
    ]))
    return 0


if __name__ == "__main__":
    with holding_machine("benchmarks/bench_daemon.py"):
        sys.exit(main(sys.argv[1:]))
