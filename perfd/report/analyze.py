"""The analysis of a commit range: Markdown (for people and issues) and JSON (for tools).

The report model holds everything the renderers print, recommendations included, so the
renderers stay pure and a literal report pins the output in a golden file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from perfd.analysis.compare import Comparison, Confidence, Status
from perfd.model import Direction
from perfd.report.compare import CommitInfo, fmt_quantity

REPORT_VERSION = 1  # 1 - first JSON layout of the analyze report

# A row's status: a Status value, or ERROR when the analysis itself could not be done.
ERROR = "ERROR"
# Statuses that say "we cannot tell", never "unchanged".
UNDECIDED = (Status.INSUFFICIENT_DATA.value, Status.NOISY.value, Status.INCOMPARABLE.value, ERROR)
# Fewest runs the change-point detector can split with its defaults: min_segment 5 + confirm 3.
MIN_POINTS_FOR_CHANGE_POINTS = 8


@dataclass(frozen=True, slots=True)
class RangeCommit:
    """One commit of the range, oldest first; ``runs`` counts the suite's completed runs at it
    on this machine (compare runs excluded)."""

    sha: str
    subject: str
    runs: int
    is_base: bool = False


@dataclass(frozen=True, slots=True)
class ChangePointFinding:
    """A step in one series inside the range: it landed after ``before`` (last commit of the
    old segment) and at or before ``after`` (first commit of the new segment), i.e. in one of
    ``suspects`` commits. ``shift_pct`` is signed in the metric's own terms."""

    benchmark: str
    metric: str
    unit: str
    before: CommitInfo
    after: CommitInfo
    suspects: int
    before_median: float
    after_median: float
    shift_pct: float
    worse: bool
    beyond_threshold: bool
    score: float
    env_changed: bool = False  # the runs on either side have different environment fingerprints

    @property
    def same_commit(self) -> bool:
        """The step lies between two runs of one commit: the machine moved, not the code."""
        return self.before.sha == self.after.sha

    @property
    def direction_word(self) -> str:
        return "worse" if self.worse else "better"


@dataclass(frozen=True, slots=True)
class SeriesAnalysis:
    """One benchmark x metric (x config) over the range.

    ``status`` is a Status value or ERROR. ``start``/``end`` are the first and last commits of
    the range that have runs; the start-vs-end ``comparison`` is between the latest run at each
    (None when there was nothing to compare). ``change_points_searched`` is False when the
    range holds too few runs for the change-point detector."""

    benchmark: str
    metric: str
    unit: str
    direction: Direction
    config_hash: str
    threshold_pct: float
    n_runs: int
    n_commits: int
    status: str
    reason: str
    start: CommitInfo | None = None
    end: CommitInfo | None = None
    start_run_id: int | None = None
    end_run_id: int | None = None
    start_median: float | None = None
    end_median: float | None = None
    comparison: Comparison | None = None
    env_changed: bool = False
    change_points: tuple[ChangePointFinding, ...] = ()
    change_points_searched: bool = False

    @property
    def confidence(self) -> Confidence | None:
        return self.comparison.confidence if self.comparison is not None else None

    @property
    def change_pct(self) -> float | None:
        if self.comparison is not None:
            return self.comparison.change_pct
        if self.start_median is None or self.end_median is None or self.start_median == 0:
            return None
        return (self.end_median / self.start_median - 1.0) * 100.0

    @property
    def alert_worthy(self) -> bool:
        return self.comparison is not None and self.comparison.alert_worthy

    @property
    def worse_steps(self) -> list[ChangePointFinding]:
        """Change points in the worse direction at least the threshold in size."""
        return [cp for cp in self.change_points if cp.worse and cp.beyond_threshold]

    @property
    def label(self) -> str:
        return f"{self.benchmark} ({self.metric})"


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An OPEN or ACKNOWLEDGED alert of the suite on this machine; ``benchmark`` is "" for a
    machine-wide (infrastructure) alert, ``in_range`` tells whether its first bad commit is
    one of the range's commits."""

    id: int
    benchmark: str
    metric: str
    change_pct: float
    confidence: str
    first_bad: CommitInfo
    state: str
    in_range: bool


