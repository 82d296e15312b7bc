"""Deciding over many benchmarks at once: false-discovery control and infrastructure shifts.

A 200-benchmark suite tested at alpha = 0.05 finds about ten "significant" changes a night by
chance alone. :func:`apply_fdr` re-decides significance with Benjamini-Hochberg adjusted
p-values, which bounds the expected share of false discoveries among the reported changes
by ``q``. :func:`infrastructure_shift` recognises the other failure mode: when most
benchmarks of one run move together by a similar amount, the machine changed, not the code,
and one infrastructure finding replaces N regressions.

Pure: sequences in, frozen dataclasses out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from perfd.analysis.compare import Comparison, Criterion, Status
from perfd.model import Direction


def benjamini_hochberg(
    p_values: Sequence[float] | np.ndarray, q: float = 0.05
) -> tuple[list[float], list[bool]]:
    """BH step-up procedure: (adjusted p-values, rejected at level q), in input order.

    Raises ValueError when a p-value is outside [0, 1] or q is outside (0, 1).
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"benjamini_hochberg: q must be in (0, 1), got {q}")
    p = np.asarray(p_values, dtype=float).reshape(-1)
    if p.size == 0:
        return [], []
    bad = p[~((p >= 0.0) & (p <= 1.0))]
    if bad.size:
        raise ValueError(f"benjamini_hochberg: p-values must be in [0, 1], got {bad[0]!r}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    # step-up: the adjusted p of rank i is the smallest scaled p at rank >= i
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist(), (adjusted <= q).tolist()


def apply_fdr(comparisons: Sequence[Comparison], q: float = 0.05) -> list[Comparison]:
    """Comparisons with ``p_adjusted`` set and significance re-decided at FDR level q.

    The family is every comparison that has a p-value (INSUFFICIENT_DATA ones were never
    tested and pass through unchanged). A REGRESSED/IMPROVED whose adjusted p-value fails
    becomes UNCHANGED; the significance criterion of every tested comparison is restated with
    the adjusted p-value.
    """
    tested = [i for i, c in enumerate(comparisons) if c.p_value is not None]
    adjusted, rejected = benjamini_hochberg([comparisons[i].p_value for i in tested], q)  # type: ignore[misc]
    out = list(comparisons)
    for i, p_adj, keep in zip(tested, adjusted, rejected, strict=True):
        c = comparisons[i]
        criteria = tuple(
            Criterion(
                "significance", keep,
                f"BH-adjusted p={p_adj:.3g} {'<=' if keep else '>'} q {q:g} "
                f"(raw p={c.p_value:.3g}, {len(tested)} tests)",
            )
            if cr.name == "significance" else cr
            for cr in c.criteria
        )
        if c.status in (Status.REGRESSED, Status.IMPROVED) and not keep:
            out[i] = replace(
                c, status=Status.UNCHANGED, confidence=None, p_adjusted=p_adj, criteria=criteria,
                reason=f"not significant after false-discovery control (adjusted p={p_adj:.3g}); "
                       f"was {c.status.value}: {c.reason}",
            )
        else:
            out[i] = replace(c, p_adjusted=p_adj, criteria=criteria)
    return out


@dataclass(frozen=True, slots=True)
class InfraFinding:
    """Most benchmarks of one run moved together: suspect the machine, not the code.

    ``median_shift_pct`` is the median size of the movers' shift (positive), ``direction``
    says which way; ``indexes`` point into the comparisons passed in.
    """

    direction: Literal["worse", "better"]
    median_shift_pct: float
    n_moved: int
    n_total: int
    indexes: tuple[int, ...]
    reason: str

    def __post_init__(self) -> None:
        if not 0 < self.n_moved <= self.n_total:
            raise ValueError(
                f"InfraFinding.n_moved: must be in 1..n_total ({self.n_total}), got {self.n_moved}"
            )


def infrastructure_shift(
    comparisons: Sequence[Comparison],
    min_fraction: float = 0.6,
    min_benchmarks: int = 5,
    similarity: float = 0.5,
) -> InfraFinding | None:
    """One finding when at least ``min_fraction`` of the tested benchmarks moved significantly
    the same way by a similar amount (within ``similarity`` x the median shift), else None.

    "Moved significantly" reads the significance criterion (so it follows :func:`apply_fdr`
    when that ran first) together with a CI of the ratio that excludes 1; the way is judged in
    worse/better terms, so a slower machine moves time up and throughput down alike.
    Raises ValueError for a fraction outside (0, 1].
    """
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"infrastructure_shift: min_fraction must be in (0, 1], got {min_fraction}")
    tested = [(i, c) for i, c in enumerate(comparisons) if c.p_value is not None]
    n_total = len(tested)
    if n_total < max(min_benchmarks, 1):
        return None
    worse: list[tuple[int, float]] = []
    better: list[tuple[int, float]] = []
    for i, c in tested:
        sig = c.criterion("significance")
        if sig is None or not sig.met or not all(map(math.isfinite, c.ratio_ci)):
            continue
        sign = 1.0 if c.direction is Direction.LOWER else -1.0
        shift = sign * c.change_pct  # positive = worse
        lo, hi = sorted(sign * (r - 1.0) for r in c.ratio_ci)
        if lo > 0 and shift > 0:
            worse.append((i, shift))
        elif hi < 0 and shift < 0:
            better.append((i, -shift))
    way: Literal["worse", "better"]
    movers, way = (worse, "worse") if len(worse) >= len(better) else (better, "better")
    if not movers:
        return None
    center = float(np.median([s for _, s in movers]))
    similar = [(i, s) for i, s in movers if abs(s - center) <= similarity * center]
    if len(similar) < max(min_benchmarks, math.ceil(min_fraction * n_total)):
        return None
    median_shift = float(np.median([s for _, s in similar]))
    return InfraFinding(
        direction=way,
        median_shift_pct=median_shift,
        n_moved=len(similar),
        n_total=n_total,
        indexes=tuple(i for i, _ in similar),
        reason=(
            f"{len(similar)} of {n_total} benchmarks ({len(similar) / n_total:.0%}) got {way} by a "
            f"median {median_shift:.1f}% together: the machine or its environment changed, "
            f"not the code"
        ),
    )
