"""Counter evidence: per-op hardware counters from the harness, ``perf stat`` totals, their diff
(with derived IPC), and deterministic per-function instruction counts from callgrind.

A counter that could not be measured is a :class:`CounterValue` with ``value=None`` and the
reason, never a zero. Parsing (``parse_*``) is pure; the ``*_counters`` / ``callgrind_*``
functions run the benchmark binary.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfd.errors import EvidenceError, HarnessError
from perfd.evidence.capture import c_locale_env, harness_argv
from perfd.model import COUNTER_METRICS
from perfd.runner.execute import harness_failure
from perfd.runner.parse import parse_harness_json
from perfd.runner.procs import Completed, run_process

HARNESS_UNIT = "per op"
PERF_STAT_EVENTS = ("task-clock", "context-switches", "cpu-migrations", "page-faults",
                    "instructions", "cycles", "cache-misses", "branch-misses")
IPC = "ipc"
PERF_MISSING = "perf is not installed ({perf!r} not found): install linux-perf to collect perf stat counters"
VALGRIND_MISSING = ("valgrind is not installed ({valgrind!r} not found): install valgrind "
                    "(Debian: apt install valgrind) to collect instruction counts per function")


@dataclass(frozen=True, slots=True)
class CounterValue:
    """One counter: a value, or None and why it is unavailable (exactly one of the two)."""

    name: str
    value: float | None
    unavailable_reason: str | None
    unit: str = ""  # "per op" (harness), "msec" (perf stat task-clock), "" for plain counts

    def __post_init__(self) -> None:
        if (self.value is None) == (self.unavailable_reason is None):
            raise ValueError(f"CounterValue({self.name}): exactly one of value and unavailable_reason "
                             f"must be set, got value={self.value!r}, reason={self.unavailable_reason!r}")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"CounterValue({self.name}).value: must be finite, got {self.value!r}")

    @property
    def available(self) -> bool:
        return self.value is not None


@dataclass(frozen=True, slots=True)
class CounterDiff:
    """Baseline vs current of one counter; delta_pct is None (with a reason) when not computable."""

    name: str
    baseline: float | None
    current: float | None
    delta_pct: float | None  # (current - baseline) / baseline * 100
    unavailable_reason: str | None


# ---- harness --counters ---------------------------------------------------------------------


def parse_harness_counters(text: str, benchmark: str) -> dict[str, CounterValue]:
    """Per-op counters of ``benchmark`` from harness ``--counters --json`` output: the median
    over the timed samples (``null`` samples skipped). Raises HarnessError for unusable output."""
    parse_harness_json(text)  # format, version and status checks
    doc = json.loads(text)
    ctx = doc.get("context") or {}
    counters = ctx.get("counters") or {}
    unavailable: Mapping[str, Any] = counters.get("unavailable") or {}
    bench = next((b for b in doc.get("benchmarks", []) if b.get("name") == benchmark), None)
    if bench is None:
        raise HarnessError(f"harness output has no results for {benchmark!r}")
    values: Mapping[str, Any] = bench.get("counters") or {}
    out: dict[str, CounterValue] = {}
    for name in COUNTER_METRICS:
        if counters.get("test_software_substitutes"):
            reason = "software substitutes (PERFD_HARNESS_TEST_SOFTWARE_COUNTERS=1), not real counters"
        elif not counters.get("requested", False):
            reason = "not requested (run the harness with --counters)"
        elif name in unavailable:
            reason = str(unavailable[name])
        elif name not in values:
            reason = "not reported by the harness"
        else:
            finite = [float(v) for v in values[name]
                      if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
            if finite:
                out[name] = CounterValue(name, statistics.median(finite), None, HARNESS_UNIT)
                continue
            reason = "the counter never ran during a timed sample (multiplexed out)"
        out[name] = CounterValue(name, None, reason, HARNESS_UNIT)
    return out


def counters_from_harness(
    binary: Path,
    benchmark: str,
    *,
    samples: int = 10,
    min_time_s: float = 0.05,
    cpu: int | None = None,
    timeout_s: float = 300,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> dict[str, CounterValue]:
    """Run ``<binary> --counters --json`` for one benchmark: median per-op cycles, instructions,
    cache_misses and branch_misses; unavailable ones carry the harness's reason.
    Raises HarnessError when the run fails, crashes or hangs."""
    argv = [*harness_argv(binary, benchmark, samples=samples, min_time_s=min_time_s, cpu=cpu,
                          extra_args=extra_args), "--counters", "--json"]
    done = _run(argv, timeout_s, env=env, missing=f"cannot start the benchmark binary {binary}")
    _check_run(done, f"counters of {benchmark!r}", timeout_s)
    return parse_harness_counters(done.stdout, benchmark)


# ---- perf stat --------------------------------------------------------------------------------

_PMU_RE = re.compile(r"^[\w.-]+/(?P<event>[^/]+)/\w*$")   # cpu_core/instructions/u
_MODIFIER_RE = re.compile(r":[ukhHGpPSDIW]+$")            # instructions:u


def _event_name(raw: str) -> str:
    m = _PMU_RE.match(raw)
    name = m.group("event") if m else raw
    return _MODIFIER_RE.sub("", name)


def parse_perf_stat_csv(text: str, events: Sequence[str] = PERF_STAT_EVENTS) -> dict[str, CounterValue]:
    """Parse ``perf stat -x,`` output (value,unit,event,...): "<not supported>" and "<not counted>"
    become unavailable with that reason; hybrid-CPU rows of one event (cpu_core/..., cpu_atom/...)
    are summed. Requested events perf did not print are unavailable."""
    totals: dict[str, float] = {}
    units: dict[str, str] = {}
    reasons: dict[str, str] = {}
    order: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(",")
        if len(fields) < 3:
            continue
        value_text, unit, name = fields[0].strip(), fields[1].strip(), _event_name(fields[2].strip())
        if not name:
            continue
        if name not in order:
            order.append(name)
        if value_text.startswith("<"):
            reasons.setdefault(name, f"perf stat: {value_text}")
            continue
        try:
            value = float(value_text)
        except ValueError:
            reasons.setdefault(name, f"perf stat printed {value_text!r}")
            continue
        if not math.isfinite(value):
            reasons.setdefault(name, f"perf stat printed {value_text!r}")
            continue
        totals[name] = totals.get(name, 0.0) + value
        units.setdefault(name, unit)
    out: dict[str, CounterValue] = {}
    for name in [*events, *(n for n in order if n not in events)]:
        if name in totals:
            out[name] = CounterValue(name, totals[name], None, units.get(name, ""))
        else:
            out[name] = CounterValue(name, None, reasons.get(name, "perf stat did not report it"))
    return out


def perf_stat_counters(
    binary: Path,
    benchmark: str,
    *,
    samples: int = 1000,
    min_time_s: float = 0.0,
    cpu: int | None = None,
    timeout_s: float = 300,
    extra_args: Sequence[str] = (),
    workdir: Path,
    perf: str = "perf",
    events: Sequence[str] = PERF_STAT_EVENTS,
) -> dict[str, CounterValue]:
    """Whole-process totals from ``perf stat -x, -e <events> -- <binary> ...`` for one benchmark.

    The defaults (min_time_s=0: batches of one operation, samples+1 operations in all) run a
    fixed amount of work, so totals of two builds are comparable; with a min_time_s the batch
    size is calibrated and totals scale with speed. Raises EvidenceError when perf is missing
    or fails, HarnessError when the benchmark fails, crashes or hangs.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    out_file = workdir / "perf-stat.csv"
    out_file.unlink(missing_ok=True)
    argv = [perf, "stat", "-x", ",", "-o", str(out_file), "-e", ",".join(events), "--",
            *harness_argv(binary, benchmark, samples=samples, min_time_s=min_time_s, cpu=cpu,
                          extra_args=extra_args, warmup=0), "--json"]
    done = _run(argv, timeout_s, missing=PERF_MISSING.format(perf=perf))
    try:
        text = out_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    if done.returncode != 0 and not text.strip() and not done.timed_out:
        # perf itself failed before running anything (permissions, unknown event).
        raise EvidenceError(f"perf stat of {benchmark!r} failed: perf {done.describe_failure()}"
                            + done.stderr_section())
    _check_run(done, f"perf stat of {benchmark!r}", timeout_s)
    return parse_perf_stat_csv(text, events)


