"""Adaptive interleaved comparison: decide whether to add more pairs or stop.

The compare command runs baseline and current interleaved, one pair at a time, and asks
:func:`next_step` after each pair. Looking at the data after every pair and stopping at the
first p < alpha would inflate the false-positive rate far above alpha (each look is another
chance), so alpha is spent over a fixed schedule of looks:

- looks happen at ``min_pairs``, then every ``look_every`` pairs, and at ``max_pairs``;
- every look tests at ``alpha / number_of_looks`` (Bonferroni). By the union bound the chance
  that any look of an A/A comparison is significant stays at most alpha, whatever the
  correlation between looks. It is more conservative than a Pocock boundary, which needs
  numerical integration over the looks' joint distribution, and it needs no assumption about
  when the caller stops.

At a look the answer is *clear*, and the caller stops, when the comparison is REGRESSED or
IMPROVED with its whole CI beyond the threshold, or when the whole CI lies inside the
threshold band (whatever changed is smaller than what matters). Anything else - too few pairs
for the per-look alpha, NOISY, a CI that straddles the threshold - continues until
``max_pairs``, where the caller stops with whatever the last comparison says.

Pure: values in, a frozen dataclass out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from perfd.analysis.compare import Comparison, Status, compare_paired
from perfd.model import Direction

Action = Literal["continue", "stop"]


@dataclass(frozen=True, slots=True)
class SequentialStep:
    """What to do after the pairs seen so far, and the comparison at this point.

    ``look`` is the 1-based index of this look in the schedule, None between looks;
    ``alpha_per_look`` is the significance level the comparison was tested at.
    """

    action: Action
    comparison: Comparison
    reason: str
    n_pairs: int
    look: int | None
    n_looks: int
    alpha_per_look: float


def look_schedule(min_pairs: int, max_pairs: int, look_every: int) -> tuple[int, ...]:
    """Pair counts at which the data are tested: min_pairs, every look_every pairs, max_pairs.

    Raises ValueError for invalid bounds.
    """
    if min_pairs < 2:
        raise ValueError(f"look_schedule: min_pairs must be >= 2, got {min_pairs}")
    if max_pairs < min_pairs:
        raise ValueError(f"look_schedule: max_pairs ({max_pairs}) must be >= min_pairs ({min_pairs})")
    if look_every < 1:
        raise ValueError(f"look_schedule: look_every must be >= 1, got {look_every}")
    looks = list(range(min_pairs, max_pairs + 1, look_every))
    if looks[-1] != max_pairs:
        looks.append(max_pairs)
    return tuple(looks)


def next_step(
    baseline: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    *,
    direction: Direction,
    threshold_pct: float = 5.0,
    alpha: float = 0.05,
    min_pairs: int = 5,
    max_pairs: int = 60,
    look_every: int = 5,
    max_baseline_cv: float = 0.15,
    env_changed: bool = False,
    rng: np.random.Generator | None = None,
    n_boot: int = 2000,
) -> SequentialStep:
    """After len(baseline) interleaved pairs: "continue" (add a pair) or "stop", with the
    comparison at the per-look alpha. Raises ValueError as :func:`compare_paired` does."""
    looks = look_schedule(min_pairs, max_pairs, look_every)
    alpha_per_look = alpha / len(looks)
    n = len(baseline)
    comparison = compare_paired(
        baseline, current, direction=direction, threshold_pct=threshold_pct,
        alpha=alpha_per_look, min_samples=min_pairs, max_baseline_cv=max_baseline_cv,
        env_changed=env_changed, rng=rng, n_boot=n_boot,
    )
    look = looks.index(n) + 1 if n in looks else None

    def step(action: Action, reason: str) -> SequentialStep:
        return SequentialStep(action, comparison, reason, n, look, len(looks), alpha_per_look)

    if n >= max_pairs:
        return step("stop", f"reached the cap of {max_pairs} pairs: {comparison.status.value}")
    if n < min_pairs:
        return step("continue", f"{n} of at least {min_pairs} pairs")
    if look is None:
        nxt = next(k for k in looks if k > n)
        return step("continue", f"between looks; next look at {nxt} pairs")
    status = comparison.status
    if status in (Status.INSUFFICIENT_DATA, Status.NOISY, Status.INCOMPARABLE):
        return step("continue", f"look {look}/{len(looks)}: {status.value}: {comparison.reason}")
    lo, hi = ((r - 1.0) * 100.0 for r in comparison.ratio_ci)
    magnitude = comparison.criterion("magnitude")
    if status in (Status.REGRESSED, Status.IMPROVED) and magnitude is not None and magnitude.met:
        return step("stop", f"look {look}/{len(looks)}: clear {status.value.lower()} change: "
                            f"{comparison.reason}")
    if -threshold_pct < lo and hi < threshold_pct:
        return step("stop", f"look {look}/{len(looks)}: the whole CI ({lo:+.1f}% .. {hi:+.1f}%) is "
                            f"within +-{threshold_pct:g}%")
    return step("continue", f"look {look}/{len(looks)}: inconclusive ({lo:+.1f}% .. {hi:+.1f}% "
                            f"against +-{threshold_pct:g}%)")
