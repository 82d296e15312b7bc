"""Time to verdict of `perfd gate` on the example suite, for a 5% slowdown (issue 12).

A temporary repository of examples/minilib with two commits: the import (on ``main``) and,
on a branch, MINILIB_SLOW_PARSE_PCT 0 -> 5 (request/parse about 5% slower). Each repetition
runs the real `perfd gate --current <slow> --target-branch main` as a CI does, in a fresh data
directory, so the time covers everything a CI job waits for: resolving the merge base,
building both commits (cold build cache), the adaptive lock-step pairs of the whole suite, the
budgets, evidence for the regressions (unless --no-evidence) and the verdict. A 5% slowdown
is only HIGH-confidence beyond a threshold below 5%, so the suite's benchmarks are judged
with ``--threshold`` (default 2.5%).

Targets: at most 60 s to a HIGH-confidence verdict on this machine (issue 12); the seed's
per-commit smoke budget is 30 s.

Prints a Markdown block for benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_gate.py [--repetitions 5] [--threshold 2.5] [--no-evidence]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfd.locks import holding_machine  # noqa: E402
from perfd.runner.fingerprint import cpu_model  # noqa: E402

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@perfd.invalid", "-c",
       "commit.gpgsign=false"]
TARGET_S = 60.0  # issue 12
SEED_BUDGET_S = 30.0  # the seed's per-commit smoke budget
KNOB = "#define MINILIB_SLOW_PARSE_PCT"


@dataclass(frozen=True)
class Repetition:
    wall_s: float
    exit_code: int
    verdict: str
    parse_change_pct: float | None
    parse_confidence: str | None
    pairs: int  # most pairs any benchmark needed
    attempts: int


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def make_repo(dest: Path, slowdown_pct: float) -> str:
    """minilib at main, and a branch with the parser slower by ``slowdown_pct``; returns the
    slow commit."""
    shutil.copytree(ROOT / "examples" / "minilib", dest,
                    ignore=shutil.ignore_patterns("build", "*.o", "*.a", "*.d"))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "minilib: initial import")
    git(dest, "checkout", "-q", "-b", "change")
    tuning = dest / "include" / "minilib_tuning.h"
    text = tuning.read_text()
    if f"{KNOB} 0\n" not in text:
        raise SystemExit(f"error: {tuning} has no '{KNOB} 0' line to turn")
    tuning.write_text(text.replace(f"{KNOB} 0\n", f"{KNOB} {slowdown_pct:g}\n"))
    git(dest, "commit", "-q", "-am", f"request: parse {slowdown_pct:g}% slower")
    return git(dest, "rev-parse", "HEAD")


def make_work(work: Path, repo: Path) -> Path:
    """A data-less perfd configuration with the example suite (as shipped) on ``repo``."""
    (work / "suites").mkdir(parents=True)
    shutil.copytree(ROOT / "suites" / "example", work / "suites" / "example")
    text = (ROOT / "suites" / "example.yaml").read_text()
    (work / "suites" / "example.yaml").write_text(
        text.replace("repository: ../.perfd/demo-repo", f"repository: {repo}"))
    shutil.copy(ROOT / "budgets.yaml", work / "budgets.yaml")
    config = work / "perfd.yaml"
    config.write_text("machine_id: bench-gate\ndata_dir: state\nsuites_dir: suites\n"
                      "budgets: budgets.yaml\n")
    return config


def gate_argv(config: Path, current: str, args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "perfd", "-q", "--config", str(config), "gate",
            "--suite", "example", "--current", current, "--target-branch", "main",
            "--threshold", f"{args.threshold:g}", "--json"]
    return argv + (["--no-evidence"] if not args.evidence else [])


def one(tmp: Path, index: int, repo: Path, current: str, args: argparse.Namespace,
        lock: Path) -> Repetition:
    config = make_work(tmp / f"work-{index}", repo)  # a fresh data dir: cold build cache
    # This script holds the machine; the gate it starts takes a lock of its own.
    env = {**os.environ, "PERFD_MACHINE_LOCK": str(lock)}
    env.pop("PERFD_CONFIG", None)
    started = time.monotonic()
    done = subprocess.run(gate_argv(config, current, args), capture_output=True, text=True,
                          env=env, cwd=tmp, timeout=1800)
    wall = time.monotonic() - started
    if done.returncode not in (0, 1, 3):
        raise SystemExit(f"perfd gate failed (exit {done.returncode}):\n{done.stderr}")
    doc = json.loads(done.stdout)
    parse = next((b for b in doc["benchmarks"]
                  if (b["benchmark"], b["metric"]) == ("request/parse", "time")), None)
    return Repetition(wall, done.returncode, doc["verdict"],
                      parse["change_pct"] if parse else None,
                      parse["confidence"] if parse else None,
                      max((b["pairs"] or 0 for b in doc["benchmarks"]), default=0),
                      doc["attempts"])


def report(argv: list[str], args: argparse.Namespace, reps: list[Repetition]) -> str:
    walls = [r.wall_s for r in reps]
    median = statistics.median(walls)
    blocked_high = sum(r.verdict == "BLOCKED" and r.parse_confidence == "HIGH" for r in reps)
    rows = [f"| {i} | {r.wall_s:.1f} | {r.verdict} (exit {r.exit_code}) | "
            + (f"{r.parse_change_pct:+.1f}%" if r.parse_change_pct is not None else "-")
            + f" | {r.parse_confidence or '-'} | {r.pairs} | {r.attempts} |"
            for i, r in enumerate(reps, start=1)]
    verdict_60 = "met" if median <= TARGET_S else "missed"
    verdict_30 = ("within" if median <= SEED_BUDGET_S
                  else f"{median - SEED_BUDGET_S:.1f} s over")
    return "\n".join([
        "## `perfd gate`: time to verdict for a 5% slowdown (issue 12)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model() or platform.processor()}, {os.cpu_count()} cores, Linux "
        f"{platform.release()}",
        f"- command: `{shlex.join(['.venv/bin/python', 'benchmarks/bench_gate.py', *argv])}`",
        f"- each repetition: `perfd gate --suite example --current <slow> --target-branch main "
        f"--threshold {args.threshold:g}{'' if args.evidence else ' --no-evidence'}` in a fresh "
        "data dir (merge base, both builds from a cold cache, adaptive lock-step pairs of the "
        f"whole suite as shipped, budgets, {'evidence, ' if args.evidence else ''}verdict); "
        f"MINILIB_SLOW_PARSE_PCT {args.slowdown:g}",
        "",
        "| # | wall (s) | verdict | request/parse change | confidence | pairs (most) | "
        "attempts |",
        "|---:|---:|---|---:|---|---:|---:|",
        *rows,
        "",
        f"Median {median:.1f} s (min {min(walls):.1f}, max {max(walls):.1f}) over "
        f"{len(reps)} repetitions; BLOCKED at HIGH confidence in {blocked_high} of "
        f"{len(reps)}. Target {TARGET_S:.0f} s: {verdict_60}. The seed's {SEED_BUDGET_S:.0f} s "
        f"per-commit smoke budget: {verdict_30}.",
    ])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--slowdown", type=float, default=5.0,
                        help="MINILIB_SLOW_PARSE_PCT of the change (5)")
    parser.add_argument("--threshold", type=float, default=2.5,
                        help="magnitude threshold in percent the gate judges with (2.5)")
    parser.add_argument("--no-evidence", dest="evidence", action="store_false",
                        help="time the gate without profiling the regressions")
    args = parser.parse_args(argv)
    if args.repetitions < 1 or not args.threshold > 0 or not args.slowdown > 0:
        parser.error("--repetitions must be >= 1, --threshold and --slowdown > 0")
    with tempfile.TemporaryDirectory(prefix="perfd-bench-gate-") as name:
        tmp = Path(name)
        current = make_repo(tmp / "repo", args.slowdown)
        reps = []
        for i in range(1, args.repetitions + 1):
            reps.append(one(tmp, i, tmp / "repo", current, args, tmp / "machine.lock"))
            print(f"bench_gate: repetition {i}: {reps[-1].wall_s:.1f} s, {reps[-1].verdict}",
                  file=sys.stderr, flush=True)
    print(report(argv, args, reps))
    return 0


if __name__ == "__main__":
    with holding_machine("benchmarks/bench_gate.py"):
        sys.exit(main(sys.argv[1:]))