# ---- diff -------------------------------------------------------------------------------------


def _side_reason(side: str, value: CounterValue | None) -> str | None:
    if value is None:
        return f"not measured in the {side}"
    if value.value is None:
        return f"{side}: {value.unavailable_reason}"
    return None


def ipc_of(counters: Mapping[str, CounterValue]) -> CounterValue:
    """Derived instructions per cycle, or unavailable naming the missing counter."""
    ins, cyc = counters.get("instructions"), counters.get("cycles")
    missing = [f"{name} ({c.unavailable_reason if c else 'not measured'})"
               for name, c in (("instructions", ins), ("cycles", cyc)) if c is None or c.value is None]
    if missing:
        reason = "needs instructions and cycles: " + "; ".join(missing) + " unavailable"
        return CounterValue(IPC, None, reason)
    assert ins is not None and cyc is not None and ins.value is not None and cyc.value is not None
    if cyc.value <= 0:
        return CounterValue(IPC, None, "cycles is 0")
    return CounterValue(IPC, ins.value / cyc.value, None, "instructions/cycle")


def diff_counters(
    baseline: Mapping[str, CounterValue], current: Mapping[str, CounterValue]
) -> list[CounterDiff]:
    """One row per counter of either side (baseline order first), then derived IPC when either
    side has instructions or cycles. A missing or unavailable side gives None, never 0."""
    names = [*baseline, *(n for n in current if n not in baseline)]
    rows = [_diff_row(n, baseline.get(n), current.get(n)) for n in names if n != IPC]
    if any(n in names for n in ("instructions", "cycles")):
        rows.append(_diff_row(IPC, ipc_of(baseline), ipc_of(current)))
    return rows


