"""Was a sample disturbed? Was a run contended? (on-CPU time against wall time, per sample)

Since harness format 1.2 every sample carries the benchmark thread's on-CPU time next to its
wall time, and the involuntary context switches of its batch. The wall time a thread spends
off its CPU is time another process (or, on a VM, the hypervisor) had that CPU: such a sample
measures the neighbour as much as the code.

A sample is **disturbed** when it was off its CPU by more than ``max_off_cpu_fraction`` of its
wall time *and* either something preempted it (an involuntary switch) or it was off its CPU
that much more than the process's usual share (the median over its samples). The second rule
keeps benchmarks that sleep or wait by design from being flagged all the time, and still
catches steal time, which causes no switch inside the guest.

A run is **contended** when some benchmark has more than ``max_disturbed_fraction`` of its
samples disturbed. Such a run is stored as CONTENDED with this module's reason, never enters
history, never opens a code alert, and is measured again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import median

# (wall time per sample, on-CPU time per sample or None, involuntary switches or None) of one
# process; both times in the same unit (the harness reports ns per operation).
ProcessTimes = tuple[Sequence[float], Sequence[float] | None, Sequence[int] | None]


@dataclass(frozen=True, slots=True)
class ContentionPolicy:
    max_off_cpu_fraction: float = 0.05  # a sample this much off its CPU may be disturbed
    max_disturbed_fraction: float = 0.10  # more disturbed samples than this: contended

    def __post_init__(self) -> None:
        if not 0.0 < self.max_off_cpu_fraction < 1.0:
            raise ValueError("ContentionPolicy.max_off_cpu_fraction: must be in (0, 1), got "
                             f"{self.max_off_cpu_fraction!r}")
        if not 0.0 <= self.max_disturbed_fraction <= 1.0:
            raise ValueError("ContentionPolicy.max_disturbed_fraction: must be in [0, 1], got "
                             f"{self.max_disturbed_fraction!r}")


@dataclass(frozen=True, slots=True)
class BenchmarkContention:
    """One benchmark's samples over all its processes."""

    benchmark: str
    samples: int  # samples with an on-CPU time
    disturbed: int
    worst_off_cpu: float  # largest off-CPU fraction of any sample, 0..1
    involuntary_switches: int  # over the disturbed samples

    @property
    def disturbed_fraction(self) -> float:
        return self.disturbed / self.samples if self.samples else 0.0


@dataclass(frozen=True, slots=True)
class ContentionReport:
    contended: bool
    reason: str  # "" when not contended
    findings: tuple[BenchmarkContention, ...]  # benchmarks whose samples had on-CPU times


def off_cpu_fractions(wall: Sequence[float], cpu: Sequence[float]) -> tuple[float, ...]:
    """Share of each sample's wall time spent off its CPU, 0..1 (0 when cpu >= wall)."""
    return tuple(max(0.0, 1.0 - c / w) if w > 0 else 0.0 for w, c in zip(wall, cpu, strict=True))


def disturbed_samples(wall: Sequence[float], cpu: Sequence[float],
                      switches: Sequence[int] | None,
                      policy: ContentionPolicy) -> tuple[bool, ...]:
    """Which samples of one process were disturbed (see the module docstring)."""
    off = off_cpu_fractions(wall, cpu)
    if not off:
        return ()
    usual = median(off)
    tol = policy.max_off_cpu_fraction
    return tuple(
        f > tol and ((switches is not None and switches[i] > 0) or f - usual > tol)
        for i, f in enumerate(off)
    )


def assess_contention(processes: Mapping[str, Sequence[ProcessTimes]],
                      policy: ContentionPolicy) -> ContentionReport:
    """Judge a run from each benchmark's processes; benchmarks without on-CPU times are skipped."""
    findings = []
    for benchmark, times in processes.items():
        samples = disturbed = switches_total = 0
        worst = 0.0
        for wall, cpu, switches in times:
            if cpu is None:
                continue
            flags = disturbed_samples(wall, cpu, switches, policy)
            off = off_cpu_fractions(wall, cpu)
            samples += len(flags)
            disturbed += sum(flags)
            worst = max(worst, *off) if off else worst
            if switches is not None:
                switches_total += sum(s for s, flag in zip(switches, flags, strict=True) if flag)
        if samples:
            findings.append(BenchmarkContention(benchmark, samples, disturbed, worst,
                                                switches_total))
    bad = [f for f in findings if f.disturbed_fraction > policy.max_disturbed_fraction]
    reason = "; ".join(
        f"{f.benchmark}: {f.disturbed} of {f.samples} samples ({f.disturbed_fraction:.0%}) were "
        f"disturbed (off its CPU up to {f.worst_off_cpu:.0%} of a sample, "
        f"{f.involuntary_switches} involuntary context switches)" for f in bad)
    if bad:
        reason += f"; at most {policy.max_disturbed_fraction:.0%} may be"
    return ContentionReport(bool(bad), reason, tuple(findings))
