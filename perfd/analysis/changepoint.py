"""Change points in one benchmark's history (one value per run, ordered by commit).

Method: binary segmentation of a least-squares (mean-shift) cost on a spike-cleaned copy of
the series, with a BIC-like penalty expressed in units of a robust *long-run* noise variance,
followed by pruning, location refinement and a confirmation rule for the newest segment.

Why this and not E-divisive means (Otava/Hunter's choice):

- Speed. A split costs one cumulative sum, so a 1,000-point series takes about a
  millisecond; E-divisive's energy statistic is quadratic in the window and needs
  permutations for a p-value.
- A penalty in noise units works for any unit and noise level: the same default flags a
  1 ns step on a 20 ns benchmark with 0.1 ns noise and ignores a 50 us wobble on a 10 ms one.
- A step at the end can be reported after ``confirm`` runs; a rank- or permutation-based
  statistic cannot become significant with 3 points on the new side.

Robustness, each to a failure mode seen in benchmark histories:

- Spikes and short bursts: before segmenting, every point further than ``HAMPEL_LIMIT``
  noise units from its running median is replaced by that median (a Hampel filter). The
  window spans ``2 * (min_segment - 1) + 1`` points, so a burst shorter than ``min_segment``
  never holds the majority of a window and disappears, while a segment of ``min_segment``
  points does and survives. A median filter keeps steps sharp, so real steps survive. In the
  newest points, where a young segment may be as short as ``confirm``, the window narrows to
  5 points: one or two slow runs are still removed.
- Noise scale: the root mean square of first differences, winsorised at their 90th
  percentile. Differences do not see level steps and the winsorising caps the few huge
  differences that steps, spikes and short excursions leave (up to a tenth of them), but,
  unlike the MAD, the scale still covers the full spread of *bimodal* noise (a MAD sees only
  the width of one mode and would turn every run of upper-mode values into a "step").
- Autocorrelation: for AR(1) noise the lag-1 autocorrelation of first differences is
  -(1 - phi) / 2, again insensitive to steps. The penalty uses the long-run variance
  sigma^2 (1 + phi) / (1 - phi), so drifting, autocorrelated series (phi = 0.5 triples the
  variance of a segment mean) do not break into pieces.

Rules of the output:

- ``index`` is the first point of the new segment.
- Every segment has at least ``min_segment`` points, except the newest one, which needs
  ``confirm`` points instead (so a regression can be reported after ``confirm`` runs); while
  it is shorter than ``min_segment + confirm``, its last ``confirm`` points must all lie on the
  new side of the midpoint between the two medians (a segment of exactly ``min_segment`` can
  be two new runs padded with three old ones). A step in the last one or two points (with
  the default ``confirm=3``) is therefore not reported yet.
- A change point whose medians differ by less than ``min_shift_pct`` percent is merged away.

Pure numpy; no state, no randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Points whose distance to the running median exceeds this many difference-scales are replaced
# (a difference-scale is sqrt(2) sigma for white noise, so this is about 5.7 sigma).
HAMPEL_LIMIT = 4.0
# Half width of the running-median window of the spike filter near the end of the series.
HAMPEL_TAIL_HALF_WINDOW = 2
# Upper quantile of |first differences| at which they are winsorised for the noise scale.
WINSOR_QUANTILE = 0.90
# Mean square of N(0, 1) winsorised at its 90% |z| quantile (1.6449): makes the scale
# consistent for Gaussian noise.
_WINSOR_CONSISTENCY = 0.8313
# Autocorrelation is clamped to [0, PHI_MAX]: negative phi would shrink the penalty, and near 1
# the series is a random walk whose "steps" no penalty can tell apart.
PHI_MAX = 0.9
# Default penalty per change point, in units of the long-run noise variance: PENALTY_PER_LOG_N
# * ln(n). 4 ln(200) = 21.2, i.e. a split needs z > 4.6; on white noise the largest split of a
# 200-point series exceeds that in well under 1% of series.
PENALTY_PER_LOG_N = 4.0


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A step in a series: ``index`` is the first point of the new segment.

    ``before_median`` and ``after_median`` are medians of the adjacent segments,
    ``shift_pct = (after - before) / |before| * 100``, ``score`` the size of the mean shift in
    long-run noise units times sqrt(n_before * n_after / (n_before + n_after)) - a z-score;
    it must reach sqrt(penalty) for the point to be reported.
    """

    index: int
    before_median: float
    after_median: float
    shift_pct: float
    score: float

    def __post_init__(self) -> None:
        if self.index < 1:
            raise ValueError(f"ChangePoint.index: must be >= 1, got {self.index}")