def _diff_row(name: str, base: CounterValue | None, cur: CounterValue | None) -> CounterDiff:
    reasons = [r for r in (_side_reason("baseline", base), _side_reason("current", cur)) if r]
    b = base.value if base is not None else None
    c = cur.value if cur is not None else None
    if reasons or b is None or c is None:
        return CounterDiff(name, b, c, None, "; ".join(reasons) or "unavailable")
    if b == 0:
        if c == 0:
            return CounterDiff(name, b, c, 0.0, None)
        return CounterDiff(name, b, c, None, "baseline is 0: no relative change")
    return CounterDiff(name, b, c, (c - b) / b * 100.0, None)


# ---- callgrind --------------------------------------------------------------------------------

_COMPRESSED_RE = re.compile(r"^\((?P<id>\d+)\)(?:\s+(?P<name>.*))?$")
_RECURSION_RE = re.compile(r"'\d+$")   # callgrind's recursion-level suffix: f'2


def parse_callgrind(text: str, event: str = "Ir") -> dict[str, int]:
    """Self cost of ``event`` per function name from a callgrind output file.

    Follows the format's name compression (``fn=(id) name`` then ``fn=(id)``, shared with
    ``cfn=``), skips the inclusive cost line after ``calls=`` (and the line after
    ``jump=``/``jcnd=``), merges recursion levels (``f'2``) and sums all parts.
    Raises ValueError naming the line of a malformed cost line or unknown event.
    """
    names: dict[str, str] = {}
    self_cost: dict[str, int] = {}
    positions = 1
    column: int | None = 0
    current: str | None = None
    skip_next = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            if skip_next:
                skip_next = False
                continue
            if current is None or column is None:
                continue
            parts = line.split()
            index = positions + column
            if index >= len(parts):
                continue  # trailing zero costs are omitted
            try:
                cost = int(parts[index])
            except ValueError:
                raise ValueError(f"callgrind line {number}: expected integer costs, got {line!r}") from None
            self_cost[current] = self_cost.get(current, 0) + cost
            continue
        key, sep, value = line.partition("=")
        if sep and key in ("fn", "cfn"):
            name = _resolve(names, value.strip(), number)
            if key == "fn":
                current = _RECURSION_RE.sub("", name)
            continue
        if sep and key in ("calls", "jump", "jcnd"):
            skip_next = True
            continue
        if line.startswith("positions:"):
            positions = len(line.split(":", 1)[1].split()) or 1
        elif line.startswith("events:"):
            events = line.split(":", 1)[1].split()
            column = events.index(event) if event in events else None
            if column is None:
                raise ValueError(f"callgrind line {number}: event {event!r} not recorded (events: {events})")
    return self_cost


