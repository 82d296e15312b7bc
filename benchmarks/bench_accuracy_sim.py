"""Accuracy of the two-sample decision on simulated benchmarks (seeded, no real runs).

Part 1 - one benchmark: how often does perfd *alert* (REGRESSED with MEDIUM/HIGH confidence)
for a true slowdown of 0 (false alerts), 1, 2, 5 and 10% at a process-level CV of 0.5, 1, 3
and 5%, with N processes a side and the default 5% threshold? Two ways of running:

- sequential: the baseline batch runs first, then the current batch (independent samples,
  Mann-Whitney U). The machine drifts slowly during the session, so the current batch is
  systematically a bit slower.
- interleaved: baseline and current alternate in random order within each pair (paired
  log-ratios, Wilcoxon signed-rank); the drift cancels inside each pair.

Part 2 - a 200-benchmark A/A suite (nothing changed, CVs drawn from the same four levels):
false regressions and false alerts per suite run, with and without Benjamini-Hochberg.

    .venv/bin/python benchmarks/bench_accuracy_sim.py                # ~1 minute
    .venv/bin/python benchmarks/bench_accuracy_sim.py --trials 100 --suite-runs 20
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfd.analysis.compare import Comparison, Status, compare_independent, compare_paired  # noqa: E402
from perfd.analysis.fdr import apply_fdr  # noqa: E402
from perfd.locks import holding_machine  # noqa: E402
from perfd.model import Direction  # noqa: E402
from perfd.runner import fingerprint  # noqa: E402

CVS_PCT = (0.5, 1.0, 3.0, 5.0)
SHIFTS_PCT = (0.0, 1.0, 2.0, 5.0, 10.0)
MEDIAN_NS = 1000.0


def cpu_model() -> str:
    return fingerprint.cpu_model() or platform.processor() or "unknown CPU"


def session(
    rng: np.random.Generator, n: int, cv: float, shift: float, drift: float, interleaved: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Process-level values of one comparison: 2n processes in time slots 0..2n-1.

    The machine slows down linearly by ``drift`` (a fraction) from the first slot to the last.
    Sequential: baseline in slots 0..n-1, current in n..2n-1. Interleaved: pair i takes slots
    2i and 2i+1 in random order.
    """
    slow = 1.0 + drift * np.arange(2 * n) / (2 * n - 1)
    if interleaved:
        first_is_base = rng.random(n) < 0.5
        base_slot = 2 * np.arange(n) + np.where(first_is_base, 0, 1)
        cur_slot = 2 * np.arange(n) + np.where(first_is_base, 1, 0)
    else:
        base_slot = np.arange(n)
        cur_slot = n + np.arange(n)
    baseline = MEDIAN_NS * slow[base_slot] * np.exp(rng.normal(0.0, cv, n))
    current = MEDIAN_NS * (1.0 + shift) * slow[cur_slot] * np.exp(rng.normal(0.0, cv, n))
    return baseline, current


def single_benchmark_rates(
    trials: int, n: int, drift: float, seed: int
) -> dict[tuple[str, float, float], tuple[float, float]]:
    """(mode, cv%, shift%) -> (alert rate, REGRESSED-at-any-confidence rate)."""
    out = {}
    for mode in ("sequential", "interleaved"):
        for ci, cv in enumerate(CVS_PCT):
            for si, shift in enumerate(SHIFTS_PCT):
                rng = np.random.default_rng([seed, ci, si, mode == "interleaved"])
                alerts = regressed = 0
                for _ in range(trials):
                    b, c = session(rng, n, cv / 100, shift / 100, drift, mode == "interleaved")
                    compare = compare_paired if mode == "interleaved" else compare_independent
                    r = compare(b, c, direction=Direction.LOWER, rng=rng)
                    alerts += r.alert_worthy
                    regressed += r.status is Status.REGRESSED
                out[(mode, cv, shift)] = (alerts / trials, regressed / trials)
    return out