@dataclass(frozen=True, slots=True)
class NoiseEstimate:
    """Robust noise of a series: white-noise ``sigma``, lag-1 autocorrelation ``phi`` and the
    long-run standard deviation that the change-point penalty is scaled by."""

    sigma: float
    phi: float
    long_run_sigma: float


def estimate_noise(values: Sequence[float] | np.ndarray) -> NoiseEstimate:
    """Noise of a series from its first differences (insensitive to level steps).

    Raises ValueError for fewer than 3 values or non-finite values.
    """
    x = _series(values)
    if x.size < 3:
        raise ValueError(f"estimate_noise: need at least 3 values, got {x.size}")
    return _noise(x)


def detect_change_points(
    values: Sequence[float] | np.ndarray,
    *,
    min_segment: int = 5,
    confirm: int = 3,
    penalty: float | None = None,
    min_shift_pct: float = 1.0,
    max_change_points: int | None = None,
) -> list[ChangePoint]:
    """Steps in ``values`` (oldest first), in index order.

    ``penalty`` is the minimum squared z-score of a split, in long-run noise units (default
    ``PENALTY_PER_LOG_N * ln(n)``). With ``max_change_points`` only the highest scores are kept.
    Raises ValueError for non-finite values or invalid options.
    """
    if min_segment < 2:
        raise ValueError(f"detect_change_points: min_segment must be >= 2, got {min_segment}")
    if confirm < 1:
        raise ValueError(f"detect_change_points: confirm must be >= 1, got {confirm}")
    if penalty is not None and not penalty > 0:
        raise ValueError(f"detect_change_points: penalty must be > 0, got {penalty}")
    if not min_shift_pct >= 0:
        raise ValueError(f"detect_change_points: min_shift_pct must be >= 0, got {min_shift_pct}")
    if max_change_points is not None and max_change_points < 0:
        raise ValueError(
            f"detect_change_points: max_change_points must be >= 0, got {max_change_points}"
        )
    x = _series(values)
    n = x.size
    if n < min_segment + confirm or max_change_points == 0:
        return []
    pen = penalty if penalty is not None else PENALTY_PER_LOG_N * math.log(n)

    cleaned, noise = _clean(x, min_segment)
    var = noise.long_run_sigma**2
    if var <= 0.0:
        # A noiseless series (deterministic counters): any step is certain; keep the arithmetic
        # finite with a variance far below any real difference.
        scale = float(np.max(np.abs(x))) or 1.0
        var = (1e-9 * scale) ** 2
    seg = _Segmenter(cleaned, min_segment, confirm)
    cps = seg.binary_segmentation(pen * var)
    cps = _prune(x, seg, cps, pen * var, min_shift_pct, min_segment, confirm, max_change_points)

    out = []
    for i, k in enumerate(cps):
        a = cps[i - 1] if i else 0
        b = cps[i + 1] if i + 1 < len(cps) else n
        before, after = float(np.median(x[a:k])), float(np.median(x[k:b]))
        out.append(ChangePoint(
            index=int(k), before_median=before, after_median=after,
            shift_pct=_shift_pct(before, after), score=math.sqrt(seg.gain(a, k, b) / var),
        ))
    return out


# --------------------------------------------------------------------------------------------


def _series(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float).reshape(-1)
    bad = x[~np.isfinite(x)]
    if bad.size:
        raise ValueError(f"change points: values must be finite, got {bad[0]!r}")
    return x


def _shift_pct(before: float, after: float) -> float:
    if before == 0.0:
        return 0.0 if after == 0.0 else math.copysign(math.inf, after)
    return (after - before) / abs(before) * 100.0


def _winsorised(d: np.ndarray) -> np.ndarray:
    limit = float(np.quantile(np.abs(d), WINSOR_QUANTILE))
    return np.clip(d, -limit, limit)


def _noise(x: np.ndarray) -> NoiseEstimate:
    d = _winsorised(np.diff(x))
    ms = float(np.mean(d * d))
    if ms == 0.0:
        return NoiseEstimate(0.0, 0.0, 0.0)
    ms /= _WINSOR_CONSISTENCY
    rho = float(np.mean(d[:-1] * d[1:])) / float(np.mean(d * d)) if d.size > 1 else -0.5
    phi = min(max(1.0 + 2.0 * rho, 0.0), PHI_MAX)
    sigma2 = ms / (2.0 * (1.0 - phi))  # Var(x_t - x_{t-1}) = 2 sigma^2 (1 - phi) for AR(1)
    long_run = sigma2 * (1.0 + phi) / (1.0 - phi)
    return NoiseEstimate(math.sqrt(sigma2), phi, math.sqrt(long_run))


