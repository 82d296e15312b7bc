"""Bisection on real commits of the example project: one 2% culprit among 64 commits.

Builds ``--trials`` git repositories of examples/minilib, each a base commit and
``--commits`` commits after it; every commit appends a note to README.md except the culprit,
which sets the knob of ``--benchmark`` to ``--step-pct`` (default MINILIB_SLOW_PARSE_PCT 2:
request/parse ~2% slower from there on).
The culprit's position differs per trial (spread over 1..commits, shuffled by ``--seed``;
the first and last positions are always among them). Commits are made with fixed dates and
identities, so the commits before a culprit are the same in every repository and their
builds come from the build cache of a later trial, as on a daemon that measured them before.

Each trial runs the same flow as `perfd bisect --good <base> --bad <last> --benchmark
<benchmark> --threshold <pct>` (``perfd.flows.bisect.bisect``), under the machine lock, and
records what it named: the right commit, a range that contains it, or something wrong; and
the builds (commits built, and those the cache had), lock-step pairs and wall time it took.
Output is a Markdown block for benchmarks/RESULTS.md; progress goes to stderr.

    .venv/bin/python benchmarks/bench_bisect.py [--trials 10] [--commits 64] [--step-pct 2]
        [--threshold 1] [--benchmark request/parse|memory/chase|compute/crc32]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
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

from perfd.analysis.bisect import BisectResult, Outcome  # noqa: E402
from perfd.config import load_config_set  # noqa: E402
from perfd.context import Services  # noqa: E402
from perfd.events import Event  # noqa: E402
from perfd.flows.bisect import BisectRequest, bisect  # noqa: E402
from perfd.runner.fingerprint import cpu_model  # noqa: E402
from tests.example_suite import write_example_suite  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@perfd.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@perfd.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
# The benchmarks a culprit can slow, each with its knob in include/minilib_tuning.h.
KNOBS = {"request/parse": "MINILIB_SLOW_PARSE_PCT", "memory/chase": "MINILIB_SLOW_MEMORY_PCT",
         "compute/crc32": "MINILIB_SLOW_COMPUTE_PCT"}
def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV, **(env or {})}).stdout.strip()


def make_repository(dest: Path, commits: int, culprit: int, step_pct: float, knob: str) -> list[str]:
    """The base commit and ``commits`` more; commit ``culprit`` (1-based) sets the knob.
    Returns every sha, the base first."""
    shutil.copytree(ROOT / "examples" / "minilib", dest,
                    ignore=shutil.ignore_patterns("build", "*.o", "*.a", "*.d"))
    for path in dest.rglob("*"):  # only the executable bit is recorded: normalise it
        if path.is_file():
            path.chmod(0o644)
    git(dest, "init", "-q", "-b", "main")
    tuning = dest / "include" / "minilib_tuning.h"
    shas = []
    for i in range(commits + 1):
        if i == culprit:
            text = tuning.read_text()
            assert f"#define {knob} 0\n" in text, f"{knob} not found in {tuning}"
            tuning.write_text(text.replace(f"#define {knob} 0\n", f"#define {knob} {step_pct:g}\n"))
            message = f"{knob}: {step_pct:g}% more work"
        elif i == 0:
            message = "minilib: initial import"
        else:
            with open(dest / "README.md", "a") as f:
                f.write(f"\n<!-- note {i} -->\n")
            message = f"docs: note {i}"
        git(dest, "add", "-A")
        when = f"@{1_790_000_000 + 60 * i} +0000"
        git(dest, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message,
            env={"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
        shas.append(git(dest, "rev-parse", "HEAD"))
    return shas


def write_config(work: Path, state: Path, repo: Path, args: argparse.Namespace) -> Path:
    write_example_suite(work / "suites", repo, name="bisect-bench", benchmarks=[args.benchmark],
                        defaults={"samples": args.samples, "min_time_s": args.min_time,
                                  "cpus": [args.cpu], "threshold_pct": args.threshold})
    # one data dir for every trial: the build cache carries over between them
    (work / "perfd.yaml").write_text(f"machine_id: bench\ndata_dir: {state}\n")
    return work / "perfd.yaml"


def culprit_positions(trials: int, commits: int, seed: int) -> list[int]:
    """``trials`` positions spread evenly over 1..commits (both ends included), shuffled."""
    if trials == 1:
        return [commits]
    spread = sorted({round(1 + k * (commits - 1) / (trials - 1)) for k in range(trials)})
    random.Random(seed).shuffle(spread)
    return spread


@dataclass(frozen=True, slots=True)
class Trial:
    culprit: int
    result: BisectResult
    seconds: float
    shas: tuple[str, ...]

    @property
    def named(self) -> int | None:
        """The position of the commit named as first bad, if one was."""
        c = self.result.culprit
        return self.shas.index(c.sha) if c is not None else None

    @property
    def verdict(self) -> str:
        if self.result.outcome is Outcome.FOUND:
            return "right" if self.named == self.culprit else "wrong"
        if self.result.outcome is Outcome.RANGE:
            inside = self.shas[self.culprit] in {c.sha for c in self.result.suspects}
            return "range, contains it" if inside else "range, misses it"
        return "nothing to bisect"


def progress(event: Event) -> None:
    if os.environ.get("BENCH_VERBOSE") or event.message.startswith("bisect:"):
        print(f"  {event.message}", file=sys.stderr, flush=True)


def run_trial(tmp: Path, trial: int, culprit: int, args: argparse.Namespace) -> Trial:
    repo = tmp / f"repo-{trial}"
    shas = make_repository(repo, args.commits, culprit, args.step_pct, KNOBS[args.benchmark])
    work = tmp / f"work-{trial}"
    config = write_config(work, tmp / "state", repo, args)
    os.chdir(work)
    services = Services.create(load_config_set(config, cwd=work), events=progress)
    started = time.perf_counter()
    try:
        result = bisect(services, BisectRequest(
            suite="bisect-bench", good=shas[0], bad=shas[-1], benchmark=args.benchmark,
            threshold_pct=args.threshold, alpha=args.alpha, min_pairs=args.min_pairs,
            max_pairs=args.max_pairs, max_steps=args.max_steps, seed=args.seed + trial))
    finally:
        services.close()
        os.chdir(ROOT)
    return Trial(culprit, result, time.perf_counter() - started, tuple(shas))


def median_and_max(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} (max {format(max(values), fmt)})"


def report(args: argparse.Namespace, argv: list[str], trials: list[Trial], seconds: float) -> str:
    right = sum(t.verdict == "right" for t in trials)
    contains = sum(t.verdict == "range, contains it" for t in trials)
    out = [
        f"## Bisection: one {args.step_pct:g}% culprit among {args.commits} commits (issue 12)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model() or platform.processor() or 'unknown CPU'}, "
        f"{os.cpu_count()} cores, Linux {platform.release()}, load average "
        f"{os.getloadavg()[0]:.2f} at the end",
        f"- command: `{shlex.join(['.venv/bin/python', 'benchmarks/bench_bisect.py', *argv])}`",
        f"- what: {args.benchmark} slower by {args.step_pct:g}% ({KNOBS[args.benchmark]}="
        f"{args.step_pct:g}) from the "
        f"culprit on; `perfd bisect --threshold {args.threshold:g}` (alpha {args.alpha:g}, "
        f"{args.min_pairs}..{args.max_pairs} pairs a comparison, twice that for an unknown "
        f"answer, at most {args.max_steps} commits), samples {args.samples} x "
        f"{args.min_time * 1000:g} ms, CPU {args.cpu}; the build cache is shared by the trials",
        "",
        "| trial | culprit | outcome | named | builds (cached) | pairs | wall time |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for i, t in enumerate(trials, start=1):
        r = t.result
        named = str(t.named) if t.named is not None else (
            f"{t.shas.index(r.last_good.sha) + 1}..{t.shas.index(r.first_bad.sha)}"
            if r.outcome is Outcome.RANGE else "-")
        out.append(f"| {i} | {t.culprit} | {t.verdict} | {named} | {r.builds} "
                   f"({r.cached_builds}) | {r.pairs} | {t.seconds:.0f} s |")
    out += [
        "",
        "| figure | value |",
        "|---|---|",
        f"| **named the right commit** | **{right} of {len(trials)}** bisections"
        + (f" ({contains} more ended with a range that contains it)" if contains else "") + " |",
        f"| builds per bisection, median | {median_and_max([t.result.builds for t in trials], '.0f')} |",
        f"| lock-step pairs per bisection, median | "
        f"{median_and_max([t.result.pairs for t in trials], '.0f')} |",
        f"| wall time per bisection, median | "
        f"{median_and_max([t.seconds for t in trials], '.0f')} s |",
        f"| whole benchmark | {seconds / 60:.1f} min |",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="bisections, each its own culprit")
    parser.add_argument("--commits", type=int, default=64, help="commits after the base (64)")
    parser.add_argument("--step-pct", type=float, default=2.0, help="the culprit's slowdown (2)")
    parser.add_argument("--benchmark", choices=sorted(KNOBS), default="request/parse",
                        help="the benchmark the culprit slows, by its knob (request/parse)")
    parser.add_argument("--threshold", type=float, default=1.0,
                        help="perfd bisect --threshold, percent (1: half the step)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--min-pairs", type=int, default=5)
    parser.add_argument("--max-pairs", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=0.01, help="min_time_s per sample")
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)),
                        help="the benchmark CPU (default: the highest this process may use)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.trials < 1 or args.commits < 2:
        parser.error("need --trials >= 1 and --commits >= 2")
    started = time.perf_counter()
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="perfd-bench-bisect-") as tmp:
        positions = culprit_positions(args.trials, args.commits, args.seed)
        for i, culprit in enumerate(positions):
            print(f"trial {i + 1}/{len(positions)}: culprit at {culprit} of {args.commits}",
                  file=sys.stderr, flush=True)
            t = run_trial(Path(tmp), i, culprit, args)
            trials.append(t)
            print(f"trial {i + 1}: {t.verdict}, {t.result.builds} builds, {t.result.pairs} "
                  f"pairs, {t.seconds:.0f} s: {t.result.summary}", file=sys.stderr, flush=True)
    print(report(args, argv, trials, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