def _resolve(names: dict[str, str], value: str, number: int) -> str:
    m = _COMPRESSED_RE.match(value)
    if m is None:
        return value
    if m.group("name") is not None:
        names[m.group("id")] = m.group("name")
        return m.group("name")
    if m.group("id") not in names:
        raise ValueError(f"callgrind line {number}: name ({m.group('id')}) used before it was defined")
    return names[m.group("id")]


def callgrind_function_counts(
    binary: Path,
    benchmark: str,
    *,
    timeout_s: float = 600,
    workdir: Path,
    samples: int = 1,
    extra_args: Sequence[str] = (),
    valgrind: str = "valgrind",
) -> dict[str, int]:
    """Instructions executed (Ir, self) per function for one benchmark under callgrind.

    Runs ``--samples N --warmup 0 --min-time 0``: batches of one operation, so the work (setup,
    one calibration operation, N timed operations) and the counts are the same on every run of
    one build. Raises EvidenceError when valgrind is missing or fails, HarnessError when the
    benchmark fails.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    out_file = workdir / "callgrind.out"
    out_file.unlink(missing_ok=True)
    argv = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out_file}",
            *harness_argv(binary, benchmark, samples=samples, min_time_s=0.0, cpu=None,
                          extra_args=extra_args, warmup=0), "--json"]
    done = _run(argv, timeout_s, missing=VALGRIND_MISSING.format(valgrind=valgrind))
    _check_run(done, f"callgrind of {benchmark!r}", timeout_s)
    try:
        text = out_file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise EvidenceError(f"callgrind of {benchmark!r} wrote no {out_file}: {exc.strerror}"
                            + done.stderr_section()) from None
    try:
        counts = parse_callgrind(text)
    except ValueError as exc:
        raise EvidenceError(f"{out_file}: {exc}") from None
    if not counts:
        raise EvidenceError(f"callgrind of {benchmark!r}: {out_file} holds no function costs")
    return counts


# ---- shared -----------------------------------------------------------------------------------


def _run(argv: Sequence[str], timeout_s: float, *, missing: str,
         env: Mapping[str, str] | None = None) -> Completed:
    try:
        return run_process(argv, timeout_s=timeout_s, env=c_locale_env(env))
    except FileNotFoundError:
        raise EvidenceError(missing) from None
    except PermissionError as exc:
        raise EvidenceError(f"cannot start {argv[0]}: {exc.strerror}") from None


def _check_run(done: Completed, what: str, timeout_s: float) -> None:
    """Raise HarnessError naming the cause when the (possibly wrapped) harness run failed."""
    failure = harness_failure(done, timeout_s)
    if failure is not None:
        raise HarnessError(f"{what}: the benchmark {failure}" + done.stderr_section())