def _running_median(x: np.ndarray, half: int) -> np.ndarray:
    n = x.size
    w = 2 * half + 1
    out = np.empty(n)
    if n >= w:
        out[half:n - half] = np.sort(sliding_window_view(x, w), axis=1)[:, half]
    for i in list(range(min(half, n))) + list(range(max(n - half, half), n)):
        out[i] = np.median(x[max(0, i - half):i + half + 1])
    return out


def _clean(x: np.ndarray, min_segment: int) -> tuple[np.ndarray, NoiseEstimate]:
    """Copy of x with outliers replaced by their running median (Hampel filter), and the noise
    estimated on it."""
    d = _winsorised(np.diff(x))
    # scale 0 (a noiseless series): every point off its running median is an outlier
    scale = math.sqrt(float(np.mean(d * d)) / _WINSOR_CONSISTENCY)
    half = max(min_segment - 1, HAMPEL_TAIL_HALF_WINDOW)
    level = _running_median(x, half)
    tail = x[-(half + HAMPEL_TAIL_HALF_WINDOW):]
    level[-half:] = _running_median(tail, HAMPEL_TAIL_HALF_WINDOW)[-half:]
    x = np.where(np.abs(x - level) > HAMPEL_LIMIT * scale, level, x)
    return x, _noise(x)


class _Segmenter:
    """Least-squares gains of splits of one series, from cumulative sums."""

    def __init__(self, x: np.ndarray, min_segment: int, confirm: int) -> None:
        self.n = x.size
        self.cs = np.concatenate(([0.0], np.cumsum(x)))
        self.min_segment = min_segment
        self.tail_min = confirm

    def _right_min(self, b: int) -> int:
        return self.tail_min if b == self.n else self.min_segment

    def gain(self, a: int, k: int, b: int) -> float:
        """Drop in squared error from splitting x[a:b] at k."""
        nl, nr = k - a, b - k
        ml = (self.cs[k] - self.cs[a]) / nl
        mr = (self.cs[b] - self.cs[k]) / nr
        return float((ml - mr) ** 2 * nl * nr / (nl + nr))

    def best_split(self, a: int, b: int) -> tuple[int, float] | None:
        lo, hi = a + self.min_segment, b - self._right_min(b)
        if hi < lo:
            return None
        ks = np.arange(lo, hi + 1)
        nl = ks - a
        nr = b - ks
        left = self.cs[ks] - self.cs[a]
        right = (self.cs[b] - self.cs[a]) - left
        gains = (left / nl - right / nr) ** 2 * (nl * nr / (b - a))
        j = int(np.argmax(gains))
        return int(ks[j]), float(gains[j])

    def binary_segmentation(self, threshold: float) -> list[int]:
        found: list[int] = []
        stack = [(0, self.n)]
        while stack:
            a, b = stack.pop()
            best = self.best_split(a, b)
            if best is None or best[1] <= threshold:
                continue
            k = best[0]
            found.append(k)
            stack.append((a, k))
            stack.append((k, b))
        return sorted(found)


def _prune(
    x: np.ndarray, seg: _Segmenter, cps: list[int], threshold: float, min_shift_pct: float,
    min_segment: int, confirm: int, max_count: int | None,
) -> list[int]:
    """Refine locations, then drop the weakest change point until every one passes and at
    most ``max_count`` are left; the neighbours of a dropped point are re-judged."""
    n = x.size
    cps = list(cps)
    while cps:
        # Re-place each change point between its neighbours: binary segmentation chose it
        # inside a larger parent segment, which biases it when the parent held other steps.
        for i in range(len(cps)):
            a = cps[i - 1] if i else 0
            b = cps[i + 1] if i + 1 < len(cps) else n
            best = seg.best_split(a, b)
            if best is not None:
                cps[i] = best[0]
        weakest: tuple[float, int] | None = None
        gains: list[tuple[float, int]] = []
        for i, k in enumerate(cps):
            a = cps[i - 1] if i else 0
            b = cps[i + 1] if i + 1 < len(cps) else n
            g = seg.gain(a, k, b)
            before, after = float(np.median(x[a:k])), float(np.median(x[k:b]))
            gains.append((g, i))
            ok = g > threshold and before != after and abs(_shift_pct(before, after)) >= min_shift_pct
            if ok and b == n and n - k < min_segment + confirm:
                # a young newest segment: its last `confirm` points must all be on the new side
                mid = (before + after) / 2.0
                tail = x[n - confirm:]
                ok = bool(np.all(tail > mid)) if after > before else bool(np.all(tail < mid))
            if not ok and (weakest is None or g < weakest[0]):
                weakest = (g, i)
        if weakest is None and max_count is not None and len(cps) > max_count:
            weakest = min(gains)
        if weakest is None:
            return cps
        del cps[weakest[1]]
    return cps
