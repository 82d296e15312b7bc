"""Hotspot table: which functions' share of the samples changed between two profiles.

Shares are fractions 0-1 of each profile's own total, so a longer current profile does not
look "hotter". *Self* counts a function where it is the leaf frame (the CPU was executing
it); *inclusive* counts it anywhere on the stack, once per stack even when it recurses.

Inlined frames (``name (inlined)``) have rows of their own (their own code as self, all the
code inlined through them as inclusive), and their samples also stay in the self share of the
real function they were inlined into (:meth:`Profile.self_counts`): that function's row is its
whole symbol, as in ``perf report``, and the inlined rows say which part of it grew. So self
shares of a function and of the frames inlined into it overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from perfd.evidence.profile import Profile, is_inlined

# Versions of the hotspot JSON. History, newest last:
#   1 - first format: {"version", "baseline_samples", "current_samples", "hotspots": [...]}.
HOTSPOTS_JSON_VERSION = 1

# "New hotspot" rule: absent before (below ABSENT_BELOW, self or inclusive) and at least
# PRESENT_FROM now, or a self-share jump of at least JUMP.
ABSENT_BELOW = 0.005
PRESENT_FROM = 0.02
JUMP = 0.05
_EPS = 1e-9  # shares are ratios of integers: 0.35 - 0.30 must count as a 5-point jump


@dataclass(frozen=True, slots=True)
class Hotspot:
    """One function before -> after. ``*_before``/``*_after`` are shares 0-1 of samples,
    ``*_delta`` = after - before; ``est_time_delta_ns``: change of self time per operation
    (see :func:`hotspots`)."""

    function: str
    self_before: float
    self_after: float
    self_delta: float
    incl_before: float
    incl_after: float
    incl_delta: float
    new: bool
    est_time_delta_ns: float | None

    def __post_init__(self) -> None:
        for name in ("self_before", "self_after", "incl_before", "incl_after"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0 + 1e-12:
                raise ValueError(f"Hotspot.{name}: a share must be within 0..1, got {value!r}")

    @property
    def impact(self) -> float:
        """The larger of the self and inclusive share growth (negative: an improvement)."""
        return max(self.self_delta, self.incl_delta)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able mapping of every field (shares rounded to 1e-6, time to 0.001 ns)."""
        def share(v: float) -> float:
            return round(v, 6) + 0.0  # + 0.0: no "-0.0" in the JSON

        est = self.est_time_delta_ns
        return {
            "function": self.function,
            "self_before": share(self.self_before), "self_after": share(self.self_after),
            "self_delta": share(self.self_delta),
            "incl_before": share(self.incl_before), "incl_after": share(self.incl_after),
            "incl_delta": share(self.incl_delta),
            "new": self.new, "est_time_delta_ns": None if est is None else round(est, 3) + 0.0,
        }


def _is_new(self_before: float, self_after: float, incl_before: float, incl_after: float) -> bool:
    appeared = any(before < ABSENT_BELOW - _EPS and after >= PRESENT_FROM - _EPS
                   for before, after in ((self_before, self_after), (incl_before, incl_after)))
    return appeared or self_after - self_before >= JUMP - _EPS


def _sort_key(h: Hotspot) -> tuple[int, float, float, str]:
    if h.impact > _EPS:  # regressions: largest growth first, own (self) growth breaking ties
        return (0, -h.impact, -h.self_delta, h.function)
    shrink = min(h.self_delta, h.incl_delta)
    if shrink < -_EPS:  # improvements: largest shrink first
        return (1, shrink, h.self_delta, h.function)
    return (2, -h.incl_after, -h.self_after, h.function)  # unchanged: hottest first


def _time_sort_key(h: Hotspot) -> tuple[int, float, bool, float, str]:
    est = h.est_time_delta_ns or 0.0
    # Rounded to 1e-6 ns: a function and the one inlined frame in it that holds all of its
    # growth add the same time, and the function (the whole symbol) comes first.
    inlined = is_inlined(h.function)
    if est > _EPS:  # most added time per operation first
        return (0, -round(est, 6), inlined, -h.self_delta, h.function)
    if est < -_EPS:
        return (1, round(est, 6), inlined, h.self_delta, h.function)
    return (2, -h.incl_after, inlined, -h.self_after, h.function)


def hotspots(baseline: Profile, current: Profile, *, current_latency_ns: float | None = None,
             baseline_latency_ns: float | None = None, top: int = 20) -> list[Hotspot]:
    """Functions by impact: regressions (largest self or inclusive share growth) first, then
    improvements, then unchanged ones; at most ``top``. Raises ValueError when either profile
    has no samples or ``top``/``current_latency_ns`` is invalid.

    With both latencies (ns per operation) a function's self time per operation is its share
    times the latency, so ``est_time_delta_ns`` = after x current - before x baseline and the
    table is ordered by it: a function that is the whole benchmark before and after (share
    unchanged) but got 10% slower is then the top regression, as it should be."""
    baseline.require_samples("the baseline of a hotspot table")
    current.require_samples("the current side of a hotspot table")
    if top < 0:
        raise ValueError(f"hotspots: top must be >= 0, got {top}")
    if current_latency_ns is not None and not current_latency_ns >= 0:
        raise ValueError(f"hotspots: current_latency_ns must be >= 0, got {current_latency_ns!r}")
    bt, ct = baseline.total, current.total
    self_b, self_c = baseline.self_counts(), current.self_counts()
    incl_b, incl_c = baseline.inclusive_counts(), current.inclusive_counts()
    rows = []
    for name in sorted(incl_b.keys() | incl_c.keys()):
        sb, sa = self_b.get(name, 0) / bt, self_c.get(name, 0) / ct
        ib, ia = incl_b.get(name, 0) / bt, incl_c.get(name, 0) / ct
        est = None
        if current_latency_ns is not None and baseline_latency_ns is not None:
            est = sa * current_latency_ns - sb * baseline_latency_ns
        elif current_latency_ns is not None:
            est = (sa - sb) * current_latency_ns
        rows.append(Hotspot(name, sb, sa, sa - sb, ib, ia, ia - ib, _is_new(sb, sa, ib, ia), est))
    timed = current_latency_ns is not None and baseline_latency_ns is not None
    rows.sort(key=_time_sort_key if timed else _sort_key)
    return rows[:top]


def hotspots_to_json(rows: list[Hotspot], *, baseline: Profile | None = None,
                     current: Profile | None = None, indent: int | None = 2) -> str:
    """Versioned JSON of a hotspot table (sample totals included when the profiles are given)."""
    doc: dict[str, Any] = {
        "version": HOTSPOTS_JSON_VERSION,
        "baseline_samples": baseline.total if baseline is not None else None,
        "current_samples": current.total if current is not None else None,
        "hotspots": [h.as_dict() for h in rows],
    }
    return json.dumps(doc, indent=indent, sort_keys=False, allow_nan=False) + "\n"
