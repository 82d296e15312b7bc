"""Two-sample decision for one benchmark x metric: did ``current`` change against ``baseline``?

Inputs are process-level values (each process already reduced to the median of its samples;
see DESIGN.md "Measurement methodology"). Two entry points:

- :func:`compare_independent` - two separate batches of processes: Mann-Whitney U test,
  bootstrap CI of the ratio of the medians.
- :func:`compare_paired` - interleaved pairs run side by side: Wilcoxon signed-rank test on the
  paired log-ratios ``log(current / baseline)``, bootstrap CI of their median. Slow drift of
  the machine cancels inside each pair. Pairs whose processes took turns sample by sample
  are first reduced to one value per side by :func:`lockstep_pair_values`.

How a status is decided (``threshold_pct`` is the size of change that matters):

1. Too few values, or a test that cannot reach ``alpha`` at these sample sizes (asv checks the
   same: 5 vs 5 processes cannot give p < 0.001 with the U test; 5 pairs cannot give p < 0.05
   with the signed-rank test) -> INSUFFICIENT_DATA. Never UNCHANGED.
2. REGRESSED (IMPROVED) when p < alpha, the CI of the ratio excludes 1 on the worse (better)
   side and the change is at least ``min_change_pct`` (default: a fifth of the threshold).
3. A baseline whose CV is at least ``max_baseline_cv`` -> NOISY, unless the shift is clear and
   large: REGRESSED/IMPROVED, the whole CI beyond the threshold, the change at least
   ``NOISY_BASELINE_SHIFT_CVS`` baseline CVs, and (independent batches) the current median
   outside the range of the baseline values.
4. Otherwise UNCHANGED.

The regression checklist (five criteria) grades a REGRESSED / IMPROVED status:

- magnitude: the whole CI of the change lies beyond ``threshold_pct`` (the change is at least
  the threshold *with confidence*, not just by its point estimate),
- significance: p < alpha,
- consistency: worse in at least 3 consecutive runs (unknown -> not met),
- stable baseline: baseline CV < ``max_baseline_cv``. For paired runs the noise that matters is
  the one pairing cannot cancel, so the criterion (and NOISY) reads the *pair noise CV*,
  SD(log-ratios) / sqrt(2) - the per-run noise - instead of a baseline CV that slow drift
  inflates. Both are taken without outliers (values farther than ``OUTLIER_MADS`` robust SDs
  from the median), so two wild processes among twenty cannot make a clear regression NOISY.
  ``Comparison.baseline_cv`` always reports the plain baseline CV.
- environment: the fingerprint did not change.

4-5 met -> HIGH, 3 -> MEDIUM, fewer -> LOW. The magnitude criterion also caps the level, so a
tiny but significant shift never pages anyone: when it is not met, confidence is at most MEDIUM
if the change is *near* the threshold (point estimate at least ``NEAR_THRESHOLD_FRACTION`` of
it and the CI reaching it) and LOW otherwise. An *alert* is REGRESSED with MEDIUM or HIGH
confidence (:attr:`Comparison.alert_worthy`).

Pure: arrays in, frozen dataclasses out. The bootstrap uses the generator passed in, or a
fixed seed, so the same input always gives the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

from perfd.model import Confidence, Direction, ProcessResult, Status

MANN_WHITNEY = "mann-whitney-u"
WILCOXON = "wilcoxon-signed-rank"

# Consecutive worse runs that make a regression "consistent".
CONSISTENT_RUNS = 3
# A change whose point estimate reaches this fraction of the threshold (and whose CI reaches
# the threshold) is "near" it: at most MEDIUM confidence instead of LOW. With 10 processes a
# side at 2% CV the median ratio has a standard error of about 1.1%, so 0.7 x 5% = 3.5% sits
# halfway between a 2% change (no alert) and a 5% change (alert).
NEAR_THRESHOLD_FRACTION = 0.7
# On an unstable baseline only a shift of at least this many baseline CVs is "clear and large"
# (a 2x slowdown on a 25%-CV baseline is; a 10% shift is not).
NOISY_BASELINE_SHIFT_CVS = 2.0
# Seed of the bootstrap when the caller passes no generator.
DEFAULT_BOOTSTRAP_SEED = 20_240_601


_LEVEL_ORDER = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}


@dataclass(frozen=True, slots=True)
class Criterion:
    """One item of the regression checklist, with the numbers that decided it."""

    name: str
    met: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """The decision for one benchmark x metric, with every number behind it.

    ``change_pct`` is signed in the metric's own terms: ``(current / baseline - 1) * 100`` of
    the medians (paired: of the median paired ratio). ``ratio_ci`` is the bootstrap CI of
    current / baseline. ``cohen_d`` and ``cliffs_delta`` are signed current minus baseline
    (positive = current larger), whatever the metric's direction. ``p_adjusted`` is set by
    :func:`perfd.analysis.fdr.apply_fdr`.
    """

    status: Status
    confidence: Confidence | None
    reason: str
    baseline_median: float
    current_median: float
    change_pct: float
    ratio_ci: tuple[float, float]
    p_value: float | None
    test: str
    cohen_d: float | None
    hodges_lehmann_pct: float | None
    cliffs_delta: float | None
    baseline_cv: float
    criteria: tuple[Criterion, ...]
    n_baseline: int
    n_current: int
    direction: Direction = Direction.LOWER
    p_adjusted: float | None = None

    def __post_init__(self) -> None:
        if self.n_baseline < 0 or self.n_current < 0:
            raise ValueError(
                f"Comparison.n_baseline/n_current: must be >= 0, got {self.n_baseline}/{self.n_current}"
            )
        if self.p_value is not None and not 0.0 <= self.p_value <= 1.0:
            raise ValueError(f"Comparison.p_value: must be in [0, 1], got {self.p_value}")
        if self.confidence is not None and self.status not in (Status.REGRESSED, Status.IMPROVED):
            raise ValueError(
                f"Comparison.confidence: only REGRESSED/IMPROVED carry one, got {self.confidence} "
                f"with {self.status}"
            )

    @property
    def alert_worthy(self) -> bool:
        """True for a regression that should page someone: REGRESSED with MEDIUM or HIGH confidence."""
        return self.status is Status.REGRESSED and self.confidence in (Confidence.MEDIUM, Confidence.HIGH)

    def criterion(self, name: str) -> Criterion | None:
        """The checklist item called ``name``, None when the checklist was not evaluated."""
        for c in self.criteria:
            if c.name == name:
                return c
        return None


# --------------------------------------------------------------------------------------------
# Public entry points


def compare_independent(
    baseline: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    *,
    direction: Direction,
    threshold_pct: float = 5.0,
    alpha: float = 0.05,
    min_samples: int = 5,
    max_baseline_cv: float = 0.15,
    consecutive_worse_runs: int | None = None,
    env_changed: bool = False,
    incomparable_on_env_change: bool = False,
    min_change_pct: float | None = None,
    confidence_level: float = 0.95,
    rng: np.random.Generator | None = None,
    n_boot: int = 2000,
) -> Comparison:
    """Compare two independent batches of process-level values (Mann-Whitney U).

    Raises ValueError for non-finite or non-positive values and for invalid options.
    """
    b = _values("baseline", baseline)
    c = _values("current", current)
    opts = _Options.make(
        direction, threshold_pct, alpha, min_samples, max_baseline_cv, consecutive_worse_runs,
        env_changed, incomparable_on_env_change, min_change_pct, confidence_level, n_boot,
    )
    return _decide(b, c, paired=False, opts=opts, rng=rng)


def compare_paired(
    baseline: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    *,
    direction: Direction,
    threshold_pct: float = 5.0,
    alpha: float = 0.05,
    min_samples: int = 5,
    max_baseline_cv: float = 0.15,
    consecutive_worse_runs: int | None = None,
    env_changed: bool = False,
    incomparable_on_env_change: bool = False,
    min_change_pct: float | None = None,
    confidence_level: float = 0.95,
    rng: np.random.Generator | None = None,
    n_boot: int = 2000,
) -> Comparison:
    """Compare interleaved pairs (``baseline[i]`` ran next to ``current[i]``): signed-rank test.

    Raises ValueError for non-finite or non-positive values, unequal lengths or invalid options.
    """
    b = _values("baseline", baseline)
    c = _values("current", current)
    if b.size != c.size:
        raise ValueError(
            f"compare_paired: baseline and current must have one value per pair, "
            f"got {b.size} and {c.size}"
        )
    opts = _Options.make(
        direction, threshold_pct, alpha, min_samples, max_baseline_cv, consecutive_worse_runs,
        env_changed, incomparable_on_env_change, min_change_pct, confidence_level, n_boot,
    )
    return _decide(b, c, paired=True, opts=opts, rng=rng)


def lockstep_pair_values(
    baseline: Sequence[Sequence[float] | np.ndarray],
    current: Sequence[Sequence[float] | np.ndarray],
) -> tuple[list[float], list[float]]:
    """One (baseline, current) value per pair of processes that took turns sample by sample.

    ``baseline[i]`` and ``current[i]`` are the samples of pair i's two processes; sample j of
    each ran back to back. The baseline value is the median of its samples; the current value
    is that times the median of the sample ratios ``current[i][j] / baseline[i][j]``. On a
    machine with slow phases (a virtual CPU whose host is busy runs some code at half speed
    for a fraction of a second) a phase can begin between two samples and move one median
    but not the other; the sample ratios outvote that. Samples that cannot form a ratio
    (a counter at 0) are left out; with none left the current value is its median.
    Feed the result to :func:`compare_paired`. Raises ValueError for unequal shapes.
    """
    if len(baseline) != len(current):
        raise ValueError(f"lockstep pairs: {len(baseline)} baseline and {len(current)} "
                         f"current processes")
    b_out: list[float] = []
    c_out: list[float] = []
    for i, (b_raw, c_raw) in enumerate(zip(baseline, current, strict=True), start=1):
        b = np.asarray(b_raw, dtype=float)
        c = np.asarray(c_raw, dtype=float)
        if b.size != c.size:
            raise ValueError(f"lockstep pair {i}: {b.size} baseline samples and {c.size} "
                             f"current samples")
        b_median = float(np.median(b))
        usable = (b > 0) & (c > 0) & np.isfinite(b) & np.isfinite(c)
        if b_median > 0 and usable.any():
            c_value = b_median * float(np.exp(np.median(np.log(c[usable] / b[usable]))))
        else:
            c_value = float(np.median(c))
        b_out.append(b_median)
        c_out.append(c_value)
    return b_out, c_out


def process_pair_values(base: Sequence[ProcessResult], cur: Sequence[ProcessResult],
                 metric: str) -> tuple[list[float], list[float]]:
    """One value per side per lock-step pair of processes (the pair index is the processes'
    repetition), from their samples of ``metric``; empty when it was not measured."""
    sides = []
    for processes in (base, cur):
        ordered = sorted(processes, key=lambda p: p.repetition)
        sides.append([v for p in ordered if (v := p.samples.metric_values(metric)) is not None])
    if not sides[0] or len(sides[0]) != len(sides[1]):
        return [], []  # metric not measured on this machine (e.g. counters without a PMU)
    return lockstep_pair_values(sides[0], sides[1])


def smallest_attainable_p(n_baseline: int, n_current: int, *, paired: bool) -> float:
    """Smallest two-sided p-value the test used here can return at these sample sizes."""
    if paired:
        return _min_p_wilcoxon(n_baseline)
    return _min_p_mann_whitney(min(n_baseline, n_current), max(n_baseline, n_current))


# --------------------------------------------------------------------------------------------
# Options and validation


@dataclass(frozen=True, slots=True)
class _Options:
    direction: Direction
    threshold_pct: float
    alpha: float
    min_samples: int
    max_baseline_cv: float
    consecutive_worse_runs: int | None
    env_changed: bool
    incomparable_on_env_change: bool
    min_change_pct: float
    confidence_level: float
    n_boot: int

    @classmethod
    def make(
        cls, direction: Direction, threshold_pct: float, alpha: float, min_samples: int,
        max_baseline_cv: float, consecutive_worse_runs: int | None, env_changed: bool,
        incomparable_on_env_change: bool, min_change_pct: float | None, confidence_level: float,
        n_boot: int,
    ) -> _Options:
        if not isinstance(direction, Direction):
            raise ValueError(f"direction: must be a Direction, got {direction!r}")
        if not (math.isfinite(threshold_pct) and threshold_pct > 0):
            raise ValueError(f"threshold_pct: must be > 0, got {threshold_pct}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha: must be in (0, 1), got {alpha}")
        if min_samples < 2:
            raise ValueError(f"min_samples: must be >= 2, got {min_samples}")
        if not max_baseline_cv > 0:
            raise ValueError(f"max_baseline_cv: must be > 0, got {max_baseline_cv}")
        if consecutive_worse_runs is not None and consecutive_worse_runs < 0:
            raise ValueError(f"consecutive_worse_runs: must be >= 0 or None, got {consecutive_worse_runs}")
        if min_change_pct is None:
            min_change_pct = threshold_pct / 5.0
        if not min_change_pct >= 0:
            raise ValueError(f"min_change_pct: must be >= 0, got {min_change_pct}")
        if not 0.5 <= confidence_level < 1.0:
            raise ValueError(f"confidence_level: must be in [0.5, 1), got {confidence_level}")
        if n_boot < 100:
            raise ValueError(f"n_boot: must be >= 100, got {n_boot}")
        return cls(
            direction, float(threshold_pct), float(alpha), int(min_samples), float(max_baseline_cv),
            consecutive_worse_runs, bool(env_changed), bool(incomparable_on_env_change),
            float(min_change_pct), float(confidence_level), int(n_boot),
        )


def _values(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    bad = arr[~(np.isfinite(arr) & (arr > 0))]
    if bad.size:
        raise ValueError(f"{name}: process values must be finite and > 0, got {bad[0]!r}")
    return arr


# --------------------------------------------------------------------------------------------
# Statistics


@lru_cache(maxsize=512)
def _min_p_mann_whitney(n_small: int, n_large: int) -> float:
    # Perfect separation gives the smallest p the U test can return (exact or asymptotic,
    # whichever scipy picks at these sizes - the same choice it makes for the real data).
    if n_small < 1:
        return 1.0
    x = np.arange(n_small, dtype=float)
    y = np.arange(n_small, n_small + n_large, dtype=float)
    return float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


@lru_cache(maxsize=512)
def _min_p_wilcoxon(n: int) -> float:
    if n < 1:
        return 1.0
    return float(stats.wilcoxon(np.arange(1.0, n + 1.0), alternative="two-sided").pvalue)


def _cv(x: np.ndarray) -> float:
    if x.size < 2:
        return math.nan
    return float(x.std(ddof=1) / x.mean())


OUTLIER_MADS = 3.5  # beyond this many robust SDs (1.4826 MAD) from the median: an outlier


def _robust_sd(x: np.ndarray) -> float:
    """SD of the values left after dropping outliers (farther than OUTLIER_MADS robust SDs
    from the median): the plain SD for well-behaved data, deaf to a few wild processes."""
    med = float(np.median(x))
    scale = 1.4826 * float(np.median(np.abs(x - med)))
    inliers = x[np.abs(x - med) <= OUTLIER_MADS * scale] if scale > 0 else x
    return float((inliers if inliers.size >= 2 else x).std(ddof=1))


def _robust_cv(x: np.ndarray) -> float:
    if x.size < 2:
        return math.nan
    return _robust_sd(x) / float(np.median(x))


def _row_medians(samples: np.ndarray) -> np.ndarray:
    """Median of each row (sorting short rows beats np.median's partition here)."""
    s = np.sort(samples, axis=1)
    n = s.shape[1]
    if n % 2:
        return s[:, n // 2]
    return 0.5 * (s[:, n // 2 - 1] + s[:, n // 2])


def _bootstrap_ratio_ci(
    b: np.ndarray, c: np.ndarray, paired: bool, level: float, n_boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    if paired:
        log_ratios = np.log(c / b)
        idx = rng.integers(0, log_ratios.size, size=(n_boot, log_ratios.size))
        lo, hi = np.exp(np.quantile(_row_medians(log_ratios[idx]), q))
    else:
        mb = _row_medians(b[rng.integers(0, b.size, size=(n_boot, b.size))])
        mc = _row_medians(c[rng.integers(0, c.size, size=(n_boot, c.size))])
        lo, hi = np.quantile(mc / mb, q)
    return float(lo), float(hi)


def _cohen_d(b: np.ndarray, c: np.ndarray) -> float | None:
    # The seed formula: difference of means over the root mean of the two variances.
    pooled = math.sqrt((float(b.var(ddof=1)) + float(c.var(ddof=1))) / 2.0)
    if pooled == 0.0:
        return None
    return (float(c.mean()) - float(b.mean())) / pooled


def _cliffs_delta(b: np.ndarray, c: np.ndarray) -> float:
    diff = c[:, None] - b[None, :]
    return float((np.count_nonzero(diff > 0) - np.count_nonzero(diff < 0)) / diff.size)


def _hodges_lehmann_pct(b: np.ndarray, c: np.ndarray, paired: bool) -> float:
    if paired:
        d = c - b
        i, j = np.triu_indices(d.size)
        shift = float(np.median((d[i] + d[j]) / 2.0))  # median of the Walsh averages
    else:
        shift = float(np.median(c[:, None] - b[None, :]))
    return shift / float(np.median(b)) * 100.0


def _p_value(b: np.ndarray, c: np.ndarray, paired: bool) -> float:
    if paired:
        log_ratios = np.log(c / b)
        if not np.any(log_ratios):
            return 1.0  # every pair identical: no evidence of any change
        return float(stats.wilcoxon(log_ratios, alternative="two-sided").pvalue)
    if np.all(b == b[0]) and np.all(c == b[0]):
        return 1.0
    return float(stats.mannwhitneyu(c, b, alternative="two-sided").pvalue)


# --------------------------------------------------------------------------------------------
# Decision


@dataclass(frozen=True, slots=True)
class _Stats:
    baseline_median: float
    current_median: float
    change_pct: float
    ratio_ci: tuple[float, float]
    cohen_d: float | None
    hodges_lehmann_pct: float | None
    cliffs_delta: float | None
    baseline_cv: float
    noise_cv: float  # the spread the stable-baseline criterion judges
    noise_name: str


def _describe(
    b: np.ndarray, c: np.ndarray, paired: bool, opts: _Options, rng: np.random.Generator | None
) -> _Stats:
    nan = math.nan
    b_med = float(np.median(b)) if b.size else nan
    c_med = float(np.median(c)) if c.size else nan
    if paired and b.size:
        change = (math.exp(float(np.median(np.log(c / b)))) - 1.0) * 100.0
    else:
        change = (c_med / b_med - 1.0) * 100.0 if b.size and c.size else nan
    # The stable-baseline criterion reads the spread without outliers (see _robust_sd), so two
    # wild processes among twenty cannot turn a clear regression NOISY; a baseline that really
    # is spread out (wide, bimodal, drifting) still reads high.
    if paired:
        noise_cv = _robust_sd(np.log(c / b)) / math.sqrt(2.0) if b.size >= 2 else nan
        noise_name = "pair noise CV"
    else:
        noise_cv, noise_name = _robust_cv(b), "baseline CV"
    if b.size < 2 or c.size < 2:
        return _Stats(b_med, c_med, change, (nan, nan), None, None, None, _cv(b), noise_cv, noise_name)
    gen = rng if rng is not None else np.random.default_rng(DEFAULT_BOOTSTRAP_SEED)
    return _Stats(
        baseline_median=b_med,
        current_median=c_med,
        change_pct=change,
        ratio_ci=_bootstrap_ratio_ci(b, c, paired, opts.confidence_level, opts.n_boot, gen),
        cohen_d=_cohen_d(b, c),
        hodges_lehmann_pct=_hodges_lehmann_pct(b, c, paired),
        cliffs_delta=_cliffs_delta(b, c),
        baseline_cv=_cv(b),
        noise_cv=noise_cv,
        noise_name=noise_name,
    )


def _pct(x: float) -> str:
    return f"{x:+.1f}%"


def _ci_text(ratio_ci: tuple[float, float], level: float) -> str:
    lo, hi = ratio_ci
    return f"{level:.0%} CI {_pct((lo - 1) * 100)} .. {_pct((hi - 1) * 100)}"


def _decide(
    b: np.ndarray, c: np.ndarray, *, paired: bool, opts: _Options, rng: np.random.Generator | None
) -> Comparison:
    test = WILCOXON if paired else MANN_WHITNEY
    s = _describe(b, c, paired, opts, rng)

    def result(
        status: Status, reason: str, p: float | None = None,
        confidence: Confidence | None = None, criteria: tuple[Criterion, ...] = (),
    ) -> Comparison:
        if opts.env_changed and opts.incomparable_on_env_change:
            reason = (
                "environment fingerprint changed between baseline and current; "
                f"not comparable (otherwise: {status.value}: {reason})"
            )
            status, confidence = Status.INCOMPARABLE, None
        return Comparison(
            status=status, confidence=confidence, reason=reason,
            baseline_median=s.baseline_median, current_median=s.current_median,
            change_pct=s.change_pct, ratio_ci=s.ratio_ci, p_value=p, test=test,
            cohen_d=s.cohen_d, hodges_lehmann_pct=s.hodges_lehmann_pct,
            cliffs_delta=s.cliffs_delta, baseline_cv=s.baseline_cv, criteria=criteria,
            n_baseline=int(b.size), n_current=int(c.size), direction=opts.direction,
        )

    # 1. Refuse to judge on too little data.
    if b.size < opts.min_samples or c.size < opts.min_samples:
        what = "pairs" if paired else "values"
        return result(
            Status.INSUFFICIENT_DATA,
            f"too few {what}: {b.size} baseline and {c.size} current, need at least "
            f"{opts.min_samples} each",
        )
    min_p = smallest_attainable_p(b.size, c.size, paired=paired)
    if min_p >= opts.alpha:
        sizes = f"{b.size} pairs" if paired else f"{b.size} baseline and {c.size} current values"
        return result(
            Status.INSUFFICIENT_DATA,
            f"with {sizes} the {test} test cannot reach p < {opts.alpha:g} "
            f"(smallest attainable p={min_p:.3g}); add {'pairs' if paired else 'processes'}",
        )

    p = _p_value(b, c, paired)
    # Everything below is in "worse-positive" terms: +x means x% worse, whatever the direction.
    sign = 1.0 if opts.direction is Direction.LOWER else -1.0
    worse = sign * s.change_pct
    ci_a, ci_b = (sign * (s.ratio_ci[0] - 1) * 100, sign * (s.ratio_ci[1] - 1) * 100)
    worse_lo, worse_hi = min(ci_a, ci_b), max(ci_a, ci_b)
    significant = p < opts.alpha

    if significant and worse_lo > 0 and worse >= opts.min_change_pct:
        candidate = Status.REGRESSED
    elif significant and worse_hi < 0 and -worse >= opts.min_change_pct:
        candidate = Status.IMPROVED
    else:
        candidate = Status.UNCHANGED

    toward_better = candidate is Status.IMPROVED
    # magnitude in the direction being graded: (point, CI low, CI high), positive = that way
    mag = (-worse, -worse_hi, -worse_lo) if toward_better else (worse, worse_lo, worse_hi)
    criteria = _checklist(s, p, mag, toward_better, paired, opts)
    magnitude_met = criteria[0].met
    stable = criteria[3].met
    ci_text = _ci_text(s.ratio_ci, opts.confidence_level)
    p_text = f"p={p:.3g}"

    clear_and_large = (
        candidate is not Status.UNCHANGED
        and magnitude_met
        and abs(s.change_pct) >= NOISY_BASELINE_SHIFT_CVS * s.noise_cv * 100.0
        and (paired or not float(b.min()) <= s.current_median <= float(b.max()))
    )
    if not stable and not clear_and_large:
        return result(
            Status.NOISY,
            f"{s.noise_name} {s.noise_cv:.0%} >= {opts.max_baseline_cv:.0%}: too noisy to judge "
            f"a {_pct(s.change_pct)} change ({ci_text}, {p_text})",
            p, criteria=criteria,
        )
    if candidate is Status.UNCHANGED:
        if not significant:
            why = f"no significant change: {_pct(s.change_pct)} ({ci_text}, {p_text} >= {opts.alpha:g})"
        elif worse_lo <= 0 <= worse_hi:
            why = f"{_pct(s.change_pct)} is significant ({p_text}) but its {ci_text} includes no change"
        else:
            why = (
                f"{_pct(s.change_pct)} ({ci_text}, {p_text}) is below the minimum reported change "
                f"of {opts.min_change_pct:g}%"
            )
        return result(Status.UNCHANGED, why, p, criteria=criteria)

    confidence = _confidence(criteria, mag, opts.threshold_pct)
    n_met = sum(cr.met for cr in criteria)
    word = "better" if toward_better else "worse"
    size = (
        "beyond" if magnitude_met
        else "near" if _near_threshold(mag, opts.threshold_pct) else "below"
    )
    reason = (
        f"{_pct(s.change_pct)} ({word}, {ci_text}, {p_text}, {size} the {opts.threshold_pct:g}% "
        f"threshold); {n_met} of {len(criteria)} criteria met"
    )
    if opts.env_changed:
        reason += "; environment fingerprint changed"
    return result(candidate, reason, p, confidence=confidence, criteria=criteria)


def _checklist(
    s: _Stats, p: float, mag: tuple[float, float, float], toward_better: bool, paired: bool,
    opts: _Options,
) -> tuple[Criterion, ...]:
    point, lo, hi = mag
    word = "better" if toward_better else "worse"
    ci = f"{opts.confidence_level:.0%} CI {lo:+.1f}% .. {hi:+.1f}%"
    if lo >= opts.threshold_pct:
        magnitude = Criterion("magnitude", True,
                              f"{point:+.1f}% {word} ({ci}) is beyond the {opts.threshold_pct:g}% threshold")
    else:
        magnitude = Criterion("magnitude", False,
                              f"{point:+.1f}% {word} ({ci}) is not entirely beyond the "
                              f"{opts.threshold_pct:g}% threshold")
    test = WILCOXON if paired else MANN_WHITNEY
    significance = Criterion(
        "significance", p < opts.alpha,
        f"p={p:.3g} {'<' if p < opts.alpha else '>='} alpha {opts.alpha:g} ({test})",
    )
    runs = opts.consecutive_worse_runs
    if toward_better:
        consistency = Criterion("consistency", False, "consistency is tracked for regressions only")
    elif runs is None:
        consistency = Criterion("consistency", False, "unknown: no run history given")
    else:
        consistency = Criterion(
            "consistency", runs >= CONSISTENT_RUNS,
            f"worse in {runs} consecutive run{'s' if runs != 1 else ''} "
            f"({'>=' if runs >= CONSISTENT_RUNS else '<'} {CONSISTENT_RUNS})",
        )
    stable = s.noise_cv < opts.max_baseline_cv
    stable_baseline = Criterion(
        "stable_baseline", stable,
        f"{s.noise_name} {s.noise_cv:.1%} {'<' if stable else '>='} {opts.max_baseline_cv:.0%}"
        + (f" (baseline CV {s.baseline_cv:.1%}: includes any drift that pairing cancels)"
           if paired else ""),
    )
    environment = Criterion(
        "environment", not opts.env_changed,
        "environment fingerprint changed between baseline and current" if opts.env_changed
        else "environment fingerprint unchanged",
    )
    return (magnitude, significance, consistency, stable_baseline, environment)


def _confidence(
    criteria: tuple[Criterion, ...], mag: tuple[float, float, float], threshold_pct: float
) -> Confidence:
    n_met = sum(c.met for c in criteria)
    level = Confidence.HIGH if n_met >= 4 else Confidence.MEDIUM if n_met == 3 else Confidence.LOW
    if criteria[0].met:
        return level
    cap = Confidence.MEDIUM if _near_threshold(mag, threshold_pct) else Confidence.LOW
    return level if _LEVEL_ORDER[level] <= _LEVEL_ORDER[cap] else cap


def _near_threshold(mag: tuple[float, float, float], threshold_pct: float) -> bool:
    """Plausibly threshold-sized: the point estimate is close to it and the CI reaches it."""
    point, _lo, hi = mag
    return point >= NEAR_THRESHOLD_FRACTION * threshold_pct and hi >= threshold_pct
