"""Accuracy of perfd's regression decision on real C code: interleaved vs sequential runs.

For each example kernel of examples/minilib - compute (compute/crc32, knob
MINILIB_SLOW_COMPUTE_PCT), memory (memory/chase, MINILIB_SLOW_MEMORY_PCT) and request path
(request/parse, MINILIB_SLOW_PARSE_PCT) - this builds a baseline binary (knob 0), a second,
separately built knob-0 binary (the identical-builds case) and one candidate binary per knob
level, then runs trials on this machine:

- interleaved: pair i runs one baseline and one candidate process at the same time on the same
  CPU, taking turns sample by sample (harness --turns; a random side goes first); the pair is
  reduced by perfd.analysis.compare.lockstep_pair_values (the median of its sample ratios); after
  ``--min-pairs`` pairs perfd's own stopping rule (perfd.analysis.sequential.next_step)
  decides after every pair whether to stop, up to a cap of ``--max-pairs`` pairs (20) for
  knob 0 and knobs >= 1%, and ``--max-pairs-small`` (60) for knobs between 0 and 1%. The
  verdict is the last next_step comparison (Wilcoxon signed-rank at the per-look alpha),
  exactly as `perfd compare --interleave` decides.
- sequential: all baseline processes first, then all candidate processes, as many a side as
  the interleaved cap for that knob; decided with compare_independent (Mann-Whitney U).

Processes are run through perfd's HarnessRunner, so the harness sees the same command line as
under `perfd run`. A trial counts as "found" when the verdict is REGRESSED; "alert" is
REGRESSED with MEDIUM/HIGH confidence. For knob 0 (two identical builds) a REGRESSED verdict
is a false positive.

Results go, one trial per line, to a JSON-lines state file under --workdir whose name encodes
every setting that affects a measurement; rerunning the same command resumes where it
stopped (and --trials can be raised later); a change to the C sources starts a new file
unless --state names the old one. Builds are cached there too. Progress goes to
stderr; the Markdown report to stdout.

    .venv/bin/python benchmarks/bench_accuracy_real.py                  # defaults, ~2.5 h
    .venv/bin/python benchmarks/bench_accuracy_real.py --trials 2 --kernels compute
    .venv/bin/python benchmarks/bench_accuracy_real.py --report-only    # tables from the state
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfd.analysis.compare import (  # noqa: E402
    Comparison,
    Status,
    compare_independent,
    lockstep_pair_values,
)
from perfd.analysis.sequential import next_step  # noqa: E402
from perfd.errors import HarnessError  # noqa: E402
from perfd.locks import holding_machine  # noqa: E402
from perfd.model import Direction  # noqa: E402
from perfd.runner.execute import HarnessRunner, Measure, PlannedProcess, run_in_turns  # noqa: E402

MINILIB = ROOT / "examples" / "minilib"
HARNESS = ROOT / "harness"
BENCH_SOURCE = ROOT / "suites" / "example" / "bench_minilib.c"

# kernel key -> (benchmark name, slowdown knob)
KERNELS: dict[str, tuple[str, str]] = {
    "compute": ("compute/crc32", "MINILIB_SLOW_COMPUTE_PCT"),
    "memory": ("memory/chase", "MINILIB_SLOW_MEMORY_PCT"),
    "request": ("request/parse", "MINILIB_SLOW_PARSE_PCT"),
}
MODES = ("interleaved", "sequential")
PROCESS_TIMEOUT_S = 60.0
PROCESS_RETRIES = 2
T = TypeVar("T")
FORMAT_VERSION = 2  # 2: interleaved pairs take turns sample by sample


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True, slots=True)
class Settings:
    samples: int
    min_time_s: float
    warmup: int
    cpu: int | None
    seed: int
    threshold_pct: float
    alpha: float
    min_pairs: int
    max_pairs: int
    max_pairs_small: int
    look_every: int

    def cap(self, level: float) -> int:
        """Pairs (interleaved) or processes a side (sequential) allowed for this knob level."""
        return self.max_pairs_small if 0.0 < level < 1.0 else self.max_pairs

    def key(self, sources: str) -> str:
        blob = json.dumps([FORMAT_VERSION, sources, self.samples, self.min_time_s, self.warmup,
                           self.cpu, self.seed, self.threshold_pct, self.alpha, self.min_pairs,
                           self.max_pairs, self.max_pairs_small, self.look_every])
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def target_for(level: float) -> tuple[str, float] | None:
    """(kind, rate) the issue asks for at this level: kind 'max' for false positives."""
    if level == 0.0:
        return ("max", 0.01)
    if 0.0 < level < 1.0:
        return ("min", 0.80)
    if level >= 1.0:
        return ("min", 0.95)
    return None


def derived_seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def level_text(level: float) -> str:
    return f"{level:g}"


# --------------------------------------------------------------------------------------------
# Builds


def sources_hash() -> str:
    """Hash of everything that goes into a benchmark binary (cached builds are keyed by it)."""
    h = hashlib.sha256()
    files = sorted([*(MINILIB / "src").glob("*"), *(MINILIB / "include").glob("*"),
                    MINILIB / "Makefile", BENCH_SOURCE, HARNESS / "perfd_harness.c",
                    HARNESS / "perfd_harness.h"])
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def build_variant(build_root: Path, name: str, extra_cflags: str) -> Path:
    """Build minilib (in its own copy of the tree) and bench_minilib for one knob setting."""
    out = build_root / name
    binary = out / "bench_minilib"
    if binary.exists():
        return binary
    tree = out / "minilib"
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    shutil.copy2(MINILIB / "Makefile", tree / "Makefile")
    shutil.copytree(MINILIB / "include", tree / "include")
    shutil.copytree(MINILIB / "src", tree / "src")
    subprocess.run(["make", "-s", "-C", str(tree), "-j2", f"EXTRA_CFLAGS={extra_cflags}"],
                   check=True, stdout=subprocess.DEVNULL)
    tmp = out / "bench_minilib.tmp"
    subprocess.run([
        "cc", "-std=c11", "-O2", "-g", "-fno-omit-frame-pointer", f"-I{tree / 'include'}",
        f"-I{HARNESS}", str(BENCH_SOURCE), str(HARNESS / "perfd_harness.c"),
        str(tree / "build" / "libminilib.a"), "-o", str(tmp),
    ], check=True)
    tmp.rename(binary)
    return binary


def text_section(binary: Path) -> bytes | None:
    try:
        done = subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", str(binary),
                               "/dev/stdout"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout


def build_all(build_root: Path, kernels: Sequence[str], levels: Sequence[float],
              log: Any) -> dict[str, Path]:
    """Binaries by variant: 'base', 'base2' (separate knob-0 build), '<kernel>@<level>'."""
    binaries = {"base": build_variant(build_root, "base", ""),
                "base2": build_variant(build_root, "base2", "")}
    for k in kernels:
        knob = KERNELS[k][1]
        for lv in levels:
            if lv > 0:
                binaries[f"{k}@{level_text(lv)}"] = build_variant(
                    build_root, f"{k}-{level_text(lv)}", f"-D{knob}={level_text(lv)}")
    log(f"builds ready in {build_root}")
    return binaries


def candidate_variant(kernel: str, level: float) -> str:
    return "base2" if level == 0.0 else f"{kernel}@{level_text(level)}"


# --------------------------------------------------------------------------------------------
# Running


def with_retries(run: Callable[[], T], log: Any) -> T:
    """run(), retried up to PROCESS_RETRIES times when the harness fails."""
    for attempt in range(PROCESS_RETRIES):
        try:
            return run()
        except HarnessError as exc:
            log(f"  harness failed ({exc}); retrying (attempt {attempt + 2})")
    return run()


def lockstep_pair(base: HarnessRunner, cand: HarnessRunner, planned: PlannedProcess, first: int,
                  log: Any) -> tuple[list[float], list[float]]:
    """The samples of one pair run in turns, as perfd compare runs them."""
    (b, _), (c, _) = with_retries(lambda: run_in_turns(
        [base, cand], planned, first=first, labels=("baseline", "candidate")), log)
    return list(b.samples.samples_ns), list(c.samples.samples_ns)


def process_median(runner: HarnessRunner, planned: PlannedProcess, log: Any) -> float:
    result, _ctx = with_retries(lambda: runner.run_one(planned), log)
    return float(np.median(result.samples.samples_ns))


def measure_for(benchmark: str, s: Settings, processes: int) -> Measure:
    return Measure(name=benchmark, warmup=s.warmup, samples=s.samples, min_time_s=s.min_time_s,
                   repetitions=processes, cpus=(s.cpu,) if s.cpu is not None else (),
                   timeout_s=PROCESS_TIMEOUT_S, counters=False)


def comparison_record(c: Comparison) -> dict[str, Any]:
    return {"status": c.status.value, "confidence": c.confidence.value if c.confidence else None,
            "alert": c.alert_worthy, "change_pct": c.change_pct, "ratio_ci": list(c.ratio_ci),
            "p_value": c.p_value, "reason": c.reason}


def run_interleaved_trial(base: HarnessRunner, cand: HarnessRunner, benchmark: str, level: float,
                          s: Settings, seed: int, log: Any) -> dict[str, Any]:
    cap = s.cap(level)
    measure = measure_for(benchmark, s, cap)
    order_rng = random.Random(seed)
    base_samples: list[list[float]] = []
    cand_samples: list[list[float]] = []
    step = None
    for i in range(cap):
        bs, cs = lockstep_pair(base, cand, PlannedProcess(measure, i, i, s.cpu),
                               order_rng.randrange(2), log)
        base_samples.append(bs)
        cand_samples.append(cs)
        if i + 1 >= s.min_pairs:
            b, c = lockstep_pair_values(base_samples, cand_samples)
            # As perfd compare's keep_going: a fresh bootstrap generator for each decision.
            step = next_step(b, c, direction=Direction.LOWER, threshold_pct=s.threshold_pct,
                             alpha=s.alpha, min_pairs=s.min_pairs, max_pairs=cap,
                             look_every=s.look_every, rng=np.random.default_rng(seed))
            if step.action == "stop":
                break
    assert step is not None
    return {**comparison_record(step.comparison), "n": len(b), "stop_reason": step.reason,
            "alpha_per_look": step.alpha_per_look, "baseline": b, "current": c}


def run_sequential_trial(base: HarnessRunner, cand: HarnessRunner, benchmark: str, level: float,
                         s: Settings, seed: int, log: Any) -> dict[str, Any]:
    n = s.cap(level)
    measure = measure_for(benchmark, s, n)
    b = [process_median(base, PlannedProcess(measure, i, i, s.cpu), log) for i in range(n)]
    c = [process_median(cand, PlannedProcess(measure, i, i, s.cpu), log) for i in range(n)]
    comp = compare_independent(b, c, direction=Direction.LOWER, threshold_pct=s.threshold_pct,
                               alpha=s.alpha, min_samples=s.min_pairs,
                               rng=np.random.default_rng(seed))
    return {**comparison_record(comp), "n": n, "baseline": b, "current": c}


# --------------------------------------------------------------------------------------------
# State


def cell_key(kernel: str, level: float, mode: str, trial: int) -> str:
    return f"{kernel}|{level_text(level)}|{mode}|{trial}"


def load_state(path: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Saved trials by cell key, and the session records (start/end of each invocation)."""
    done: dict[str, dict[str, Any]] = {}
    sessions: list[dict[str, Any]] = []
    if not path.exists():
        return done, sessions
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption
        if "session" in rec:
            sessions.append(rec)
            continue
        done[cell_key(rec["kernel"], float(rec["level"]), rec["mode"], rec["trial"])] = rec
    return done, sessions


