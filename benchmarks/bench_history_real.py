"""History on real commits of the example project: reference-paired against solo.

Builds ``--histories`` git repositories of examples/minilib, each ``--commits`` commits long,
with a planted history (index: what the commit does):

    0   the base (also the suite's reference)
    5   layout: adds an unused function to request.c (code elsewhere moves)
    10  +2% on compute/crc32 (MINILIB_SLOW_COMPUTE_PCT 2)
    15  +20% on memory/chase, and 16 reverts it (a one-commit excursion)
    20  +1% on request/parse (which request/handle calls too)
    every other commit: a comment in README.md

and runs perfd on every commit twice through the same flows as `perfd run` + `perfd alert`
(confirmation included): reference-paired into one database and solo (``--solo``) into
another. A busy loop pinned to the benchmark CPU runs during commits ``--hog-from`` ..
``--hog-to``; their CONTENDED runs are measured again once it stops, as the daemon re-queues
them (history stays in commit order). Reports per mode: the noise of the series over commits
whose code did not change that benchmark (robust CV: 1.4826 MAD / median, within each planted
level), false alerts, which planted steps alerted at their exact commit, contended runs, and
the wall time per history point. Output is a Markdown block for benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_history_real.py [--histories 4] [--commits 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfd.config import load_config_set  # noqa: E402
from perfd.context import Services  # noqa: E402
from perfd.flows.alerts import AlertPolicy, EvaluateRequest, evaluate_alerts  # noqa: E402
from perfd.flows.analyze import AnalyzeRequest, analyze  # noqa: E402
from perfd.flows.references import SetReference, set_reference  # noqa: E402
from perfd.flows.run import RunRequest, run  # noqa: E402
from perfd.locks import holding_machine  # noqa: E402
from perfd.model import AlertAction  # noqa: E402
from perfd.runner.fingerprint import cpu_model  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@perfd.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@perfd.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
# planted steps: commit index -> (benchmark, knob macro, value), and what alert must name them
STEPS = {10: ("compute/crc32", "MINILIB_SLOW_COMPUTE_PCT", 2),
         15: ("memory/chase", "MINILIB_SLOW_MEMORY_PCT", 20),
         16: ("memory/chase", "MINILIB_SLOW_MEMORY_PCT", 0),
         20: ("request/parse", "MINILIB_SLOW_PARSE_PCT", 1)}
LAYOUT_AT = 5
BENCHMARKS = ("compute/crc32", "memory/chase", "request/parse", "request/handle")


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV, **(env or {})}).stdout.strip()


def make_history(dest: Path, commits: int, history: int) -> list[str]:
    shutil.copytree(ROOT / "examples" / "minilib", dest,
                    ignore=shutil.ignore_patterns("build", "*.o", "*.a", "*.d"))
    git(dest, "init", "-q", "-b", "main")
    shas = []
    tuning = dest / "include" / "minilib_tuning.h"
    for i in range(commits):
        if i in STEPS:
            _, macro, value = STEPS[i]
            text = tuning.read_text()
            lines = [f"#define {macro} {value}" if line.startswith(f"#define {macro} ") else line
                     for line in text.splitlines()]
            tuning.write_text("\n".join(lines) + "\n")
            message = f"{macro} = {value}"
        elif i == LAYOUT_AT:
            with open(dest / "src" / "request.c", "a") as f:
                f.write("\nint minilib_unused_layout_probe(int x);\n"
                        "int minilib_unused_layout_probe(int x) { return x * 7 + 3; }\n")
            message = "request: an unused helper (layout only)"
        else:
            with open(dest / "README.md", "a") as f:
                f.write(f"\n<!-- history {history} note {i} -->\n")
            message = f"docs: note {i}"
        git(dest, "add", "-A")
        when = f"@{1_790_000_000 + 60 * i} +0000"  # a minute apart: history is in commit order
        git(dest, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message,
            env={"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
        shas.append(git(dest, "rev-parse", "HEAD"))
    return shas


def expected_level(benchmark: str, index: int) -> int:
    """Which planted level a commit is at for a benchmark (0 = base); noise is measured
    within one level."""
    if benchmark == "compute/crc32":
        return int(index >= 10)
    if benchmark == "memory/chase":
        return int(index == 15)
    if benchmark in ("request/parse", "request/handle"):
        return int(index >= 20)
    return 0


def write_config(work: Path, repo: Path, threshold: float, min_time: float) -> Path:
    suite = (ROOT / "suites" / "example.yaml").read_text()
    suite = suite.replace("repository: ../.perfd/demo-repo   # made by `make demo`; relative to this file",
                          f"repository: {repo}")
    suite = suite.replace("  threshold_pct: 5\n", f"  threshold_pct: {threshold:g}\n")
    suite = suite.replace("  min_time_s: 0.01\n", f"  min_time_s: {min_time:g}\n")
    (work / "suites").mkdir(parents=True, exist_ok=True)
    (work / "suites" / "example.yaml").write_text(suite)
    # the benchmark sources live beside the suite: link them in
    (work / "suites" / "example").symlink_to(ROOT / "suites" / "example")
    (work / "perfd.yaml").write_text("machine_id: bench\ndata_dir: state\n")
    return work / "perfd.yaml"


@dataclass
class Mode:
    name: str
    services: Services
    seconds: list[float] = field(default_factory=list)
    alert_seconds: list[float] = field(default_factory=list)  # perfd alert, confirmation included
    refuted: int = 0  # suspected steps that the confirming A/B refuted
    contended: int = 0
    # alerts opened: (the commit they name as first bad, benchmark, metric)
    opened: list[tuple[int, str, str]] = field(default_factory=list)
    resolved: list[tuple[int, str, str]] = field(default_factory=list)
    values: dict[str, dict[int, float]] = field(default_factory=dict)  # benchmark -> commit -> value
    # `perfd analyze` over the whole history: (commit of the step, benchmark, worse?) of the
    # time steps beyond the threshold
    steps: list[tuple[int, str, bool]] = field(default_factory=list)


def measure_commit(mode: Mode, index: int, sha: str, solo: bool, shas: list[str]) -> bool:
    """Run and alert on one commit; False when the run was CONTENDED (to be measured again)."""
    started = time.perf_counter()
    report = run(mode.services, RunRequest(suite="example", commit=sha, solo=solo, retries=1,
                                           retry_delay_s=1.0))
    mode.seconds.append(time.perf_counter() - started)
    if report.outcome.contended:
        mode.contended += 1
        return False
    if report.ratios:
        for r in report.ratios:
            if r.metric == "time":
                mode.values.setdefault(r.benchmark, {})[index] = r.ratio
    else:
        for s in report.outcome.result.statistics:
            if s.metric == "time":
                mode.values.setdefault(s.benchmark, {})[index] = s.median
    started = time.perf_counter()
    evaluation = evaluate_alerts(mode.services, EvaluateRequest(policy=AlertPolicy(),
                                                                evidence=False))
    mode.alert_seconds.append(time.perf_counter() - started)
    mode.refuted += sum(d.action is AlertAction.REFUTED for d in evaluation.decisions)
    if os.environ.get("BENCH_VERBOSE"):
        for d in evaluation.decisions:
            if d.action not in (AlertAction.QUIET, AlertAction.SKIPPED):
                print(f"  {mode.name} {index}: {d.series.benchmark}/{d.series.metric} "
                      f"{d.action.value}: {d.note[:160]}", file=sys.stderr)
    for d in evaluation.decisions:
        if d.action is AlertAction.OPENED:
            alert, _events = mode.services.store.get_alert(d.alert_id or 0)
            mode.opened.append((shas.index(alert.first_bad_commit), d.series.benchmark,
                                d.series.metric))
        elif d.action is AlertAction.RESOLVED:
            mode.resolved.append((index, d.series.benchmark, d.series.metric))
    return True


def analyze_history(mode: Mode, shas: list[str]) -> None:
    result = analyze(mode.services, AnalyzeRequest(suite="example", range=f"{shas[0]}..{shas[-1]}"))
    index = {sha: i for i, sha in enumerate(shas)}
    for series in result.report.series:
        if series.metric != "time":
            continue
        mode.steps += [(index[cp.after.sha], cp.benchmark, cp.worse)
                       for cp in series.change_points if cp.beyond_threshold]


# the steps `analyze` should find (commit, benchmark, worse?), and one it may: request/handle
# calls the parser, so it gets a real ~+0.6% at 20
EXPECTED_STEPS = {(10, "compute/crc32", True), (15, "memory/chase", True),
                  (16, "memory/chase", False), (20, "request/parse", True)}
ALLOWED_STEPS = EXPECTED_STEPS | {(20, "request/handle", True)}


def robust_cv(values: list[float]) -> float:
    med = statistics.median(values)
    return 1.4826 * statistics.median(abs(v - med) for v in values) / med


def noise(mode: Mode, benchmark: str) -> float | None:
    """Robust CV pooled over the planted levels: each value over its level's median."""
    by_level: dict[int, list[float]] = {}
    for index, value in mode.values.get(benchmark, {}).items():
        if index not in (15,):  # the excursion is one point
            by_level.setdefault(expected_level(benchmark, index), []).append(value)
    normalised = [v / statistics.median(vs) for vs in by_level.values() if len(vs) >= 3 for v in vs]
    return robust_cv(normalised) if len(normalised) >= 5 else None


