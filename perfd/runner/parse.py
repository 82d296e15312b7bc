"""Read the harness's JSON output (format "perfd-harness", see harness/README.md).

Lenient with machines: unknown fields are ignored; only the format name, a known major
version and the fields perfd reads are required. Anything else is a HarnessError that says
what was wrong, so a garbage-printing harness never becomes a row in the database.
"""

from __future__ import annotations

import json
import math
from typing import Any

from perfd.errors import HarnessError
from perfd.model import COUNTER_METRICS, BenchmarkSamples, HarnessContext, HarnessOutput

FORMAT_NAME = "perfd-harness"
# 1 - first format (context + benchmarks with raw per-op samples); 1.1 added context.profile,
#     1.2 per-sample samples_cpu_ns and samples_involuntary_switches (read when present).
SUPPORTED_MAJOR = 1


def _require(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise HarnessError(f"harness output: {where}: missing field '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
        raise HarnessError(
            f"harness output: {where}.{key}: expected {_kind_name(kind)}, got {type(value).__name__}"
        )
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def _numbers(values: Any, where: str) -> tuple[float, ...]:
    if not isinstance(values, list):
        raise HarnessError(f"harness output: {where}: expected a list of numbers")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise HarnessError(f"harness output: {where}[{i}]: expected a finite number, got {v!r}")
        out.append(float(v))
    return tuple(out)


def _counts(values: Any, where: str) -> tuple[int, ...]:
    if not isinstance(values, list):
        raise HarnessError(f"harness output: {where}: expected a list of counts")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise HarnessError(f"harness output: {where}[{i}]: expected a count >= 0, got {v!r}")
    return tuple(values)


def parse_harness_json(text: str) -> HarnessOutput:
    """Parse one harness process's stdout; raises HarnessError naming the problem."""
    if not text.strip():
        raise HarnessError("harness printed nothing on stdout (expected JSON)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        snippet = text.strip().splitlines()[0][:80] if text.strip() else ""
        raise HarnessError(
            f"harness printed output that is not JSON ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno}); first line: {snippet!r}"
        ) from None
    if not isinstance(doc, dict):
        raise HarnessError(f"harness output: expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT_NAME:
        raise HarnessError(
            f"harness output: format is {doc.get('format')!r}, expected {FORMAT_NAME!r} "
            "(is this binary built with perfd's harness?)"
        )
    version = _require(doc, "version", str, "top level")
    major_text = version.split(".", 1)[0]
    if not major_text.isdigit() or int(major_text) != SUPPORTED_MAJOR:
        raise HarnessError(
            f"harness output format version {version} is not supported (this perfd reads "
            f"{SUPPORTED_MAJOR}.x): rebuild the benchmark against perfd's harness "
            "(`perfd harness --path` shows it; `make -C harness` in a checkout) or upgrade perfd"
        )
    context = _parse_context(_require(doc, "context", dict, "top level"), version)
    benchmarks = _require(doc, "benchmarks", list, "top level")
    parsed = []
    for i, bench in enumerate(benchmarks):
        where = f"benchmarks[{i}]"
        name = _require(bench, "name", str, where)
        status = bench.get("status", "ok")
        if status != "ok":
            raise HarnessError(f"benchmark {name!r} failed inside the harness: {bench.get('error')}")
        samples = _numbers(_require(bench, "samples_ns", list, where), f"{where}.samples_ns")
        iterations = _require(bench, "iterations_per_sample", int, where)
        counters_raw = bench.get("counters") or {}
        if not isinstance(counters_raw, dict):
            raise HarnessError(f"harness output: {where}.counters: expected an object")
        # A counter that did not run in some batch (null) is unavailable for this process:
        # never fill the gap with a guess.
        counters = {
            key: _numbers(values, f"{where}.counters.{key}")
            for key, values in counters_raw.items()
            if key in COUNTER_METRICS and isinstance(values, list) and None not in values
        }
        cpu = bench.get("samples_cpu_ns")
        switches = bench.get("samples_involuntary_switches")
        try:
            parsed.append(BenchmarkSamples(
                name, iterations, samples, counters,
                cpu_ns=_numbers(cpu, f"{where}.samples_cpu_ns") if cpu is not None else None,
                involuntary_switches=(_counts(switches, f"{where}.samples_involuntary_switches")
                                      if switches is not None else None)))
        except ValueError as exc:
            raise HarnessError(f"harness output: {where}: {exc}") from None
    return HarnessOutput(context=context, benchmarks=tuple(parsed))


def _parse_context(ctx: dict[str, Any], version: str) -> HarnessContext:
    timer = _require(ctx, "timer", dict, "context")
    counters = ctx.get("counters") or {}
    available = tuple(c for c in counters.get("available", []) if c in COUNTER_METRICS)
    unavailable = counters.get("unavailable") or {}
    reason = "; ".join(f"{k}: {v}" for k, v in sorted(unavailable.items())) or None
    if not counters.get("requested", False):
        reason = "not requested"
    pinned = ctx.get("pinned_cpu")
    return HarnessContext(
        format_version=version,
        harness_version=str(ctx.get("harness_version", "unknown")),
        host=str(ctx.get("host", "")),
        pinned_cpu=pinned if isinstance(pinned, int) and not isinstance(pinned, bool) else None,
        timer_resolution_ns=float(_require(timer, "resolution_ns", (int, float), "context.timer")),
        timer_overhead_ns=float(_require(timer, "overhead_ns", (int, float), "context.timer")),
        counters_available=available,
        counters_unavailable_reason=reason,
        raw=ctx,
    )