def session_record(kind: str, command: str) -> dict[str, Any]:
    return {"session": kind, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load": list(loadavg()), "command": command}


def append_state(path: Path, rec: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --------------------------------------------------------------------------------------------
# Machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def loadavg() -> tuple[float, float, float]:
    try:
        a, b, c = Path("/proc/loadavg").read_text().split()[:3]
        return float(a), float(b), float(c)
    except (OSError, ValueError):
        return (math.nan, math.nan, math.nan)


def fmt_load(load: Sequence[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


# --------------------------------------------------------------------------------------------
# Report


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def rate_text(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.0f}% ({100 * lo:.0f}-{100 * hi:.0f})"


def pair_noise_cv(b: Sequence[float], c: Sequence[float]) -> float:
    lr = np.log(np.asarray(c) / np.asarray(b))
    return float(np.std(lr, ddof=1) / math.sqrt(2.0)) if lr.size >= 2 else math.nan


def plain_cv(x: Sequence[float]) -> float:
    a = np.asarray(x)
    return float(a.std(ddof=1) / a.mean()) if a.size >= 2 else math.nan


def others_text(recs: Sequence[dict[str, Any]], exclude: str) -> str:
    counts: dict[str, int] = {}
    for r in recs:
        if r["status"] != exclude:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


def verdict_text(level: float, k: int, n: int) -> str:
    t = target_for(level)
    if t is None or n == 0:
        return "-"
    kind, rate = t
    met = (k / n <= rate) if kind == "max" else (k / n >= rate)
    sign = "<=" if kind == "max" else ">="
    return f"{sign} {rate:.0%}: {'met' if met else '**missed**'}"


def kernel_tables(kernel: str, levels: Sequence[float], modes: Sequence[str],
                  recs: dict[str, dict[str, Any]], s: Settings) -> list[str]:
    bench, knob = KERNELS[kernel]
    out = [f"#### {bench} (`{knob}`)", ""]
    for mode in modes:
        if mode == "interleaved":
            out += [f"Interleaved, decided by `next_step` (min {s.min_pairs} pairs, a look every "
                    f"{s.look_every}, cap {s.max_pairs} pairs; {s.max_pairs_small} for knobs "
                    f"below 1%):", "",
                    "| knob | found (REGRESSED) | alert (MEDIUM/HIGH) | mean pairs | median pairs "
                    "| measured change (median) | pair-noise CV (median) | other verdicts "
                    "| target |",
                    "|---|---|---|---|---|---|---|---|---|"]
        else:
            out += ["Sequential (all baseline processes, then all candidate processes), decided "
                    "by `compare_independent`:", "",
                    "| knob | found (REGRESSED) | alert (MEDIUM/HIGH) | processes a side "
                    "| measured change (median) | baseline CV (median) | other verdicts "
                    "| target |",
                    "|---|---|---|---|---|---|---|---|"]
        for lv in levels:
            rows = [r for key, r in recs.items()
                    if key.startswith(f"{kernel}|{level_text(lv)}|{mode}|")]
            if not rows:
                continue
            n = len(rows)
            found = sum(r["status"] == Status.REGRESSED.value for r in rows)
            alert = sum(bool(r["alert"]) for r in rows)
            change = statistics.median(r["change_pct"] for r in rows)
            label = "0 (identical builds): false positives" if lv == 0 else f"{lv:g}%"
            found_txt = rate_text(found, n)
            alert_txt = rate_text(alert, n)
            if mode == "interleaved":
                pairs = [r["n"] for r in rows]
                noise = statistics.median(pair_noise_cv(r["baseline"], r["current"]) for r in rows)
                out.append(f"| {label} | {found_txt} | {alert_txt} | {statistics.mean(pairs):.1f} "
                           f"| {statistics.median(pairs):g} | {change:+.2f}% | {noise:.2%} "
                           f"| {others_text(rows, 'REGRESSED')} | {verdict_text(lv, found, n)} |")
            else:
                cv = statistics.median(plain_cv(r["baseline"]) for r in rows)
                out.append(f"| {label} | {found_txt} | {alert_txt} | {rows[0]['n']} "
                           f"| {change:+.2f}% | {cv:.2%} | {others_text(rows, 'REGRESSED')} "
                           f"| {verdict_text(lv, found, n)} |")
        out.append("")
    return out


def load_table(kernels: Sequence[str], modes: Sequence[str],
               recs: dict[str, dict[str, Any]]) -> list[str]:
    """Noise and verdicts by the 1-min load average at the start of each trial."""
    ncpu = os.cpu_count() or 1
    edges = (0.625 * ncpu, 0.875 * ncpu)
    buckets = ((f"< {edges[0]:g}", 0.0, edges[0]), (f"{edges[0]:g}-{edges[1]:g}", *edges),
               (f">= {edges[1]:g}", edges[1], math.inf))
    out = ["Noise and verdicts by the 1-min load average when each trial started (noise: "
           "interleaved pair-noise CV, sequential baseline CV; found: REGRESSED at knobs >= 1%; "
           "false: REGRESSED at knob 0):", "",
           "| kernel | mode | " + " | ".join(f"load {b[0]}: trials, noise, found, false"
                                           for b in buckets) + " |",
           "|---|---|" + "---|" * len(buckets)]
    for k in kernels:
        for mode in modes:
            cells = []
            for _label, lo, hi in buckets:
                rows = [r for r in recs.values() if r["kernel"] == k and r["mode"] == mode
                        and lo <= r.get("load1", math.nan) < hi]
                if not rows:
                    cells.append("-")
                    continue
                noise = statistics.median(
                    pair_noise_cv(r["baseline"], r["current"]) if mode == "interleaved"
                    else plain_cv(r["baseline"]) for r in rows)
                det = [r for r in rows if float(r["level"]) >= 1.0]
                aa = [r for r in rows if float(r["level"]) == 0.0]
                found = sum(r["status"] == Status.REGRESSED.value for r in det)
                false = sum(r["status"] == Status.REGRESSED.value for r in aa)
                cells.append(f"{len(rows)}, {noise:.1%}, {found}/{len(det)}, {false}/{len(aa)}")
            lines_cell = " | ".join(cells)
            out.append(f"| {KERNELS[k][0]} | {mode} | {lines_cell} |")
    out.append("")
    return out


def trials_text(recs: dict[str, dict[str, Any]]) -> str:
    """How many trials each mode's cells hold, e.g. "interleaved 20 (knob 0: 100), sequential 10"."""
    parts = []
    for mode in MODES:
        counts = Counter((r["kernel"], r["level"]) for r in recs.values() if r["mode"] == mode)
        if not counts:
            continue
        usual = statistics.mode(counts.values())
        odd = ", ".join(sorted({f"knob {lv}: {n}" for (_, lv), n in counts.items() if n != usual}))
        parts.append(f"{mode} {usual}" + (f" ({odd})" if odd else ""))
    return ", ".join(parts) or "none"


def report(args: argparse.Namespace, s: Settings, kernels: Sequence[str],
           levels: Sequence[float], modes: Sequence[str], recs: dict[str, dict[str, Any]],
           sessions: Sequence[dict[str, Any]], state_path: Path) -> str:
    recs = {k: r for k, r in recs.items()
            if r["kernel"] in kernels and r["level"] in {level_text(lv) for lv in levels}
            and r["mode"] in modes and r["trial"] < args.trials}
    loads = [r["load1"] for r in recs.values() if "load1" in r]
    measured_s = sum(r.get("seconds", 0.0) for r in recs.values())
    processes = sum(2 * r["n"] for r in recs.values())
    command = own_command(args.argv)
    starts = [x for x in sessions if x["session"] == "start"]
    ends = [x for x in sessions if x["session"] == "end"]
    if starts:
        date = starts[0]["date"] + (f" (resumed {len(starts) - 1} time(s), last {starts[-1]['date']})"
                                    if len(starts) > 1 else "")
        load_text = (f"load average (1/5/15 min) {fmt_load(starts[0]['load'])} at the start, "
                     + (f"{fmt_load(ends[-1]['load'])} at the end" if ends else "end not recorded"))
        run_command = starts[0]["command"]
    else:
        date = f"not recorded in {state_path.name} (report made {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)"
        load_text = "load average at start/end not recorded"
        run_command = command
    lines = [
        f"- date: {date}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, kernel {platform.release()}; "
        f"{load_text}; 1-min load when trials started: "
        + (f"median {statistics.median(loads):.2f}, range {min(loads):.2f}..{max(loads):.2f}"
           if loads else "n/a"),
        f"- command: `{run_command}`" + (f" (this report: `{command}`)" if command != run_command
                                         else ""),
        f"- settings: trials per cell: {trials_text(recs)}; each process: warmup {s.warmup}, "
        f"{s.samples} samples, min-time {s.min_time_s:g} s per sample, pinned to CPU "
        f"{s.cpu if s.cpu is not None else '(none)'}; an interleaved pair's two processes take "
        f"turns sample by sample and are summarised by their median sample ratio, a sequential "
        f"process by the median of its samples; "
        f"threshold {s.threshold_pct:g}%, alpha {s.alpha:g} (interleaved: split over the looks, "
        f"Bonferroni); seed {s.seed}",
        f"- identical builds: two separate builds of knob 0 ({identical_text(state_path)})",
        f"- runtime: {measured_s / 60:.1f} min of trials ({processes} harness processes, "
        f"{measured_s / max(processes, 1) * 1000:.0f} ms each on average, including Python "
        f"overhead)",
        "",
        "Rates are trials with that verdict / trials, with a 95% Wilson interval in brackets. "
        "\"measured change\" is the median over trials of the comparison's change (interleaved: "
        "median paired ratio; sequential: ratio of medians) - the slowdown the knob really "
        "caused in a process median.",
        "",
    ]
    for k in kernels:
        lines += kernel_tables(k, levels, modes, recs, s)
    # one-glance summary of the targets
    lines += ["Targets of the issue (\"found\" = REGRESSED):", "",
              "| kernel | knob | target | " + " | ".join(modes) + " |",
              "|---|---|---|" + "---|" * len(modes)]
    for k in kernels:
        for lv in levels:
            t = target_for(lv)
            if t is None:
                continue
            kind, rate = t
            cells = []
            for mode in modes:
                rows = [r for key, r in recs.items()
                        if key.startswith(f"{k}|{level_text(lv)}|{mode}|")]
                if not rows:
                    cells.append("-")
                    continue
                found = sum(r["status"] == Status.REGRESSED.value for r in rows)
                met = found / len(rows) <= rate if kind == "max" else found / len(rows) >= rate
                cells.append(f"{100 * found / len(rows):.0f}% {'met' if met else 'MISSED'}")
            what = ("false REGRESSED <= 1%" if kind == "max"
                    else f"found >= {rate:.0%} within {s.cap(lv)} pairs")
            lines.append(f"| {KERNELS[k][0]} | {lv:g}% | {what} | " + " | ".join(cells) + " |")
    lines += ["", *load_table(kernels, modes, recs)]
    return "\n".join(lines)


def own_command(argv: Sequence[str]) -> str:
    return (".venv/bin/python benchmarks/bench_accuracy_real.py " + shlex.join(argv)).strip()


def identical_text(state_path: Path) -> str:
    """Whether the two knob-0 builds this state file was measured with have the same .text."""
    marker = state_path.with_suffix(".builds")  # written by the run: its build directory
    if marker.exists():
        root = Path(marker.read_text().strip())
        ta = text_section(root / "base" / "bench_minilib")
        tb = text_section(root / "base2" / "bench_minilib")
        if ta and tb:
            return "their .text sections are " + ("byte-identical" if ta == tb else "different")
    return ".text not compared"


# --------------------------------------------------------------------------------------------
# Main


def parse_list(text: str, allowed: Sequence[str] | None = None) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if allowed is not None:
        bad = [t for t in items if t not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(bad)} (choose from "
                                             f"{', '.join(allowed)})")
    return items


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ncpu = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per cell (default 20)")
    parser.add_argument("--kernels", default="compute,memory,request",
                        help="comma-separated: compute, memory, request (default: all)")
    parser.add_argument("--levels", default="0,0.5,1,2,5",
                        help="knob levels in percent (default 0,0.5,1,2,5)")
    parser.add_argument("--modes", default="interleaved,sequential",
                        help="comma-separated: interleaved, sequential (default: both)")
    parser.add_argument("--samples", type=int, default=40, help="samples per process (default 40)")
    parser.add_argument("--min-time", type=float, default=0.005,
                        help="minimum seconds per sample (default 0.005)")
    parser.add_argument("--warmup", type=int, default=1, help="warmup samples (default 1)")
    parser.add_argument("--cpu", type=int, default=1 if ncpu > 1 else 0,
                        help="CPU to pin every process to (default 1 on a 2+ CPU machine); "
                             "-1 for no pinning")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threshold-pct", type=float, default=0.25)
    parser.add_argument("--alpha", type=float, default=0.02,
                        help="significance level, two-sided, split over the looks (default 0.02: "
                             "at most 1%% false REGRESSED, the issue's target)")
    parser.add_argument("--min-pairs", type=int, default=5)
    parser.add_argument("--max-pairs", type=int, default=20,
                        help="cap of pairs for knob 0 and knobs >= 1%% (default 20)")
    parser.add_argument("--max-pairs-small", type=int, default=60,
                        help="cap of pairs for knobs between 0 and 1%% (default 60)")
    parser.add_argument("--look-every", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/perfd-accuracy-real"),
                        help="builds and the resumable state file (default /tmp/perfd-accuracy-real)")
    parser.add_argument("--state", type=Path, default=None,
                        help="the JSON-lines state file to read and append to (default: one under "
                             "--workdir named by a hash of the settings and of the C sources; "
                             "name it to report on, or resume, a run after the sources changed)")
    parser.add_argument("--fresh", action="store_true", help="discard saved trials of these settings")
    parser.add_argument("--report-only", action="store_true",
                        help="print the tables from the saved trials, run nothing")
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        kernels = parse_list(args.kernels, list(KERNELS))
        modes = parse_list(args.modes, MODES)
        levels = sorted({float(x) for x in parse_list(args.levels)})
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))
    if any(lv < 0 for lv in levels):
        parser.error("--levels: knob levels must be >= 0")

    s = Settings(samples=args.samples, min_time_s=args.min_time, warmup=args.warmup,
                 cpu=None if args.cpu < 0 else args.cpu, seed=args.seed,
                 threshold_pct=args.threshold_pct, alpha=args.alpha, min_pairs=args.min_pairs,
                 max_pairs=args.max_pairs, max_pairs_small=args.max_pairs_small,
                 look_every=args.look_every)

    def log(msg: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    src = sources_hash()
    args.workdir.mkdir(parents=True, exist_ok=True)
    state_path = args.state or args.workdir / f"trials-{s.key(src)}.jsonl"
    if args.fresh and state_path.exists() and not args.report_only:
        state_path.unlink()
    done, sessions = load_state(state_path)
    log(f"state file {state_path} ({len(done)} trials saved); load average {fmt_load(loadavg())}")

    if not args.report_only:
        with holding_machine("benchmarks/bench_accuracy_real.py"):  # never two benchmarks at once
            measure(args, s, kernels, levels, modes, src, done, sessions, state_path, log)
    sys.stdout.write(report(args, s, kernels, levels, modes, done, sessions, state_path))
    return 0


def measure(args: argparse.Namespace, s: Settings, kernels: list[str], levels: list[float],
            modes: list[str], src: str, done: dict[str, Any], sessions: list[Any],
            state_path: Path, log: Callable[[str], None]) -> None:
    """Build every variant and run the trials not yet in the state file (appending each)."""
    build_root = args.workdir / f"builds-{src}"
    binaries = build_all(build_root, kernels, levels, log)
    state_path.with_suffix(".builds").write_text(f"{build_root}\n")
    runners = {name: HarnessRunner(path) for name, path in binaries.items()}
    cells = [(k, lv, m) for k in kernels for lv in levels for m in modes]
    todo_total = sum(cell_key(k, lv, m, t) not in done
                     for t in range(args.trials) for k, lv, m in cells)
    if todo_total:  # sessions that measure something: their dates and load averages
        start = session_record("start", own_command(args.argv))
        append_state(state_path, start)
        sessions.append(start)
    log(f"{todo_total} trials to run ({len(cells)} cells x {args.trials} trials, "
        f"{len(done)} saved)")
    started = time.perf_counter()
    ran = 0
    for trial in range(args.trials):
        order = list(cells)
        random.Random(derived_seed(s.seed, "order", trial)).shuffle(order)
        for kernel, lv, mode in order:
            key = cell_key(kernel, lv, mode, trial)
            if key in done:
                continue
            bench = KERNELS[kernel][0]
            seed = derived_seed(s.seed, kernel, level_text(lv), mode, trial)
            base, cand = runners["base"], runners[candidate_variant(kernel, lv)]
            t0 = time.perf_counter()
            load1 = loadavg()[0]
            if mode == "interleaved":
                rec = run_interleaved_trial(base, cand, bench, lv, s, seed, log)
            else:
                rec = run_sequential_trial(base, cand, bench, lv, s, seed, log)
            rec.update(kernel=kernel, level=level_text(lv), mode=mode, trial=trial,
                       seconds=time.perf_counter() - t0, load1=load1)
            append_state(state_path, rec)
            done[key] = rec
            ran += 1
            elapsed = time.perf_counter() - started
            eta = elapsed / ran * (todo_total - ran)
            conf = f"/{rec['confidence']}" if rec["confidence"] else ""
            log(f"trial {trial + 1}/{args.trials} {bench} knob {lv:g}% {mode}: "
                f"{rec['status']}{conf} with {rec['n']} {'pairs' if mode == 'interleaved' else 'a side'}"
                f" ({rec['change_pct']:+.2f}%), {rec['seconds']:.1f} s, load {load1:.2f}; "
                f"{ran}/{todo_total} done, ETA {eta / 60:.1f} min")
    log(f"finished: {ran} trials in {(time.perf_counter() - started) / 60:.1f} min")
    if todo_total:
        end = session_record("end", own_command(args.argv))
        append_state(state_path, end)
        sessions.append(end)


if __name__ == "__main__":
    sys.exit(main())
