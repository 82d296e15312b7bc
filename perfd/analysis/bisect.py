"""Bisection: which commit of a range made one benchmark worse, judged by the one decision rule.

The pure part of `perfd bisect` (``perfd.flows.bisect`` measures and drives it):

- :func:`classify_ends` - is the bad end REGRESSED against the good end, as an alert would
  need it (REGRESSED at MEDIUM or HIGH confidence)? Otherwise there is nothing to bisect.
- :func:`classify_midpoint` - a commit's lock-step comparisons against both ends give a
  three-way answer: same as the good end, same as the bad end, or unknown. "Same" is the
  sequential rule's clear stop inside the band (the whole CI of the change within
  +-threshold); "different" is its clear stop beyond it (REGRESSED with the whole CI beyond
  the threshold). A commit is GOOD when it looks like the good end or the bad end is clearly
  worse than it, BAD for the mirror image, and UNKNOWN when neither was shown or the two
  comparisons disagree (a commit half way between the ends, or too much noise).
- :func:`pick` - the next commit to test: the middle of the commits not yet proven, passing
  over the ones that could not be built (as `git bisect skip` does).
- the frozen results the renderers in ``perfd.report.bisect`` format.

Pure: comparisons in, frozen dataclasses out.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from perfd.analysis.compare import Comparison
from perfd.analysis.results import CommitInfo
from perfd.model import Status

# Statuses that say "cannot tell": a CI inside the band proves nothing with them.
_UNDECIDED = (Status.INSUFFICIENT_DATA, Status.NOISY, Status.INCOMPARABLE)


class Answer(StrEnum):
    """What a tested commit is, for the benchmark being bisected."""

    GOOD = "good"  # same as the good end
    BAD = "bad"  # same as the bad end
    UNKNOWN = "unknown"  # neither shown within the pair cap
    SKIPPED = "skipped"  # does not build


class Outcome(StrEnum):
    """How a bisection ended."""

    FOUND = "found"  # one commit is the first bad one
    RANGE = "range"  # only a range of commits could be proven
    NOTHING = "nothing"  # the bad end was not shown worse than the good end


@dataclass(frozen=True, slots=True)
class Probe:
    """One commit tested: its answer and why. ``vs_good`` compares the good end (baseline)
    with this commit (current), ``vs_bad`` this commit (baseline) with the bad end (current);
    ``pairs`` counts the lock-step pairs of both, over all ``attempts`` (an unknown answer is
    measured again with a larger pair cap)."""

    commit: CommitInfo
    answer: Answer
    reason: str
    vs_good: Comparison | None = None
    vs_bad: Comparison | None = None
    pairs: int = 0
    attempts: int = 1

    def __post_init__(self) -> None:
        if self.pairs < 0:
            raise ValueError(f"Probe.pairs: must be >= 0, got {self.pairs}")
        if self.attempts < 1:
            raise ValueError(f"Probe.attempts: must be >= 1, got {self.attempts}")


@dataclass(frozen=True, slots=True)
class BisectResult:
    """A bisection of ``benchmark`` x ``metric`` over the first-parent commits after ``good``
    up to ``bad``. ``ends`` is the verification of the two ends (its ``vs_good`` compares good
    with bad; answer BAD: a regression to bisect). ``last_good`` and ``first_bad`` are the
    newest commit proven good and the oldest proven bad: the first bad commit is one of the
    commits after ``last_good`` up to ``first_bad`` (exactly ``first_bad`` when the outcome
    is FOUND). ``builds`` counts the distinct commits built or tried, ``cached_builds`` those
    of them the build cache already had; ``pairs`` every lock-step pair measured."""

    suite: str
    machine_id: str
    benchmark: str
    metric: str
    unit: str
    good: CommitInfo
    bad: CommitInfo
    outcome: Outcome
    threshold_pct: float  # the ends are judged at this threshold
    midpoint_threshold_pct: float  # and the commits between at this one
    ends: Probe
    commits: tuple[CommitInfo, ...]  # after good up to bad, oldest first (first parents)
    probes: tuple[Probe, ...]  # the commits between, in the order they were tested
    last_good: CommitInfo
    first_bad: CommitInfo
    stop_reason: str  # why the search stopped short of one commit ("" when FOUND)
    builds: int
    cached_builds: int
    pairs: int
    wall_time_s: float
    alert_id: int | None = None  # the alert the result was recorded on

    def __post_init__(self) -> None:
        for name in ("builds", "cached_builds", "pairs"):
            if getattr(self, name) < 0:
                raise ValueError(f"BisectResult.{name}: must be >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.wall_time_s) and self.wall_time_s >= 0):
            raise ValueError(f"BisectResult.wall_time_s: must be >= 0, got {self.wall_time_s!r}")

    @property
    def culprit(self) -> CommitInfo | None:
        """The first bad commit, when one was isolated."""
        return self.first_bad if self.outcome is Outcome.FOUND else None

    @property
    def suspects(self) -> tuple[CommitInfo, ...]:
        """The commits the first bad one is among: after last_good up to first_bad."""
        shas = [c.sha for c in self.commits]
        start = shas.index(self.last_good.sha) + 1 if self.last_good.sha in shas else 0
        end = shas.index(self.first_bad.sha) + 1 if self.first_bad.sha in shas else len(shas)
        return self.commits[start:end]

    @property
    def skipped(self) -> tuple[CommitInfo, ...]:
        """Commits that could not be built (left out of the search)."""
        return tuple(p.commit for p in self.probes if p.answer is Answer.SKIPPED)

    @property
    def summary(self) -> str:
        """One line: what was found, with the builds and pairs it took (recorded on alerts)."""
        cost = f"{self.builds} builds, {self.pairs} pairs"
        if self.outcome is Outcome.FOUND:
            subject = f" ({self.first_bad.subject})" if self.first_bad.subject else ""
            return f"bisected: first bad commit {self.first_bad.sha}{subject}, {cost}"
        if self.outcome is Outcome.RANGE:
            return (f"bisected to a range: the first bad commit is one of {len(self.suspects)} "
                    f"commits {self.last_good.sha[:12]}..{self.first_bad.sha[:12]} "
                    f"({self.stop_reason}), {cost}")
        return f"bisect found nothing to bisect: {self.ends.reason}, {cost}"


def clearly_worse(c: Comparison) -> bool:
    """REGRESSED with the whole CI of the change beyond the threshold (a clear stop)."""
    magnitude = c.criterion("magnitude")
    return c.status is Status.REGRESSED and magnitude is not None and magnitude.met


def within_band(c: Comparison, threshold_pct: float) -> bool:
    """The whole CI of the change lies inside +-threshold_pct: whatever changed is smaller
    than what matters. Never true for a comparison that could not judge."""
    if c.status in _UNDECIDED:
        return False
    lo, hi = ((r - 1.0) * 100.0 for r in c.ratio_ci)
    return -threshold_pct < lo and hi < threshold_pct


def _change(c: Comparison) -> str:
    lo, hi = ((r - 1.0) * 100.0 for r in c.ratio_ci)
    return f"{c.change_pct:+.1f}% [{lo:+.1f}%, {hi:+.1f}%]"


def classify_ends(c: Comparison | None, threshold_pct: float) -> tuple[Answer, str]:
    """The bad end against the good end: BAD (a regression to bisect: REGRESSED at MEDIUM or
    HIGH confidence, the rule an alert opens by), GOOD (inside the band: nothing to bisect),
    or UNKNOWN (not shown either way)."""
    if c is None:
        return Answer.UNKNOWN, "the metric was not measured"
    if c.alert_worthy:
        return Answer.BAD, f"the bad end is {_change(c)} against the good end: {c.reason}"
    if within_band(c, threshold_pct):
        return Answer.GOOD, (f"the bad end is within +-{threshold_pct:.3g}% of the good end "
                             f"({_change(c)})")
    return Answer.UNKNOWN, (f"the bad end is not shown worse than the good end: "
                            f"{c.status.value}: {c.reason}")


def classify_midpoint(vs_good: Comparison | None, vs_bad: Comparison | None,
                      threshold_pct: float) -> tuple[Answer, str]:
    """A commit's answer from its comparison with the good end (good -> commit) and with the
    bad end (commit -> bad), judged at threshold_pct (module docstring)."""
    good_signs: list[str] = []
    bad_signs: list[str] = []
    if vs_good is not None:
        if within_band(vs_good, threshold_pct):
            good_signs.append(f"same as the good end ({_change(vs_good)})")
        elif clearly_worse(vs_good):
            bad_signs.append(f"worse than the good end ({_change(vs_good)})")
    if vs_bad is not None:
        if within_band(vs_bad, threshold_pct):
            bad_signs.append(f"same as the bad end ({_change(vs_bad)} to it)")
        elif clearly_worse(vs_bad):
            good_signs.append(f"the bad end is worse ({_change(vs_bad)} to it)")
    if good_signs and not bad_signs:
        return Answer.GOOD, "; ".join(good_signs)
    if bad_signs and not good_signs:
        return Answer.BAD, "; ".join(bad_signs)
    if good_signs and bad_signs:
        return Answer.UNKNOWN, "contradictory: " + "; ".join(good_signs + bad_signs)
    parts = [f"{name}: {c.status.value} {_change(c)}" for name, c in
             (("vs the good end", vs_good), ("vs the bad end", vs_bad)) if c is not None]
    return Answer.UNKNOWN, ("neither end shown at +-" + f"{threshold_pct:.3g}%"
                            + (f" ({'; '.join(parts)})" if parts else ""))


def pick(lo: int, hi: int, excluded: Collection[int]) -> int | None:
    """The index to test between lo (proven good) and hi (proven bad): the one nearest the
    middle, the later one on a tie, passing over ``excluded`` (commits that do not build);
    None when none is left."""
    middle = (lo + hi) / 2.0
    candidates = [i for i in range(lo + 1, hi) if i not in excluded]
    if not candidates:
        return None
    return min(candidates, key=lambda i: (abs(i - middle), -i))