def verdicts(mode: Mode) -> dict[str, object]:
    planted = {(10, "compute/crc32"), (15, "memory/chase"), (20, "request/parse")}
    opened_time = {(i, b) for i, b, m in mode.opened if m == "time"}
    allowed = planted | {(20, "request/handle")}  # handle calls the parser: a real +~0.6%
    false = sorted((i, b, m) for i, b, m in mode.opened if (i, b) not in allowed)
    return {
        "+2% at its commit": (10, "compute/crc32") in opened_time,
        "+1% at its commit": (20, "request/parse") in opened_time,
        "excursion opened at 15": (15, "memory/chase") in opened_time,
        "excursion resolved at 16": any(i == 16 and b == "memory/chase" for i, b, _ in mode.resolved),
        "false alerts": false,
        "steps found": len(EXPECTED_STEPS & set(mode.steps)),
        "steps missed": sorted(EXPECTED_STEPS - set(mode.steps)),
        "false steps": sorted(set(mode.steps) - ALLOWED_STEPS),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", type=int, default=4)
    parser.add_argument("--commits", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=0.5, help="threshold_pct (0.5)")
    parser.add_argument("--min-time", type=float, default=0.005, help="min_time_s per sample")
    parser.add_argument("--hog-from", type=int, default=22)
    parser.add_argument("--hog-to", type=int, default=31)
    parser.add_argument("--hog-cpu", type=int, default=1, help="the suite's CPU (1)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results: list[tuple[Mode, Mode]] = []
    with tempfile.TemporaryDirectory(prefix="perfd-bench-history-") as tmp:
        for h in range(args.histories):
            repo = Path(tmp) / f"repo-{h}"
            shas = make_history(repo, args.commits, h)
            modes = []
            for name in ("paired", "solo"):
                work = Path(tmp) / f"work-{h}-{name}"
                config = write_config(work, repo, args.threshold, args.min_time)
                os.chdir(work)
                services = Services.create(load_config_set(config, cwd=work),
                                           machine_lock_path=Path(tmp) / "inner.lock")
                modes.append(Mode(name, services))
            paired, solo = modes
            set_reference(paired.services, SetReference(suite="example", rev=shas[0],
                                                        set_by="bench", reason="the base"))
            again: dict[str, list[int]] = {"paired": [], "solo": []}
            for i, sha in enumerate(shas):
                hog = None
                if args.hog_from <= i <= args.hog_to:
                    hog = subprocess.Popen(["taskset", "-c", str(args.hog_cpu), "sh", "-c",
                                            "while :; do :; done"])
                try:
                    for mode in (paired, solo):
                        if not measure_commit(mode, i, sha, solo=mode is solo, shas=shas):
                            again[mode.name].append(i)
                finally:
                    if hog is not None:
                        hog.kill()
                        hog.wait()
                print(f"history {h + 1}/{args.histories} commit {i + 1}/{len(shas)}: paired "
                      f"{paired.seconds[-1]:.1f} s, solo {solo.seconds[-1]:.1f} s", file=sys.stderr)
            # as the daemon re-queues a CONTENDED run: measured again once the hog has gone,
            # in commit order (history stays in commit order, whenever a commit is measured)
            for mode in (paired, solo):
                for i in again[mode.name]:
                    measure_commit(mode, i, shas[i], solo=mode is solo, shas=shas)
            for mode in (paired, solo):
                analyze_history(mode, shas)
            results.append((paired, solo))
            os.chdir(ROOT)
    print(report(args, argv, results, time.perf_counter() - started))
    return 0


def report(args: argparse.Namespace, argv: list[str], results: list[tuple[Mode, Mode]],
           seconds: float) -> str:
    out = [
        "## History on real commits: reference-paired vs solo (issue 9)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {seconds / 60:.0f} min",
        f"- machine: {cpu_model() or platform.processor()}, {os.cpu_count()} cores, "
        f"Linux {platform.release()}",
        f"- command: `{shlex.join(['.venv/bin/python', 'benchmarks/bench_history_real.py', *argv])}`",
        f"- {args.histories} histories x {args.commits} commits of examples/minilib: layout change at 5, "
        "+2% compute/crc32 at 10, +20% memory/chase at 15 reverted at 16, +1% request/parse at 20; "
        f"a busy loop pinned to the benchmark CPU during commits {args.hog_from}..{args.hog_to} "
        "(their CONTENDED runs measured again after it stopped, as the daemon re-queues them); "
        f"threshold {args.threshold:g}%, {args.min_time:g} s per sample, `perfd alert` with "
        "confirmation after every run",
        "",
        "Noise: robust CV of each history's series within its planted levels (paired: ratio to "
        "the reference; solo: run median).",
        "",
        "| history | mode | " + " | ".join(BENCHMARKS) + " | contended runs | s per point |",
        "|---|---|" + "---|" * len(BENCHMARKS) + "---|---|",
    ]
    for h, pair in enumerate(results, start=1):
        for mode in pair:
            cvs = [noise(mode, b) for b in BENCHMARKS]
            cells = [f"{cv:.2%}" if cv is not None else "-" for cv in cvs]
            out.append(f"| {h} | {mode.name} | " + " | ".join(cells) +
                       f" | {mode.contended} | {statistics.median(mode.seconds):.1f} |")
    out += ["", "Alerts, by the first bad commit each names (opened after the A/B confirmed it; "
            "a step may open one run later, once its streak shows it):", "",
            "| history | mode | +2% at its commit | +1% at its commit | excursion: at 15 | "
            "resolved by the run at 16 | false alerts (first bad commit, benchmark, metric) |",
            "|---|---|---|---|---|---|---|"]
    for h, pair in enumerate(results, start=1):
        for mode in pair:
            v = verdicts(mode)
            out.append(f"| {h} | {mode.name} | {v['+2% at its commit']} | {v['+1% at its commit']} | "
                       f"{v['excursion opened at 15']} | {v['excursion resolved at 16']} | "
                       f"{len(v['false alerts'])}: {v['false alerts'] or '-'} |")  # type: ignore[arg-type]
    out += ["", "`perfd analyze` over each whole history (time series): the planted steps it "
            f"reports beyond the threshold at their exact commit (of {len(EXPECTED_STEPS)}: "
            "crc32 at 10, chase in at 15 and out at 16, parse at 20), and any other step.", "",
            "| history | mode | planted steps found | missed | other steps (commit, benchmark, worse) |",
            "|---|---|---|---|---|"]
    for h, pair in enumerate(results, start=1):
        for mode in pair:
            v = verdicts(mode)
            out.append(f"| {h} | {mode.name} | {v['steps found']} of {len(EXPECTED_STEPS)} | "
                       f"{v['steps missed'] or '-'} | {len(v['false steps'])}: {v['false steps'] or '-'} |")  # type: ignore[arg-type]
    paired_s = [t for paired, _ in results for t in paired.seconds]
    solo_s = [t for _, solo in results for t in solo.seconds]
    ratio = statistics.median(paired_s) / statistics.median(solo_s)
    out += ["", f"Wall time per history point: paired {statistics.median(paired_s):.1f} s, solo "
            f"{statistics.median(solo_s):.1f} s (median; x{ratio:.2f})."]
    return "\n".join(out)


if __name__ == "__main__":
    # A TERM (kill) unwinds like an exception, so the finally above stops the hog too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Never two benchmarks at once: wait for any perfd run, compare or benchmark on this machine.
    with holding_machine("benchmarks/bench_history_real.py"):
        sys.exit(main())
