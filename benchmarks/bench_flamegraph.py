"""Speed and size of perfd's profile evidence on a synthetic 100,000-sample `perf script` text.

The text is built from the captured fixture tests/fixtures/profiles/perf_script_request_handle.txt
(real headers, real callchains of examples/minilib's request/handle benchmark): every sample is
one of the fixture's callchains, most of them extended at the leaf by a path through a seeded
synthetic call graph of 600 functions (call-site offsets fixed per caller -> callee, leaf
offsets random, as in real perf data), some topped by a kernel interrupt. The "current"
profile is a second text with another seed in which the samples through one function are
tripled and a new function appears. Timed, each the median of --repeat runs:

    fold (perf script -> Profile, both texts) -> diff -> differential SVG -> plain SVG

Targets: the pipeline <= 2 s (reported without and with folding the baseline text as well),
each SVG <= 2 MB.

    .venv/bin/python benchmarks/bench_flamegraph.py [--samples 100000] [--repeat 3] [--seed 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfd.evidence import (  # noqa: E402
    diff_profiles,
    parse_perf_script,
    render_diff_flamegraph,
    render_flamegraph,
)
from perfd.locks import holding_machine  # noqa: E402
from perfd.runner import fingerprint  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "profiles" / "perf_script_request_handle.txt"
MODULES = ("cache", "codec", "json", "http", "db", "log", "sched", "net", "alloc", "hash")
VERBS = ("get", "put", "scan", "encode", "decode", "flush", "merge", "lookup", "emit", "parse",
         "grow", "check")
LIBC = ("__memmove_avx512_unaligned_erms", "__strcmp_evex", "__strchr_evex", "malloc", "free",
        "__memset_evex_unaligned_erms")
IRQ = ("asm_sysvec_apic_timer_interrupt", "sysvec_apic_timer_interrupt", "__irq_exit_rcu",
       "handle_softirqs", "rcu_core")
EXE = "/tmp/pf/bench_minilib"
LIBC_SO = "/usr/lib/x86_64-linux-gnu/libc.so.6"
T = TypeVar("T")


def fixture_chains() -> list[tuple[str, list[str]]]:
    """(header, callchain lines leaf first) of every fixture sample."""
    out = []
    for block in FIXTURE.read_text().split("\n\n"):
        lines = [line for line in block.split("\n") if line]
        if len(lines) > 1:
            out.append((lines[0], lines[1:]))
    return out


class CallGraph:
    """600 functions, each calling 2-4 later ones (a DAG), with Zipf-like preferences."""

    def __init__(self, rng: random.Random) -> None:
        self.names = [f"app_{MODULES[i % 10]}_{VERBS[(i // 10) % 12]}_{i}" for i in range(600)]
        self.callees: list[list[int]] = []
        for i in range(600):
            later = list(range(i + 1, 600))
            self.callees.append(rng.sample(later, min(len(later), rng.randint(2, 4))))
        self.addr = {name: 0x10000 + 0x400 * k for k, name in enumerate(self.names)}

    def path(self, rng: random.Random, entry_weights: list[float]) -> list[int]:
        node = rng.choices(range(20), weights=entry_weights)[0]
        path = [node]
        while self.callees[node] and len(path) < 10 and rng.random() > 0.3:
            kids = self.callees[node]
            node = rng.choices(kids, weights=[1.0 / (k + 1) ** 2 for k in range(len(kids))])[0]
            path.append(node)
        return path


def frame_line(addr: int, name: str, offset: int, dso: str) -> str:
    return f"\t{addr + offset:16x} {name}+0x{offset:x} ({dso})"


def synthesise(samples: int, seed: int, *, regress: bool) -> str:
    """perf script text of ``samples`` samples (see the module docstring)."""
    rng = random.Random(seed)
    graph = CallGraph(random.Random(12345))  # the same program on both sides
    chains = fixture_chains()
    entry_weights = [1.0 / (k + 1) ** 1.5 for k in range(20)]
    hot = graph.names[graph.callees[1][0]]  # the function the "current" side makes 3x as expensive
    out: list[str] = []
    t = 3442.0
    n = 0
    while n < samples:
        header, chain = rng.choice(chains)
        comm_pid = header.split(":")[0].rsplit(None, 1)[0]
        frames: list[str] = []  # leaf first
        copies = 1
        if rng.random() < 0.8:
            path = graph.path(rng, entry_weights)
            names = [graph.names[i] for i in path]
            if regress and rng.random() < 0.03:
                names.append("app_new_slow_path")
            if rng.random() < 0.2:
                names.append(rng.choice(LIBC))
            for depth in range(len(names) - 1, -1, -1):
                name = names[depth]
                leaf = depth == len(names) - 1
                callee = names[depth + 1] if not leaf else ""
                offset = rng.randrange(0x400) if leaf else zlib.crc32(f"{name}>{callee}".encode()) % 0x400
                dso = LIBC_SO if name in LIBC else EXE
                frames.append(frame_line(graph.addr.get(name, 0x90000), name, offset, dso))
            if regress and hot in names:
                copies = 3
        if rng.random() < 0.02:
            irq = [frame_line(0xFFFFFFFF81000000 + 0x1000 * k, f, rng.randrange(0x80), "[kernel.kallsyms]")
                   for k, f in enumerate(IRQ)]
            frames = list(reversed(irq)) + frames
        frames.extend(chain)
        for _ in range(min(copies, samples - n)):
            t += 0.001001
            out.append(f"{comm_pid}  {t:.6f}:    1001001 cpu-clock: \n" + "\n".join(frames) + "\n\n")
            n += 1
    return "".join(out)


def timed(fn: Callable[[], T], repeat: int) -> tuple[T, float, float]:
    """(result, median wall seconds, median CPU seconds of this process) over ``repeat`` runs.
    CPU time is reported too because benchmark machines are shared: it moves less with load."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, statistics.median(walls), statistics.median(cpus)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the two SVGs into this directory")
    args = parser.parse_args(argv)

    base_text = synthesise(args.samples, args.seed, regress=False)
    cur_text = synthesise(args.samples, args.seed + 1, regress=True)

    baseline, *fold_base = timed(lambda: parse_perf_script(base_text), args.repeat)
    current, *fold_cur = timed(lambda: parse_perf_script(cur_text), args.repeat)
    diff, *diff_t = timed(lambda: diff_profiles(baseline, current), args.repeat)
    title = "request/handle (synthetic)"
    diff_svg, *diff_svg_t = timed(lambda: render_diff_flamegraph(diff, title=title), args.repeat)
    plain_svg, *plain_svg_t = timed(lambda: render_flamegraph(current, title=title), args.repeat)
    chain = [sum(col) for col in zip(fold_cur, diff_t, diff_svg_t, plain_svg_t, strict=True)]
    total = [c + f for c, f in zip(chain, fold_base, strict=True)]
    # Not part of the pipeline: what the elision of frames narrower than 0.1% saves.
    full_svg, full_svg_s, _ = timed(lambda: render_diff_flamegraph(diff, title=title, min_width_frac=0.0), 1)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "diff.svg").write_text(diff_svg)
        (args.out / "plain.svg").write_text(plain_svg)

    command = "python benchmarks/bench_flamegraph.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    mb = 1024 * 1024
    lines = [
        "## Flamegraph evidence: folding, diff and SVG rendering (synthetic 100k samples)",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {fingerprint.cpu_model() or platform.processor()}, {os.cpu_count()} cores, "
        f"Linux {platform.release()}, Python {platform.python_version()}",
        f"- command: `{command.strip()}`",
        f"- input: two `perf script` texts of {args.samples:,} samples each "
        f"({len(base_text) / mb:.1f} MB and {len(cur_text) / mb:.1f} MB), "
        f"{len(baseline.stacks):,} and {len(current.stacks):,} distinct stacks, "
        f"{len(baseline.functions()):,} functions; median of {args.repeat} runs per step; "
        f"load average {os.getloadavg()[0]:.2f} at the start",
        "",
        "| step | wall s | CPU s | target |",
        "|---|---|---|---|",
        f"| fold current `perf script` text -> Profile | {fold_cur[0]:.3f} | {fold_cur[1]:.3f} | |",
        f"| diff_profiles (against the baseline profile) | {diff_t[0]:.3f} | {diff_t[1]:.3f} | |",
        f"| render differential SVG | {diff_svg_t[0]:.3f} | {diff_svg_t[1]:.3f} | |",
        f"| render plain SVG (current) | {plain_svg_t[0]:.3f} | {plain_svg_t[1]:.3f} | |",
        f"| **fold -> diff -> differential SVG -> plain SVG** | **{chain[0]:.3f}** | **{chain[1]:.3f}** "
        "| <= 2 s |",
        f"| fold baseline `perf script` text -> Profile | {fold_base[0]:.3f} | {fold_base[1]:.3f} | |",
        f"| **everything, folding both texts** | **{total[0]:.3f}** | **{total[1]:.3f}** | <= 2 s |",
        "",
        "| SVG | bytes | frames drawn | target |",
        "|---|---|---|---|",
        f"| differential | {len(diff_svg.encode()):,} ({len(diff_svg.encode()) / mb:.2f} MB) | "
        f"{diff_svg.count('<g class=')} | <= 2 MB |",
        f"| plain | {len(plain_svg.encode()):,} ({len(plain_svg.encode()) / mb:.2f} MB) | "
        f"{plain_svg.count('<g class=')} | <= 2 MB |",
        f"| differential, nothing elided (`min_width_frac=0`, {full_svg_s:.2f} s; not the default) | "
        f"{len(full_svg.encode()):,} ({len(full_svg.encode()) / mb:.2f} MB) | "
        f"{full_svg.count('<g class=')} | |",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    # Never two benchmarks at once: wait for any perfd run, compare or benchmark on this machine.
    with holding_machine("benchmarks/bench_flamegraph.py"):
        sys.exit(main())