def suite_rates(runs: int, size: int, n: int, q: float, seed: int) -> dict[str, float]:
    """Mean false regressions / alerts / any changes per A/A suite run, without and with BH."""
    totals = dict.fromkeys(
        ("regressed_raw", "alerts_raw", "changed_raw", "regressed_bh", "alerts_bh", "changed_bh"), 0
    )
    rng = np.random.default_rng([seed, 99])
    for _ in range(runs):
        cvs = rng.choice(CVS_PCT, size) / 100
        comparisons: list[Comparison] = []
        for cv in cvs:
            b, c = session(rng, n, cv, 0.0, 0.0, interleaved=False)
            comparisons.append(compare_independent(b, c, direction=Direction.LOWER, rng=rng))
        for tag, batch in (("raw", comparisons), ("bh", apply_fdr(comparisons, q=q))):
            totals[f"regressed_{tag}"] += sum(x.status is Status.REGRESSED for x in batch)
            totals[f"alerts_{tag}"] += sum(x.alert_worthy for x in batch)
            totals[f"changed_{tag}"] += sum(x.status in (Status.REGRESSED, Status.IMPROVED)
                                            for x in batch)
    return {k: v / runs for k, v in totals.items()}


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500, help="trials per cell (default 500)")
    parser.add_argument("--processes", type=int, default=10,
                        help="processes (or pairs) per side (default 10)")
    parser.add_argument("--drift-pct", type=float, default=3.0,
                        help="machine slowdown from the first to the last process of a "
                             "session, in percent (default 3)")
    parser.add_argument("--suite-runs", type=int, default=100, help="A/A suite runs (default 100)")
    parser.add_argument("--suite-size", type=int, default=200,
                        help="benchmarks per suite (default 200)")
    parser.add_argument("--q", type=float, default=0.05, help="BH false-discovery rate (0.05)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rates = single_benchmark_rates(args.trials, args.processes, args.drift_pct / 100, args.seed)
    suite = suite_rates(args.suite_runs, args.suite_size, args.processes, args.q, args.seed)
    elapsed = time.perf_counter() - started

    command = "python benchmarks/bench_accuracy_sim.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    lines = [
        "## Accuracy: two-sample decision (simulated)",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}",
        f"- command: `{command.strip()}`",
        f"- setup: {args.processes} processes (pairs) a side, lognormal noise, threshold 5%, "
        f"alpha 0.05, bootstrap 2000, no run history (consistency unknown); sequential runs "
        f"drift {args.drift_pct:g}% across the session; {args.trials} trials per cell, "
        f"seed {args.seed}; {elapsed:.0f} s",
        "",
        "Alert rate (REGRESSED with MEDIUM/HIGH confidence); the 0% column is the false-alert "
        "rate, the others the detection rate. In brackets: REGRESSED at any confidence.",
        "",
        "| mode | CV | " + " | ".join(f"{s:g}%" for s in SHIFTS_PCT) + " |",
        "|---|---|" + "---|" * len(SHIFTS_PCT),
    ]
    for mode in ("sequential", "interleaved"):
        for cv in CVS_PCT:
            cells = [f"{pct(rates[(mode, cv, s)][0])} ({pct(rates[(mode, cv, s)][1])})"
                     for s in SHIFTS_PCT]
            lines.append(f"| {mode} | {cv:g}% | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"A/A suite: {args.suite_size} benchmarks (CV drawn from "
        f"{', '.join(f'{c:g}%' for c in CVS_PCT)}), {args.processes} processes a side, no drift, "
        f"mean per suite run over {args.suite_runs} runs.",
        "",
        "| | false REGRESSED | false alerts (MEDIUM/HIGH) | any false change (REGRESSED/IMPROVED) |",
        "|---|---|---|---|",
        f"| without BH | {suite['regressed_raw']:.2f} | {suite['alerts_raw']:.2f} | "
        f"{suite['changed_raw']:.2f} |",
        f"| with BH (q={args.q:g}) | {suite['regressed_bh']:.2f} | {suite['alerts_bh']:.2f} | "
        f"{suite['changed_bh']:.2f} |",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    # Never two benchmarks at once: wait for any perfd run, compare or benchmark on this machine.
    with holding_machine("benchmarks/bench_accuracy_sim.py"):
        sys.exit(main())
