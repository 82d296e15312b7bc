"""The evidence bundle of a regression: profile baseline and current on this machine and write
flamegraphs, the differential flamegraph, hotspots, counters, suspects and a report.md."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from perfd.analysis.results import EvidenceSummary
from perfd.atomic import write_text_atomically
from perfd.config import SuiteConfig
from perfd.context import Services
from perfd.errors import UsageError
from perfd.events import Profiling
from perfd.evidence.attribution import Attribution, Suspect
from perfd.evidence.capture import CaptureResult, capture_profile
from perfd.evidence.counters import CounterDiff, counters_from_harness, diff_counters
from perfd.evidence.flamegraph import render_diff_flamegraph, render_flamegraph
from perfd.evidence.hotspots import Hotspot, hotspots
from perfd.evidence.profile import diff_profiles, is_inlined, to_folded
from perfd.evidence.speedscope import to_speedscope
from perfd.runner.git import Repository

# Guilty-commit search for this many grown hotspots that are real functions, and as many that
# are inlined frames (the real function's search already follows its file's static helpers).
SUSPECT_FUNCTIONS = 5


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    directory: Path
    benchmark: str
    baseline_sha: str
    current_sha: str
    method: str
    note: str
    hotspots: tuple[Hotspot, ...]
    counters: tuple[CounterDiff, ...]
    suspects: tuple[Suspect, ...]

    @property
    def diff_flamegraph(self) -> Path:
        return self.directory / "diff.svg"

    @property
    def report(self) -> Path:
        return self.directory / "report.md"


@dataclass(frozen=True, slots=True)
class AlertEvidenceRequest:
    alert_id: int
    output_dir: Path | None = None  # default: <data_dir>/evidence/alert-<id>
    profiler: str = "auto"  # auto | perf | harness
    repository: str | None = None  # instead of the suite's


def alert_evidence(services: Services, request: AlertEvidenceRequest) -> EvidenceBundle:
    """Profile an alert's baseline and first bad commit; store the bundle's path on the alert.

    Raises NotFoundError, UsageError (infrastructure alert), EvidenceError, BuildError."""
    store = services.store
    with store.reading() as r:
        alert, _ = r.get_alert(request.alert_id)
        if not alert.series.benchmark:
            raise UsageError(f"alert {alert.id} is an infrastructure alert: there is no benchmark "
                             "to profile; compare the runs' environments with `perfd runs show`")

        def latency(run_id: int | None) -> float | None:
            if run_id is None:
                return None
            return next((s.median for s in r.statistics(run_id)
                         if s.benchmark == alert.series.benchmark and s.metric == "time"), None)

        baseline_ns, current_ns = latency(alert.baseline_run_id), latency(alert.last_run_id)
    suite = services.suite(alert.series.suite)
    repo = services.repository(suite, request.repository)
    bundle = collect_evidence(
        services, suite, repo, alert.baseline_commit, alert.first_bad_commit,
        alert.series.benchmark,
        request.output_dir or services.data_dir / "evidence" / f"alert-{alert.id}",
        baseline_latency_ns=baseline_ns, current_latency_ns=current_ns, method=request.profiler)
    store.set_evidence_path(alert.id, str(bundle.directory))
    return bundle


def collect_evidence(services: Services, suite: SuiteConfig, repo: Repository, baseline_sha: str,
                     current_sha: str, benchmark: str, out_dir: Path, *,
                     baseline_latency_ns: float | None = None,
                     current_latency_ns: float | None = None, method: str = "auto",
                     cpu: int | None = None) -> EvidenceBundle:
    """Profile benchmark at both commits (under the machine lock) and write the bundle into
    out_dir (replaced whole). Raises EvidenceError, BuildError, RepositoryError."""
    with services.machine.hold(f"profiling {suite.name} / {benchmark}"):
        return _collect(services, suite, repo, baseline_sha, current_sha, benchmark, out_dir,
                        baseline_latency_ns, current_latency_ns, method, cpu)


def _collect(services: Services, suite: SuiteConfig, repo: Repository, baseline_sha: str,
             current_sha: str, benchmark: str, out_dir: Path, baseline_latency_ns: float | None,
             current_latency_ns: float | None, method: str, cpu: int | None) -> EvidenceBundle:
    settings = suite.settings_for(benchmark)
    if cpu is None and settings.cpus:
        cpu = settings.cpus[0]
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    captures: dict[str, CaptureResult] = {}
    counters = {}
    for side, sha in (("baseline", baseline_sha), ("current", current_sha)):
        built = services.builder.build(suite, repo, sha)
        services.events(Profiling(benchmark, sha, side))
        # ~2 s of profile per side (~2,000 samples with perf): shares good to about a point.
        captures[side] = capture_profile(
            built.binary, benchmark, method=method, cpu=cpu, workdir=tmp / f"work-{side}",
            samples=20, min_time_s=max(settings.min_time_s, 0.1),
            timeout_s=max(settings.timeout_s, 120))
        shutil.rmtree(tmp / f"work-{side}", ignore_errors=True)
        counters[side] = counters_from_harness(
            built.binary, benchmark, samples=settings.samples, min_time_s=settings.min_time_s,
            cpu=cpu, timeout_s=settings.timeout_s)
    base, cur = captures["baseline"].profile, captures["current"].profile
    spots = hotspots(base, cur, current_latency_ns=current_latency_ns,
                     baseline_latency_ns=baseline_latency_ns)
    time_ratio = (current_latency_ns / baseline_latency_ns
                  if current_latency_ns and baseline_latency_ns else None)
    counter_diff = diff_counters(counters["baseline"], counters["current"])
    grown = [h.function for h in spots
             if (h.est_time_delta_ns or 0) > 0 or (h.est_time_delta_ns is None and h.impact > 0)]
    searched = ([f for f in grown if not is_inlined(f)][:SUSPECT_FUNCTIONS]
                + [f for f in grown if is_inlined(f)][:SUSPECT_FUNCTIONS])
    attribution = Attribution(repo, baseline_sha, current_sha)
    profiled = base.functions() | cur.functions()
    by_sha: dict[str, Suspect] = {}
    for function in sorted(searched, key=grown.index):
        for suspect in attribution.suspects(function, profiled=profiled):
            by_sha.setdefault(suspect.sha, suspect)  # the most grown function's reason
    position = {sha: i for i, (sha, _) in enumerate(attribution.commits())}
    suspects = sorted(by_sha.values(), key=lambda s: position.get(s.sha, -1))

    title = f"{suite.name} / {benchmark}"
    files = {
        "baseline.folded": to_folded(base),
        "current.folded": to_folded(cur),
        "baseline.svg": render_flamegraph(base, title=f"{title} at {baseline_sha[:12]} (baseline)"),
        "current.svg": render_flamegraph(cur, title=f"{title} at {current_sha[:12]} (current)"),
        "diff.svg": render_diff_flamegraph(
            diff_profiles(base, cur),
            title=f"{title}: {baseline_sha[:12]} -> {current_sha[:12]}",
            subtitle="width: current samples; red: grew, blue: shrank", time_ratio=time_ratio),
        "baseline.speedscope.json": json.dumps(to_speedscope(base, name=f"{title} baseline")),
        "current.speedscope.json": json.dumps(to_speedscope(cur, name=f"{title} current")),
        "hotspots.json": json.dumps([h.as_dict() for h in spots], indent=2),
        "counters.json": json.dumps([asdict(c) for c in counter_diff], indent=2),
        "suspects.json": json.dumps([asdict(s) for s in suspects], indent=2),
    }
    bundle = EvidenceBundle(
        directory=out_dir, benchmark=benchmark, baseline_sha=baseline_sha, current_sha=current_sha,
        method=captures["current"].method,
        note="; ".join(sorted({c.note for c in captures.values() if c.note})),
        hotspots=tuple(spots), counters=tuple(counter_diff), suspects=tuple(suspects),
    )
    files["report.md"] = evidence_markdown(bundle)
    for name, text in files.items():
        write_text_atomically(tmp / name, text)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return bundle


def summarize_bundle(bundle: EvidenceBundle, top: int = 3) -> EvidenceSummary:
    """What a report says about a bundle: where it is, what grew, which commits to suspect."""
    timed = any(h.est_time_delta_ns is not None for h in bundle.hotspots)
    if timed:
        grown = [(h.function, h.est_time_delta_ns or 0.0) for h in bundle.hotspots
                 if (h.est_time_delta_ns or 0.0) > 0][:top]
    else:
        grown = [(h.function, h.self_delta * 100) for h in bundle.hotspots if h.self_delta > 0][:top]
    return EvidenceSummary(
        benchmark=bundle.benchmark, directory=str(bundle.directory), method=bundle.method,
        top_functions=tuple(grown), top_unit="ns per op" if timed else "pts of samples",
        suspects=tuple((s.sha, s.subject, s.why) for s in bundle.suspects),
    )


def _share(x: float) -> str:
    return f"{x * 100:.1f}%"


def evidence_markdown(bundle: EvidenceBundle) -> str:
    """The "Root Cause Evidence" section (report.md of the bundle)."""
    out = [
        f"## Root Cause Evidence: {bundle.benchmark}",
        "",
        f"Profiles of `{bundle.baseline_sha[:12]}` (baseline) and `{bundle.current_sha[:12]}` "
        f"(current) on this machine, by {bundle.method}"
        + (f" ({bundle.note})" if bundle.note else "") + ".",
        "",
        "- differential flamegraph: [diff.svg](diff.svg) (red: grew, blue: shrank; by time per "
        "operation when both latencies are known, else by share of samples)",
        "- flamegraphs: [baseline.svg](baseline.svg), [current.svg](current.svg); folded stacks "
        "and speedscope JSON beside them",
        "",
        "### Hotspots",
        "",
        "| function | self before | self after | share delta | incl. before | incl. after | "
        "time per op delta | |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for h in bundle.hotspots[:10]:
        impact = f"{h.est_time_delta_ns:+.0f} ns" if h.est_time_delta_ns is not None else "-"
        out.append(f"| `{h.function}` | {_share(h.self_before)} | {_share(h.self_after)} | "
                   f"{h.self_delta * 100:+.1f} pts | {_share(h.incl_before)} | {_share(h.incl_after)} | "
                   f"{impact} | {'new hotspot' if h.new else ''} |")
    out += ["", "### Counters", "", "| counter | baseline | current | change |", "|---|---:|---:|---:|"]
    for c in bundle.counters:
        if c.unavailable_reason:
            out.append(f"| {c.name} | unavailable | unavailable | {c.unavailable_reason} |")
        else:
            change = f"{c.delta_pct:+.1f}%" if c.delta_pct is not None else "-"
            out.append(f"| {c.name} | {_fmt(c.baseline)} | {_fmt(c.current)} | {change} |")
    out += ["", "### Commits that touched the hot functions", ""]
    if bundle.suspects:
        for s in bundle.suspects:
            out.append(f"- `{s.sha[:12]}` {s.subject} — {s.why}")
    else:
        out.append("- none of the grown functions was changed in this range (look at callers, "
                   "data and the build)")
    return "\n".join(out) + "\n"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
