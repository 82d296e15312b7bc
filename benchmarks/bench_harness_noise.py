"""Harness timer overhead and this machine's noise floor.

Builds examples/minilib and suites/example/bench_minilib.c against perfd's harness, then runs
one benchmark in N separate processes (default: the compute kernel, 20 processes) and prints:
the timer's resolution and overhead per reading as the harness measured them, and the CV of
the process-level medians (the noise floor the statistics have to live with).

    .venv/bin/python benchmarks/bench_harness_noise.py [--processes 20] [--cpu 1]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfd.locks import holding_machine  # noqa: E402
from perfd.runner.fingerprint import cpu_model  # noqa: E402
from perfd.runner.parse import parse_harness_json  # noqa: E402


def build(workdir: Path) -> Path:
    lib = ROOT / "examples" / "minilib"
    subprocess.run(["make", "-s", "-C", str(lib)], check=True)
    binary = workdir / "bench_minilib"
    subprocess.run([
        "cc", "-std=c11", "-O2", "-g", "-fno-omit-frame-pointer", f"-I{lib / 'include'}",
        f"-I{ROOT / 'harness'}", str(ROOT / "suites" / "example" / "bench_minilib.c"),
        str(ROOT / "harness" / "perfd_harness.c"), str(lib / "build" / "libminilib.a"),
        "-o", str(binary),
    ], check=True)
    return binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--benchmark", default="compute/crc32")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=0.01)
    parser.add_argument("--cpu", type=int, default=1 if (os.cpu_count() or 1) > 1 else 0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = build(Path(tmp))
        medians, overheads, resolutions = [], [], []
        for _ in range(args.processes):
            out = subprocess.run(
                [str(binary), "--filter", f"^{args.benchmark}$", "--json", "--warmup", "1",
                 "--samples", str(args.samples), "--min-time", str(args.min_time),
                 "--cpu", str(args.cpu)],
                check=True, capture_output=True, text=True,
            ).stdout
            parsed = parse_harness_json(out)
            medians.append(statistics.median(parsed.benchmarks[0].samples_ns))
            overheads.append(parsed.context.timer_overhead_ns)
            resolutions.append(parsed.context.timer_resolution_ns)
    cv = statistics.stdev(medians) / statistics.mean(medians)
    cpu = cpu_model() or platform.processor()
    print(f"machine: {cpu}, {os.cpu_count()} cores, kernel {platform.release()}")
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"command: .venv/bin/python benchmarks/bench_harness_noise.py --processes "
          f"{args.processes} --benchmark {args.benchmark} --cpu {args.cpu}")
    print(f"timer resolution: {statistics.median(resolutions):.0f} ns; overhead per reading: "
          f"median {statistics.median(overheads):.1f} ns (min {min(overheads):.1f}, "
          f"max {max(overheads):.1f}); one sample takes two readings")
    print(f"{args.benchmark}: {args.processes} processes x {args.samples} samples, "
          f"process medians {min(medians):.1f}..{max(medians):.1f} ns/op, "
          f"median {statistics.median(medians):.1f} ns/op")
    print(f"noise floor: CV of process-level medians = {cv * 100:.2f}%")


if __name__ == "__main__":
    # Never two benchmarks at once: wait for any perfd run, compare or benchmark on this machine.
    with holding_machine("benchmarks/bench_harness_noise.py"):
        main()
