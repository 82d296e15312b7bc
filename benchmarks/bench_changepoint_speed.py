"""Speed and accuracy of change-point detection on seeded synthetic histories.

- speed: one 1,000-point series (target <= 10 ms) and 1,000 series x 500 points in a single
  process (target <= 10 s);
- false change points per 200-point A/A series (target <= 0.02) for white noise, AR(1)
  noise with phi = 0.5 and bimodal noise (30% of runs in a mode 3% slower);
- detection of a 5% step at a random place in a 200-point series at CV 1% and 2% (target
  >= 99% found), and how often it is placed within 2 points of the true index;
- how soon a 5% step at the end of a 200-point series is reported (a change point within 2
  points of it): after 2, 3, 5 and 10 new runs. With confirm=3 no change point ever opens in
  the last 2 points; the few hits after 2 runs are change points at n-3, where the last old
  run happened to look like the new level.

    .venv/bin/python benchmarks/bench_changepoint_speed.py [--series 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfd.analysis.changepoint import detect_change_points  # noqa: E402
from perfd.locks import holding_machine  # noqa: E402
from perfd.runner import fingerprint  # noqa: E402

LEVEL = 1000.0


def cpu_model() -> str:
    return fingerprint.cpu_model() or platform.processor() or "unknown CPU"


def white(rng: np.random.Generator, n: int, cv: float) -> np.ndarray:
    return LEVEL * (1.0 + rng.normal(0.0, cv, n))


def ar1(rng: np.random.Generator, n: int, cv: float, phi: float = 0.5) -> np.ndarray:
    e = rng.normal(0.0, cv * np.sqrt(1.0 - phi**2), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, cv)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return LEVEL * (1.0 + x)


def bimodal(rng: np.random.Generator, n: int, cv: float, share: float = 0.3,
            gap: float = 0.03) -> np.ndarray:
    return LEVEL * (1.0 + rng.normal(0.0, cv, n) + gap * (rng.random(n) < share))


def timed_single(n: int, repeats: int, rng: np.random.Generator) -> float:
    """Median milliseconds for one n-point series with a 5% step in the middle."""
    x = white(rng, n, 0.01)
    x[n // 2:] *= 1.05
    detect_change_points(x)  # warm up imports and caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        detect_change_points(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def timed_many(count: int, n: int, rng: np.random.Generator) -> float:
    """Seconds for `count` n-point series (a tenth of them with a step), one process."""
    series = []
    for i in range(count):
        x = white(rng, n, 0.01)
        if i % 10 == 0:
            x[int(rng.integers(50, n - 50)):] *= 1.05
        series.append(x)
    t = time.perf_counter()
    for x in series:
        detect_change_points(x)
    return time.perf_counter() - t


def false_rate(make: Callable[[np.random.Generator], np.ndarray], count: int,
               rng: np.random.Generator) -> float:
    return sum(len(detect_change_points(make(rng))) for _ in range(count)) / count


def detection(cv: float, count: int, n: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """(found within +-5 points, placed within +-2 points, extra change points per series)."""
    found = placed = extra = 0
    for _ in range(count):
        k = int(rng.integers(20, n - 19))
        x = white(rng, n, cv)
        x[k:] *= 1.05
        cps = detect_change_points(x)
        near = [c for c in cps if abs(c.index - k) <= 5]
        found += int(bool(near))
        placed += int(any(abs(c.index - k) <= 2 for c in cps))
        extra += len(cps) - (1 if near else 0)
    return found / count, placed / count, extra / count


def at_the_end(cv: float, new_runs: int, count: int, n: int, rng: np.random.Generator) -> float:
    """Share of series with a 5% step `new_runs` points before the end reported within +-2."""
    hits = 0
    for _ in range(count):
        x = white(rng, n, cv)
        x[n - new_runs:] *= 1.05
        hits += int(any(abs(c.index - (n - new_runs)) <= 2 for c in detect_change_points(x)))
    return hits / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000,
                        help="series per accuracy row (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    single_ms = timed_single(1000, 200, rng)
    many_s = timed_many(1000, 500, rng)
    false_rows = [
        ("white noise, CV 1%", false_rate(lambda g: white(g, 200, 0.01), args.series, rng)),
        ("white noise, CV 5%", false_rate(lambda g: white(g, 200, 0.05), args.series, rng)),
        ("AR(1) phi=0.5, CV 2%", false_rate(lambda g: ar1(g, 200, 0.02), args.series, rng)),
        ("bimodal: 30% of runs +3%, CV 0.5%",
         false_rate(lambda g: bimodal(g, 200, 0.005), args.series, rng)),
    ]
    detect_rows = [(cv, *detection(cv, args.series, 200, rng)) for cv in (0.01, 0.02)]
    tail_runs = (2, 3, 5, 10)
    tail_rows = [(cv, [at_the_end(cv, k, args.series, 200, rng) for k in tail_runs])
                 for cv in (0.01, 0.02)]

    command = "python benchmarks/bench_changepoint_speed.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    lines = [
        "## Change points: speed and accuracy (simulated)",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}",
        f"- command: `{command.strip()}`",
        f"- defaults: min_segment=5, confirm=3, penalty 4 ln(n), min_shift_pct=1; seed {args.seed}",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| one 1,000-point series (median of 200) | {single_ms:.2f} ms | <= 10 ms |",
        f"| 1,000 series x 500 points, one process | {many_s:.2f} s | <= 10 s |",
    ]
    for name, rate in false_rows:
        lines.append(f"| false change points per 200-point A/A series, {name} "
                     f"({args.series} series) | {rate:.3f} | <= 0.02 |")
    for cv, found, placed, extra in detect_rows:
        lines.append(f"| 5% step at CV {cv:.0%} found within +-5 points ({args.series} series) | "
                     f"{found:.1%} | >= 99% |")
        lines.append(f"| 5% step at CV {cv:.0%} placed within +-2 points | {placed:.1%} | |")
        lines.append(f"| 5% step at CV {cv:.0%}: other change points per series | {extra:.3f} | |")
    for cv, shares in tail_rows:
        lines.append(
            f"| 5% step at the end, CV {cv:.0%}: share reported after "
            + " / ".join(str(k) for k in tail_runs) + " new runs | "
            + " / ".join(f"{share:.0%}" for share in shares) + " | |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    # Never two benchmarks at once: wait for any perfd run, compare or benchmark on this machine.
    with holding_machine("benchmarks/bench_changepoint_speed.py"):
        sys.exit(main())