@dataclass(frozen=True, slots=True)
class AnalyzeReport:
    suite: str
    machine_id: str
    base: CommitInfo
    head: CommitInfo
    threshold_pct: float | None  # None: each benchmark's own threshold_pct
    default_threshold_pct: float
    alpha: float
    fdr_q: float
    commits: tuple[RangeCommit, ...]
    series: tuple[SeriesAnalysis, ...]
    alerts: tuple[OpenAlert, ...] = ()

    @property
    def regressions(self) -> list[SeriesAnalysis]:
        """Series with an alert-worthy start-vs-end regression or a worse step beyond the
        threshold: each one makes the verdict REGRESSED."""
        return [s for s in self.series if s.alert_worthy or s.worse_steps]

    @property
    def change_points(self) -> list[ChangePointFinding]:
        return [cp for s in self.series for cp in s.change_points]

    @property
    def verdict(self) -> str:
        if self.regressions:
            return "REGRESSED"
        statuses = {s.status for s in self.series}
        better_steps = any(not cp.worse and cp.beyond_threshold for cp in self.change_points)
        if Status.IMPROVED.value in statuses or better_steps:
            return "IMPROVED"
        if not statuses or statuses <= set(UNDECIDED):
            return "INCONCLUSIVE"
        return "UNCHANGED"

    def summary_line(self) -> str:
        if not self.series:
            return (f"{self.verdict}: no stored runs of suite {self.suite} on {self.machine_id} "
                    "in this range")
        counts: dict[str, int] = {}
        for s in self.series:
            counts[s.status] = counts.get(s.status, 0) + 1
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        cps = self.change_points
        worse = sum(cp.worse for cp in cps)
        n = len(self.series)
        head = (f"{len(self.regressions)} of {n} series got worse" if self.regressions
                else f"{n} series")
        return (f"{self.verdict}: {head}; start vs end: {statuses}; "
                f"change points: {worse} worse, {len(cps) - worse} better")

    def recommendations(self) -> list[str]:
        """Concrete next steps, most urgent first; "no action needed" when all is quiet."""
        out: list[str] = []
        suite = self.suite
        # Worse steps: one confirmation per commit pair, naming every series that stepped there.
        pairs: dict[tuple[str, str], list[ChangePointFinding]] = {}
        for cp in self.change_points:
            if cp.worse:
                pairs.setdefault((cp.before.sha, cp.after.sha), []).append(cp)
        for (before, after), steps in pairs.items():
            what = ", ".join(f"{cp.benchmark} ({cp.metric}) {_pct(cp.shift_pct)}" for cp in steps)
            if before == after:
                out.append(f"{what}: the step lies between two runs of {before[:12]}, so the "
                           "machine changed, not the code: compare the two runs' environments "
                           "with `perfd runs show`")
                continue
            env = ("; the environment fingerprint changed at the same runs, so check the "
                   "machine too" if any(cp.env_changed for cp in steps) else "")
            line = (f"{what}: confirm with `perfd compare --suite {suite} --baseline {before[:12]} "
                    f"--current {after[:12]} --interleave`")
            n = steps[0].suspects
            if n > 1:
                line += (f"; the step is in one of {n} commits, run `perfd run --suite {suite} "
                         f"--commit <sha>` on those between them to pin it down")
            out.append(line + env)
        # Start-vs-end regressions without a step to pin them to a commit.
        for s in self.series:
            if s.alert_worthy and not any(cp.worse for cp in s.change_points) and s.start and s.end:
                out.append(f"{s.label} is {_pct(s.change_pct or 0.0)} from {s.start.sha[:12]} to "
                           f"{s.end.sha[:12]} without a located step: confirm with `perfd compare "
                           f"--suite {suite} --baseline {s.start.sha[:12]} --current "
                           f"{s.end.sha[:12]} --interleave`, then run `perfd run` on the commits "
                           "in between to find it")
        # Too little data.
        few_commits = [s.label for s in self.series
                       if s.status == Status.INSUFFICIENT_DATA.value and s.n_commits < 2]
        if few_commits:
            out.append(f"{_names(few_commits)}: too few commits with runs in the range: run "
                       f"`perfd run --suite {suite} --commit <sha>` on more commits of the range"
                       + self._unmeasured_hint())
        few_processes = [s.label for s in self.series
                         if s.status == Status.INSUFFICIENT_DATA.value and s.n_commits >= 2]
        if few_processes:
            out.append(f"{_names(few_processes)}: too few processes per run to test start vs end: "
                       "raise `repetitions` in the suite (at least 5) and run the range's ends again")
        no_search = [s.label for s in self.series
                     if s.n_commits >= 2 and not s.change_points_searched]
        if no_search and any(c.runs == 0 for c in self.commits):
            # (with every commit measured, the table's "-" says it; more runs would not help)
            out.append(f"{_names(no_search)}: too few runs in the range to look for change points "
                       f"(need {MIN_POINTS_FOR_CHANGE_POINTS}): run `perfd run --suite {suite} "
                       "--commit <sha>` on more commits of the range" + self._unmeasured_hint())
        for s in self.series:
            if s.status == Status.NOISY.value and s.comparison is not None:
                out.append(f"{s.label}: the series is noisy (CV {s.comparison.baseline_cv:.1%}): "
                           "pin CPUs (`cpus:` in the suite, isolated from the OS) and raise "
                           "`repetitions`")
        for s in self.series:
            if s.env_changed:
                out.append(f"{s.label}: the environment fingerprint changed between runs "
                           f"{s.start_run_id} and {s.end_run_id}: compare them with "
                           f"`perfd runs show {s.start_run_id}` and `perfd runs show "
                           f"{s.end_run_id}` before trusting the change")
                break  # one run pair per range tells the story; the rows show the rest
        for s in self.series:
            if s.status == ERROR:
                out.append(f"{s.label}: could not be analysed: {s.reason}")
        for a in self.alerts:
            if a.in_range and a.state == "OPEN":
                out.append(f"alert {a.id} ({a.benchmark or 'machine-wide'} {a.metric}) started "
                           f"inside this range at {a.first_bad.sha[:12]}: `perfd alert ack {a.id}` "
                           f"while investigating, `perfd alert resolve {a.id}` once fixed")
        if not self.series:
            out.append(f"no stored runs of this suite in the range: run `perfd run --suite {suite} "
                       "--commit <sha>` on its commits")
        return out or ["no action needed"]

    def _unmeasured_hint(self) -> str:
        missing = [c.sha[:12] for c in self.commits if c.runs == 0]
        if not missing:
            return ""
        if len(missing) > 3:  # the ends and the middle split the range best
            missing = [missing[0], missing[len(missing) // 2], missing[-1]]
        return f" (not measured yet: {', '.join(missing)})"


def _names(labels: Sequence[str]) -> str:
    return ", ".join(labels)


def _pct(x: float) -> str:
    return f"{x:+.1f}%"


def _q(value: float | None, unit: str) -> str:
    return "-" if value is None else fmt_quantity(value, unit)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_row(cells: Sequence[str]) -> str:
    """A Markdown table row; an empty cell stays empty (no trailing blanks)."""
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _series_label(s: SeriesAnalysis, report: AnalyzeReport) -> str:
    """The benchmark name, with its config hash when the report has several of that name."""
    twins = [x for x in report.series if (x.benchmark, x.metric) == (s.benchmark, s.metric)]
    return f"{s.benchmark} [config {s.config_hash[:8]}]" if len(twins) > 1 else s.benchmark


def _threshold_text(report: AnalyzeReport) -> str:
    if report.threshold_pct is not None:
        return f"threshold {report.threshold_pct:g}%"
    return f"threshold {report.default_threshold_pct:g}% (suite overrides apply)"


def _row(s: SeriesAnalysis, report: AnalyzeReport) -> list[str]:
    change = s.change_pct
    status = s.status + (" (env changed)" if s.env_changed else "")
    if s.change_points_searched:
        steps = str(len(s.change_points))
    else:
        steps = f"- (<{MIN_POINTS_FOR_CHANGE_POINTS} runs)"
    return [_series_label(s, report), s.metric, str(s.n_runs), str(s.n_commits),
            _q(s.start_median, s.unit), _q(s.end_median, s.unit),
            "-" if change is None else _pct(change), status,
            s.confidence.value if s.confidence else "-", steps]


def _commit(c: CommitInfo) -> str:
    return f"`{c.sha[:12]}` {c.subject}".rstrip()


def render_markdown(report: AnalyzeReport) -> str:
    icon = {"REGRESSED": ":red_circle:", "IMPROVED": ":green_circle:"}.get(report.verdict,
                                                                          ":white_circle:")
    n_commits = len(report.commits) - 1
    out = [
        f"## {icon} perfd analyze: suite `{report.suite}` on `{report.machine_id}`, "
        f"`{report.base.sha[:12]}..{report.head.sha[:12]}`",
        "",
        f"**{report.summary_line()}**",
        "",
        f"- range: {n_commits} commit{'s' if n_commits != 1 else ''} after base "
        f"{_commit(report.base)}, up to {_commit(report.head)}",
        "- change points: over each series' per-run medians in commit order (penalised mean-shift "
        f"segmentation, min segment 5, confirm 3); start vs end: Mann-Whitney U on the process "
        f"values of the latest run at the first and the last measured commit, "
        f"Benjamini-Hochberg FDR q={report.fdr_q:g}; {_threshold_text(report)}, "
        f"alpha {report.alpha:g}",
        "",
        "### Series",
        "",
    ]
    headers = ["benchmark", "metric", "runs", "commits", "start", "end", "change", "status",
               "confidence", "change points"]
    right = (2, 3, 4, 5, 6, 9)
    if report.series:
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|")
        for s in report.series:
            out.append(_md_row([_md_escape(c) for c in _row(s, report)]))
        notes = [f"- {_md_escape(s.label)}: {s.status}: {_md_escape(s.reason)}"
                 for s in report.series if s.status != Status.UNCHANGED.value]
        if notes:
            out += [""] + notes
    else:
        out.append("none: no stored runs of this suite on this machine in the range")

    out += ["", "### Change points", ""]
    if report.change_points:
        for cp in report.change_points:
            where = (f"between two runs of {_commit(cp.after)}" if cp.same_commit else
                     f"between {_commit(cp.before)} and {_commit(cp.after)}")
            size = "beyond" if cp.beyond_threshold else "below"
            env = ", environment changed here" if cp.env_changed else ""
            culprit = "" if cp.same_commit or cp.suspects == 1 else f" (in one of {cp.suspects} commits)"
            out.append(
                f"- **{_md_escape(cp.benchmark)} ({cp.metric})**: {_pct(cp.shift_pct)} "
                f"**{cp.direction_word}** ({_q(cp.before_median, cp.unit)} -> "
                f"{_q(cp.after_median, cp.unit)}, {size} the threshold, score {cp.score:.1f}{env}) "
                f"{_md_escape(where)}{culprit}")
    else:
        out.append("none")

    out += ["", "### Open alerts", ""]
    if report.alerts:
        out.append("| id | benchmark | metric | change | confidence | first bad commit | state |")
        out.append("|---:|---|---|---:|---|---|---|")
        for a in report.alerts:
            first_bad = _commit(a.first_bad) + (" (in range)" if a.in_range else "")
            out.append(_md_row([str(a.id), _md_escape(a.benchmark or "(machine-wide)"), a.metric,
                                _pct(a.change_pct), a.confidence, _md_escape(first_bad), a.state]))
    else:
        out.append("none")

    out += ["", "### Commits in range", "", "| # | commit | subject | runs | change points |",
            "|---:|---|---|---:|---|"]
    landed: dict[str, list[ChangePointFinding]] = {}
    for cp in report.change_points:
        if not cp.same_commit:
            landed.setdefault(cp.after.sha, []).append(cp)
    for i, c in enumerate(report.commits):
        marks = "; ".join(f"**<- {_md_escape(cp.benchmark)} ({cp.metric}) {_pct(cp.shift_pct)} "
                          f"{cp.direction_word}**" for cp in landed.get(c.sha, []))
        subject = _md_escape(c.subject) + (" (base)" if c.is_base else "")
        out.append(_md_row([str(i), f"`{c.sha[:12]}`", subject, str(c.runs), marks]))

    out += ["", "### Recommendations", ""]
    out += [f"- {_md_escape(r)}" for r in report.recommendations()]
    return "\n".join(out) + "\n"


def _commit_dict(c: CommitInfo | None, run_id: int | None = None) -> dict[str, Any] | None:
    if c is None:
        return None
    out: dict[str, Any] = {"commit": c.sha, "subject": c.subject}
    if run_id is not None:
        out["run_id"] = run_id
    return out


def report_dict(report: AnalyzeReport) -> dict[str, Any]:
    def change_point(cp: ChangePointFinding) -> dict[str, Any]:
        return {
            "benchmark": cp.benchmark, "metric": cp.metric, "unit": cp.unit,
            "before": _commit_dict(cp.before), "after": _commit_dict(cp.after),
            "suspects": cp.suspects, "before_median": cp.before_median,
            "after_median": cp.after_median, "shift_pct": cp.shift_pct,
            "direction": cp.direction_word, "beyond_threshold": cp.beyond_threshold,
            "score": cp.score, "env_changed": cp.env_changed,
        }

    def series(s: SeriesAnalysis) -> dict[str, Any]:
        c = s.comparison
        return {
            "benchmark": s.benchmark, "metric": s.metric, "unit": s.unit,
            "direction": s.direction.value, "config_hash": s.config_hash,
            "threshold_pct": s.threshold_pct, "runs": s.n_runs, "commits": s.n_commits,
            "status": s.status, "confidence": s.confidence.value if s.confidence else None,
            "alert_worthy": s.alert_worthy, "reason": s.reason,
            "start": _commit_dict(s.start, s.start_run_id),
            "end": _commit_dict(s.end, s.end_run_id),
            "start_median": s.start_median, "end_median": s.end_median,
            "change_pct": s.change_pct, "env_changed": s.env_changed,
            "p_value": c.p_value if c else None, "p_adjusted": c.p_adjusted if c else None,
            "ratio_ci": list(c.ratio_ci) if c else None,
            "criteria": [{"name": k.name, "met": k.met, "detail": k.detail}
                         for k in c.criteria] if c else [],
            "change_points_searched": s.change_points_searched,
            "change_points": [change_point(cp) for cp in s.change_points],
        }

    return {
        "format": "perfd-analyze-report", "version": REPORT_VERSION,
        "verdict": report.verdict, "summary": report.summary_line(),
        "suite": report.suite, "machine_id": report.machine_id,
        "base": _commit_dict(report.base), "head": _commit_dict(report.head),
        "threshold_pct": report.threshold_pct,
        "default_threshold_pct": report.default_threshold_pct,
        "alpha": report.alpha, "fdr_q": report.fdr_q,
        "series": [series(s) for s in report.series],
        "open_alerts": [{
            "id": a.id, "benchmark": a.benchmark or None, "metric": a.metric,
            "change_pct": a.change_pct, "confidence": a.confidence,
            "first_bad": _commit_dict(a.first_bad), "state": a.state, "in_range": a.in_range,
        } for a in report.alerts],
        "commits": [{"commit": c.sha, "subject": c.subject, "runs": c.runs, "base": c.is_base}
                    for c in report.commits],
        "recommendations": report.recommendations(),
    }


def render_json(report: AnalyzeReport) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


RENDERERS = {"markdown": render_markdown, "json": render_json}


def render(report: AnalyzeReport, fmt: str) -> str:
    return RENDERERS[fmt](report)
