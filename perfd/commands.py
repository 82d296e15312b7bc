"""What each CLI command does. Commands raise PerfdError; cli.main maps it to an exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from perfd.atomic import write_text_atomically
from perfd.config import DaemonConfig, check_paths, find_suite, json_schema, load_daemon
from perfd.errors import EXIT_NEGATIVE, EXIT_OK, ConfigError, PerfdError, UsageError
from perfd.report.text import environment_line, fmt_value, statistics_table, table
from perfd.runner.harness_src import harness_cflags, harness_dir
from perfd.store import Alert, ResultStore
from perfd.store.migrations import SCHEMA_VERSION

if TYPE_CHECKING:
    from perfd.config import SuiteConfig
    from perfd.flows.evidence import EvidenceBundle
    from perfd.report.analyze import AnalyzeReport


def load_config(args: argparse.Namespace) -> DaemonConfig:
    """The daemon file from --config, $PERFD_CONFIG or ./perfd.yaml; defaults otherwise."""
    path = args.config or (Path(os.environ["PERFD_CONFIG"]) if os.environ.get("PERFD_CONFIG")
                           else None)
    if path is None and Path("perfd.yaml").is_file():
        path = Path("perfd.yaml")
    if path is None:
        return DaemonConfig.default(Path.cwd())
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return load_daemon(path)


def open_store(args: argparse.Namespace, config: DaemonConfig) -> ResultStore:
    return ResultStore.open(args.db or config.storage_url_resolved())


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    if args.quiet:
        return lambda message: None
    return lambda message: print(f"perfd: {message}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from perfd.runner.pipeline import RunOptions, run_suite

    config = load_config(args)
    suite = find_suite(args.suite, config.suites_dir_resolved())
    store = open_store(args, config)
    outcome = run_suite(suite, args.commit, store, RunOptions(
        data_dir=config.data_dir_resolved(), machine_id=config.machine_id_resolved(),
        output_dir=args.output, repository=args.repo, seed=args.seed,
        progress=_progress(args),
    ))
    if args.json:
        print(json.dumps({
            "run_id": outcome.run_id, "commit": outcome.commit_sha,
            "statistics": [s.to_dict() for s in outcome.result.statistics],
            "unavailable": outcome.unavailable,
        }, indent=2))
        return EXIT_OK
    print(f"run {outcome.run_id}: suite {suite.name} at {outcome.commit_sha[:12]} "
          f"on {config.machine_id_resolved()} - COMPLETED")
    print(f"environment: {environment_line(outcome.result.environment)}")
    ctx = outcome.result.harness
    print(f"timer: resolution {fmt_value(ctx.timer_resolution_ns)} ns, overhead "
          f"{fmt_value(ctx.timer_overhead_ns)} ns per reading")
    print()
    print(statistics_table(outcome.result.statistics))
    for key, reason in sorted(outcome.unavailable.items()):
        print(f"unavailable: {key}: {reason}")
    if outcome.data_path:
        print(f"\nraw data: {outcome.data_path}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from perfd.flows.compare import CompareOptions, compare_commits
    from perfd.report.compare import render
    from perfd.runner.pipeline import RunOptions

    config = load_config(args)
    suite = find_suite(args.suite, config.suites_dir_resolved())
    store = open_store(args, config)
    report = compare_commits(suite, args.baseline, args.current, store, RunOptions(
        data_dir=config.data_dir_resolved(), machine_id=config.machine_id_resolved(),
        repository=args.repo, seed=args.seed, tier="compare", progress=_progress(args),
    ), CompareOptions(
        threshold_pct=args.threshold, alpha=args.alpha, fdr_q=args.fdr, min_pairs=args.min_pairs,
        max_pairs=args.max_pairs, interleave=args.interleave, seed=args.seed,
        evidence_dir=(args.evidence_dir or config.data_dir_resolved() / "evidence")
        if args.evidence else None,
        profiler=args.profiler,
    ))
    text = render(report, args.format)
    if args.output:
        write_text_atomically(args.output, text)
    sys.stdout.write(text)
    return EXIT_NEGATIVE if report.verdict == "REGRESSED" else EXIT_OK


def analyze_evidence(args: argparse.Namespace, config: DaemonConfig, suite: SuiteConfig,
                     report: AnalyzeReport) -> None:
    """Profile both sides of each worse step beyond the threshold (one bundle per benchmark)."""
    from perfd.flows.evidence import collect_evidence
    from perfd.runner.build import Builder
    from perfd.runner.git import Repository

    data_dir = config.data_dir_resolved()
    repo = Repository.open(args.repo or suite.repository_location(), data_dir / "mirrors")
    builder = Builder(data_dir / "builds")
    done: set[str] = set()
    for series in report.series:
        for cp in series.change_points:
            if not (cp.worse and cp.beyond_threshold) or cp.benchmark in done:
                continue
            done.add(cp.benchmark)
            out = (data_dir / "evidence" / f"analyze-{cp.before.sha[:12]}-{cp.after.sha[:12]}"
                   / cp.benchmark.replace("/", "_"))
            timed = series.metric == "time"
            try:
                bundle = collect_evidence(
                    suite, repo, builder, cp.before.sha, cp.after.sha, cp.benchmark, out,
                    baseline_latency_ns=cp.before_median if timed else None,
                    current_latency_ns=cp.after_median if timed else None,
                    progress=_progress(args))
            except PerfdError as exc:
                print(f"perfd: evidence for {cp.benchmark} not collected: {exc}", file=sys.stderr)
                continue
            print(f"evidence for {cp.benchmark} ({cp.before.sha[:12]} -> {cp.after.sha[:12]}): "
                  f"{bundle.report} (differential flamegraph: {bundle.diff_flamegraph})",
                  file=sys.stderr)


TRANSITIONS = {"ack": "ACKNOWLEDGED", "resolve": "RESOLVED", "false-positive": "FALSE_POSITIVE",
               "invalid": "INVALID", "downstream": "DOWNSTREAM"}


def cmd_alert(args: argparse.Namespace) -> int:
    config = load_config(args)
    store = open_store(args, config)
    action = args.alert_command
    if action in TRANSITIONS:
        actor = args.by or os.environ.get("USER") or "cli"
        alert = store.transition(args.alert_id, TRANSITIONS[action], actor=actor, reason=args.reason,
                                 parent_alert_id=getattr(args, "parent", None))
        print(f"alert {alert.id}: {alert.state} (by {actor})")
        return EXIT_OK
    if action == "show":
        alert, events = store.get_alert(args.alert_id)
        print(alert_text(alert))
        print("\nhistory:")
        for e in events:
            print(f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.from_state or '-':>12} -> {e.to_state:<14} "
                  f"by {e.actor}: {e.reason}")
        return EXIT_OK
    if action == "list":
        states = None if args.all else (args.state or ["OPEN", "ACKNOWLEDGED"])
        alerts = store.list_alerts(state=states, suite=args.list_suite, limit=args.limit)
        if args.list_json:
            print(json.dumps([alert_json(a) for a in alerts], indent=2, default=str))
        elif not alerts:
            print("no alerts" + ("" if args.all else " open"))
        else:
            print(alerts_table(alerts))
        return EXIT_OK
    from perfd.analysis.compare import Confidence
    from perfd.config import load_suites
    from perfd.flows.alerts import AlertPolicy, evaluate

    suites_dir = config.suites_dir_resolved()
    suites = load_suites(suites_dir) if suites_dir.is_dir() else {}
    decisions = evaluate(store, suites, config.machine_id_resolved(), AlertPolicy(
        threshold_pct=args.threshold, min_confidence=Confidence(args.confidence.upper()),
        alpha=args.alpha), suite_filter=args.suite)
    if args.json:
        print(json.dumps([{"suite": d.series.suite, "benchmark": d.series.benchmark,
                           "metric": d.series.metric, "action": d.action, "alert_id": d.alert_id,
                           "note": d.note} for d in decisions], indent=2))
    elif not decisions:
        print("no series with stored runs on this machine")
    else:
        rows = [[d.series.suite, d.series.benchmark or "(machine)", d.series.metric, d.action,
                 str(d.alert_id or ""), d.note[:90]] for d in decisions]
        print(table(["suite", "benchmark", "metric", "action", "alert", "why"], rows))
    if args.evidence:
        for d in decisions:
            if d.action == "opened" and d.alert_id is not None and d.series.benchmark:
                try:
                    bundle = alert_evidence(args, config, store, d.alert_id, None, "auto")
                except PerfdError as exc:
                    print(f"perfd: evidence for alert {d.alert_id} not collected: {exc}",
                          file=sys.stderr)
                    continue
                print(f"alert {d.alert_id}: evidence in {bundle.directory} "
                      f"(differential flamegraph: {bundle.diff_flamegraph})")
    still_open = store.list_alerts(state=["OPEN"], suite=args.suite, limit=1,
                                   machine_id=config.machine_id_resolved())
    return EXIT_NEGATIVE if still_open else EXIT_OK


def alert_evidence(args: argparse.Namespace, config: DaemonConfig, store: ResultStore,
                   alert_id: int, output: Path | None, profiler: str) -> EvidenceBundle:
    """Profile an alert's baseline and first bad commit; store the bundle's path on the alert."""
    from perfd.flows.evidence import collect_evidence
    from perfd.runner.build import Builder
    from perfd.runner.git import Repository

    alert, _ = store.get_alert(alert_id)
    if not alert.series.benchmark:
        raise UsageError(f"alert {alert_id} is an infrastructure alert: there is no benchmark "
                         "to profile; compare the runs' environments with `perfd runs show`")
    suite = find_suite(alert.series.suite, config.suites_dir_resolved())
    data_dir = config.data_dir_resolved()
    repo = Repository.open(getattr(args, "repo", None) or suite.repository_location(),
                           data_dir / "mirrors")
    def latency(run_id: int | None) -> float | None:
        if run_id is None:
            return None
        return next((s.median for s in store.statistics(run_id)
                     if s.benchmark == alert.series.benchmark and s.metric == "time"), None)

    bundle = collect_evidence(
        suite, repo, Builder(data_dir / "builds"), alert.baseline_commit, alert.first_bad_commit,
        alert.series.benchmark, output or data_dir / "evidence" / f"alert-{alert_id}",
        baseline_latency_ns=latency(alert.baseline_run_id),
        current_latency_ns=latency(alert.last_run_id), method=profiler, progress=_progress(args))
    store.set_evidence_path(alert_id, str(bundle.directory))
    return bundle


def cmd_evidence(args: argparse.Namespace) -> int:
    config = load_config(args)
    store = open_store(args, config)
    bundle = alert_evidence(args, config, store, args.alert_id, args.output, args.profiler)
    print(bundle.report.read_text())
    print(f"differential flamegraph: {bundle.diff_flamegraph}")
    return EXIT_OK


def alert_json(a: Alert) -> dict[str, object]:
    return {"id": a.id, "state": a.state, "kind": a.kind, "suite": a.series.suite,
            "benchmark": a.series.benchmark or None, "metric": a.series.metric,
            "machine_id": a.series.machine_id, "change_pct": a.change_pct,
            "confidence": a.confidence, "p_value": a.p_value, "baseline_commit": a.baseline_commit,
            "first_bad_commit": a.first_bad_commit, "last_commit": a.last_commit,
            "runs_seen": a.runs_seen, "parent_alert_id": a.parent_alert_id,
            "evidence_path": a.evidence_path, "reason": a.reason,
            "created_at": a.created_at.isoformat(), "updated_at": a.updated_at.isoformat()}


def alerts_table(alerts: Sequence[Alert]) -> str:
    rows = [[str(a.id), a.state, a.series.suite, a.series.benchmark or "(machine)", a.series.metric,
             f"{a.change_pct:+.1f}%", a.confidence, a.first_bad_commit[:12], str(a.runs_seen),
             f"{a.updated_at:%Y-%m-%d %H:%M}", a.evidence_path or "-"] for a in alerts]
    return table(["id", "state", "suite", "benchmark", "metric", "change", "confidence",
                  "first bad", "runs", "updated (UTC)", "evidence"], rows, right=[0, 5, 8])


def alert_text(a: Alert) -> str:
    lines = [
        f"alert {a.id}: {a.state} ({a.kind})",
        f"series:      {a.series.suite} / {a.series.benchmark or '(machine)'} / {a.series.metric} "
        f"on {a.series.machine_id}",
        f"change:      {a.change_pct:+.2f}% ({a.confidence} confidence"
        + (f", p={a.p_value:.2g})" if a.p_value is not None else ")"),
        f"baseline:    {a.baseline_commit} (run {a.baseline_run_id})",
        f"first bad:   {a.first_bad_commit}",
        f"latest:      {a.last_commit} (run {a.last_run_id}, seen in {a.runs_seen} run(s))",
        f"why:         {a.reason}",
    ]
    if a.parent_alert_id:
        lines.append(f"downstream of alert {a.parent_alert_id}")
    if a.evidence_path:
        lines.append(f"evidence:    {a.evidence_path}")
    return "\n".join(lines)


def cmd_analyze(args: argparse.Namespace) -> int:
    from perfd.flows.analyze import AnalyzeOptions, analyze_range
    from perfd.report.analyze import render

    if args.threshold is not None and not args.threshold > 0:
        raise UsageError(f"--threshold must be > 0 (a percentage), got {args.threshold:g}")
    config = load_config(args)
    suite = find_suite(args.suite, config.suites_dir_resolved())
    store = open_store(args, config)
    report = analyze_range(suite, args.range, store, machine_id=config.machine_id_resolved(),
                           data_dir=config.data_dir_resolved(), repository=args.repo,
                           opts=AnalyzeOptions(threshold_pct=args.threshold))
    text = render(report, args.format)
    if args.output:
        write_text_atomically(args.output, text)
    sys.stdout.write(text)
    if args.evidence:
        analyze_evidence(args, config, suite, report)
    return EXIT_NEGATIVE if report.verdict == "REGRESSED" else EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    config = load_config(args)
    store = open_store(args, config)
    if args.runs_command == "list":
        runs = store.list_runs(suite=args.suite, commit=args.commit, status=args.status,
                               limit=args.limit)
        if not runs:
            print("no runs stored yet")
            return EXIT_OK
        rows = [[str(r.id), r.suite, r.commit_sha[:12], r.machine_id, r.status, r.tier,
                 r.started_at.strftime("%Y-%m-%d %H:%M:%S"), str(r.n_benchmarks),
                 (r.error or "").splitlines()[0][:60] if r.error else ""] for r in runs]
        print(table(["id", "suite", "commit", "machine", "status", "tier", "started (UTC)",
                     "benchmarks", "error"], rows, right=[0, 7]))
        return EXIT_OK
    detail = store.get_run(args.run_id)
    info = detail.info
    if args.json:
        print(json.dumps({
            "id": info.id, "suite": info.suite, "commit": info.commit_sha,
            "machine_id": info.machine_id, "status": info.status, "tier": info.tier,
            "started_at": info.started_at.isoformat(),
            "finished_at": info.finished_at.isoformat() if info.finished_at else None,
            "error": info.error, "config_hash": detail.config_hash,
            "build_hash": detail.build_hash, "environment": detail.environment,
            "statistics": [s.to_dict() for s in detail.statistics],
        }, indent=2, default=str))
        return EXIT_OK
    print(f"run {info.id}: suite {info.suite} at {info.commit_sha} on {info.machine_id}")
    print(f"status: {info.status}   tier: {info.tier}   started: {info.started_at:%Y-%m-%d %H:%M:%S}"
          + (f"   finished: {info.finished_at:%Y-%m-%d %H:%M:%S}" if info.finished_at else ""))
    print(f"config hash: {detail.config_hash}   build hash: {detail.build_hash}")
    if detail.environment:
        print("environment:")
        for key, value in detail.environment.items():
            print(f"  {key}: {'unknown' if value is None else value}")
    if info.error:
        print(f"error:\n{info.error}")
    if detail.statistics:
        print()
        print(statistics_table(detail.statistics))
    if detail.output_dir:
        print(f"\nraw data: {Path(detail.output_dir) / 'benchmark_data.json'}")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args)
    suites_dir = config.suites_dir_resolved()
    paths = list(args.paths)
    if not paths:
        paths = [suites_dir]
        if config.budgets_resolved().is_file():
            paths.append(config.budgets_resolved())
    problems = check_paths(paths, suites_dir if suites_dir.is_dir() else None)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) found", problems=problems)
    print(f"ok: {', '.join(str(p) for p in paths)}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(args.kind), indent=2))
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    config = load_config(args)
    if args.db_command == "upgrade":
        store = ResultStore.open_for_upgrade(args.db or config.storage_url_resolved())
        before, after = store.upgrade()
        print(f"schema version {before} -> {after}" if before != after
              else f"schema is up to date (version {after})")
        return EXIT_OK
    store = open_store(args, config)
    print(f"schema version {store.schema_version()} (this perfd: {SCHEMA_VERSION})")
    return EXIT_OK


def cmd_harness(args: argparse.Namespace) -> int:
    if args.path:
        print(harness_dir())
    elif args.cflags:
        print(harness_cflags())
    else:
        print(harness_dir() / "perfd_harness.c")
    return EXIT_OK


COMMANDS = {
    "analyze": cmd_analyze,
    "run": cmd_run, "compare": cmd_compare, "alert": cmd_alert, "evidence": cmd_evidence,
    "runs": cmd_runs,
    "check-config": cmd_check_config, "schema": cmd_schema, "db": cmd_db, "harness": cmd_harness,
}


def dispatch(args: argparse.Namespace) -> int:
    handler = COMMANDS.get(args.command)
    if handler is None:
        raise UsageError(f"unknown command {args.command!r}")
    return handler(args)
