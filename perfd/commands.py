"""The CLI's commands: arguments -> a request -> a flow -> a rendering -> an exit code.

No logic lives here that the daemon would need: flows decide, report/ words the result.
Commands raise PerfdError; cli.main maps it to an exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from perfd.atomic import write_text_atomically
from perfd.config import ConfigSet, check_paths, json_schema, load_config_set
from perfd.context import Services
from perfd.errors import EXIT_NEGATIVE, EXIT_OK, EXIT_RUN, ConfigError, UsageError
from perfd.events import Event, discard
from perfd.model import Confidence, RunTier, Verdict
from perfd.runner.harness_src import harness_cflags, harness_dir
from perfd.store import ResultStore
from perfd.store.migrations import SCHEMA_VERSION


def config_path(args: argparse.Namespace) -> Path | None:
    """The daemon file from --config, $PERFD_CONFIG or ./perfd.yaml; None for the defaults."""
    path = args.config or (Path(os.environ["PERFD_CONFIG"]) if os.environ.get("PERFD_CONFIG")
                           else None)
    if path is None and Path("perfd.yaml").is_file():
        path = Path("perfd.yaml")
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return path


def load_config(args: argparse.Namespace) -> ConfigSet:
    """The whole configuration (daemon file, suites, budgets), validated as one snapshot."""
    return load_config_set(config_path(args), cwd=Path.cwd())


def print_event(event: Event) -> None:
    print(f"perfd: {event.message}", file=sys.stderr, flush=True)


def services(args: argparse.Namespace) -> Services:
    """The command's Services: one config snapshot, the store, the machine lock, progress."""
    return Services.create(load_config(args), db_url=args.db,
                           events=discard if args.quiet else print_event,
                           wait_for_machine=not args.no_wait)


def _write_report(args: argparse.Namespace, text: str) -> None:
    if args.output:
        write_text_atomically(args.output, text)
    sys.stdout.write(text)


def cmd_run(args: argparse.Namespace) -> int:
    from perfd.flows.run import RunRequest, run
    from perfd.report.budgets import budget_dicts, budgets_table
    from perfd.report.references import ratio_dicts, ratios_table, reference_dict
    from perfd.report.runs import outcome_dict, outcome_text

    report = run(services(args), RunRequest(
        suite=args.suite, commit=args.commit, output_dir=args.output, repository=args.repo,
        seed=args.seed, tier=RunTier(args.tier), retries=args.retries,
        retry_delay_s=args.retry_delay, solo=args.solo, branch=args.branch))
    outcome, budgets = report.outcome, report.budgets.results if report.budgets else ()
    if args.json:
        print(json.dumps({**outcome_dict(outcome), "budgets": budget_dicts(budgets),
                          "reference": reference_dict(report.reference) if report.reference
                          else None, "ratios": ratio_dicts(report.ratios)}, indent=2))
    else:
        print(outcome_text(outcome))
        if report.reference is not None:
            print("\n" + ratios_table(report.reference, report.ratios))
        if budgets:
            print("\n" + budgets_table(budgets))
    # A broken budget is shown, not an error: `perfd budgets check` is the gate (exit 1).
    return EXIT_RUN if outcome.contended else EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from perfd.flows.compare import CompareRequest, compare
    from perfd.report.compare import render

    svc = services(args)
    report = compare(svc, CompareRequest(
        suite=args.suite, baseline=args.baseline, current=args.current, repository=args.repo,
        threshold_pct=args.threshold, alpha=args.alpha, fdr_q=args.fdr, min_pairs=args.min_pairs,
        max_pairs=args.max_pairs, interleave=args.interleave, seed=args.seed,
        evidence_dir=(args.evidence_dir or svc.data_dir / "evidence") if args.evidence else None,
        profiler=args.profiler,
    ))
    _write_report(args, render(report, args.format))
    return EXIT_NEGATIVE if report.verdict is Verdict.REGRESSED else EXIT_OK


def cmd_gate(args: argparse.Namespace) -> int:
    from perfd.flows.gate import GateRequest, gate
    from perfd.report import gate as words

    request = GateRequest(  # checks its arguments (exit 2) before anything is opened
        suite=args.suite, current=args.current, baseline=args.baseline,
        target_branch=args.target_branch, repository=args.repo,
        required_confidence=Confidence(args.require_confidence), override=args.override,
        threshold_pct=args.threshold, min_pairs=args.min_pairs, max_pairs=args.max_pairs,
        seed=args.seed, retries=args.retries, retry_delay_s=args.retry_delay,
        profiler=args.profiler)
    svc = services(args)
    if args.evidence:
        request = dataclasses.replace(request,
                                      evidence_dir=args.evidence_dir or svc.data_dir / "evidence")
    result = gate(svc, request)
    summary = words.render_summary(result)
    if args.summary:
        write_text_atomically(args.summary, summary)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:  # GitHub Actions shows what a step appends to this file
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(summary)
    if args.comment and (result.changed or not args.comment_only_on_change):
        write_text_atomically(args.comment, words.render_comment(result))
    elif args.comment:
        print(f"perfd: nothing changed: no PR comment written to {args.comment}", file=sys.stderr)
    if args.junit:
        write_text_atomically(args.junit, words.render_junit(result))
    sys.stdout.write(words.render_json(result) if args.json else words.render_text(result))
    return result.exit_code


def cmd_bisect(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from perfd.analysis.bisect import Outcome
    from perfd.errors import EXIT_REPOSITORY
    from perfd.flows.bisect import BisectRequest, bisect, request_for_alert
    from perfd.report.bisect import render

    given = {"suite": args.suite, "good": args.good, "bad": args.bad,
             "benchmark": args.benchmark, "metric": args.metric}
    missing = [f"--{name}" for name in ("suite", "good", "bad", "benchmark") if given[name] is None]
    if args.alert is None and missing:
        raise UsageError(f"bisect needs {', '.join(missing)} (or --alert ID)")
    request = BisectRequest(  # checks its arguments (exit 2) before anything is opened
        suite=args.suite or "-", good=args.good or "-", bad=args.bad or "-",
        benchmark=args.benchmark or "-", metric=args.metric or "time",
        threshold_pct=args.threshold, alpha=args.alpha, min_pairs=args.min_pairs,
        max_pairs=args.max_pairs, max_steps=args.max_steps, repository=args.repo,
        seed=args.seed)
    svc = services(args)
    if args.alert is not None:  # the alert's range and series, unless given
        request = replace(request_for_alert(svc, args.alert), threshold_pct=args.threshold,
                          alpha=args.alpha, min_pairs=args.min_pairs, max_pairs=args.max_pairs,
                          max_steps=args.max_steps, repository=args.repo, seed=args.seed,
                          **{k: v for k, v in given.items() if v is not None})
    result = bisect(svc, request)
    _write_report(args, render(result, "json" if args.json else args.format))
    return {Outcome.FOUND: EXIT_OK, Outcome.RANGE: EXIT_NEGATIVE,
            Outcome.NOTHING: EXIT_REPOSITORY}[result.outcome]


def cmd_alert(args: argparse.Namespace) -> int:
    from perfd.flows import alerts as flow
    from perfd.report.alerts import (
        alert_json,
        alert_text,
        alerts_table,
        decision_dicts,
        decisions_table,
    )

    svc = services(args)
    action = args.alert_command
    if action in flow.TRANSITIONS:
        actor = args.by or os.environ.get("USER") or "cli"
        alert = flow.transition_alert(svc, flow.TransitionRequest(
            args.alert_id, flow.TRANSITIONS[action], actor=actor, reason=args.reason,
            parent_alert_id=getattr(args, "parent", None)))
        print(f"alert {alert.id}: {alert.state} (by {actor})")
        return EXIT_OK
    if action == "show":
        print(alert_text(*flow.show_alert(svc, args.alert_id)))
        return EXIT_OK
    if action == "list":
        states = None if args.all else (args.state or ["OPEN", "ACKNOWLEDGED"])
        alerts = flow.list_alerts(svc, states=states, suite=args.list_suite, limit=args.limit)
        if args.list_json:
            print(json.dumps([alert_json(a) for a in alerts], indent=2, default=str))
        else:
            print(alerts_table(alerts) if alerts else "no alerts" + ("" if args.all else " open"))
        return EXIT_OK
    evaluation = flow.evaluate_alerts(svc, flow.EvaluateRequest(
        policy=flow.AlertPolicy(threshold_pct=args.threshold,
                                min_confidence=Confidence(args.confidence.upper()),
                                alpha=args.alpha),
        suite=args.suite, evidence=args.evidence, confirm=args.confirm,
        max_pairs=args.max_pairs))
    decisions = evaluation.decisions
    print(json.dumps(decision_dicts(decisions), indent=2) if args.json
          else decisions_table(decisions))
    for found in evaluation.evidence:
        print(f"alert {found.alert_id}: evidence in {found.bundle.directory} "
              f"(differential flamegraph: {found.bundle.diff_flamegraph})")
    return EXIT_NEGATIVE if evaluation.open_alerts else EXIT_OK


def cmd_evidence(args: argparse.Namespace) -> int:
    from perfd.flows.evidence import AlertEvidenceRequest, alert_evidence

    bundle = alert_evidence(services(args), AlertEvidenceRequest(
        args.alert_id, output_dir=args.output, profiler=args.profiler, repository=args.repo))
    print(bundle.report.read_text())
    print(f"differential flamegraph: {bundle.diff_flamegraph}")
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from perfd.flows.analyze import AnalyzeRequest, analyze
    from perfd.report.analyze import render

    if args.threshold is not None and not args.threshold > 0:
        raise UsageError(f"--threshold must be > 0 (a percentage), got {args.threshold:g}")
    result = analyze(services(args), AnalyzeRequest(
        suite=args.suite, range=args.range, repository=args.repo, threshold_pct=args.threshold,
        evidence=args.evidence))
    _write_report(args, render(result.report, args.format))
    for found in result.evidence:
        cp, bundle = found.step, found.bundle
        print(f"perfd: evidence for {cp.benchmark} ({cp.before.sha[:12]} -> {cp.after.sha[:12]}): "
              f"{bundle.report} (differential flamegraph: {bundle.diff_flamegraph})",
              file=sys.stderr)
    return EXIT_NEGATIVE if result.report.verdict is Verdict.REGRESSED else EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from perfd.report.budgets import budget_dicts, budgets_table
    from perfd.report.runs import run_dict, run_text, runs_table

    store = services(args).store
    if args.runs_command == "list":
        print(runs_table(store.list_runs(suite=args.suite, commit=args.commit, status=args.status,
                                         limit=args.limit)))
        return EXIT_OK
    with store.reading() as r:
        detail, budgets = r.get_run(args.run_id), r.budget_results(args.run_id)
    if args.json:
        print(json.dumps({**run_dict(detail), "budgets": budget_dicts(budgets)}, indent=2,
                         default=str))
    else:
        print(run_text(detail))
        if budgets:
            print("\n" + budgets_table(budgets))
    return EXIT_OK


def cmd_reference(args: argparse.Namespace) -> int:
    from perfd.flows import references as flow
    from perfd.report.references import (
        reference_dict,
        reference_line,
        reference_set_dict,
        reference_set_text,
        references_table,
    )

    svc = services(args)
    if args.reference_command == "set":
        moved = flow.set_reference(svc, flow.SetReference(
            suite=args.suite, rev=args.commit, branch=args.branch, repository=args.repo,
            set_by=args.by or os.environ.get("USER") or "cli", reason=args.reason,
            link=args.link, link_pairs=args.link_pairs, seed=args.seed))
        if args.json:
            print(json.dumps(reference_set_dict(moved.reference, moved.previous, moved.links),
                             indent=2))
        else:
            print(reference_set_text(moved.reference, moved.previous, moved.links))
        return EXIT_OK
    if args.reference_command == "show":
        current = flow.current_reference(svc, args.suite, args.branch)
        if args.json:
            print(json.dumps(reference_dict(current) if current else None, indent=2))
        else:
            print(reference_line(current) if current else f"suite {args.suite} has no reference: its "
                  "runs are measured alone (perfd reference set --suite S --commit REV --reason WHY)")
        return EXIT_OK
    refs = flow.list_references(svc, args.suite)
    print(json.dumps([reference_dict(r) for r in refs], indent=2) if args.json
          else references_table(refs))
    return EXIT_OK


def cmd_budgets(args: argparse.Namespace) -> int:
    from perfd.flows.budgets import CheckRequest, check_budgets
    from perfd.report.budgets import budget_dicts, budgets_table

    checks = check_budgets(services(args), CheckRequest(suite=args.suite, run_id=args.run))
    if args.json:
        print(json.dumps([{"run_id": c.run_id, "suite": c.suite, "commit": c.commit_sha,
                           "budgets": budget_dicts(c.results)} for c in checks], indent=2))
    elif not checks:
        print("no completed run of a suite with budgets on this machine")
    for check in checks if not args.json else ():
        print(f"run {check.run_id}: suite {check.suite} at {check.commit_sha[:12]}: "
              f"{len(check.failed)} failed, {len(check.warned)} warned of {len(check.results)}")
        print(budgets_table(check.results) + "\n")
    return EXIT_NEGATIVE if any(c.failed for c in checks) else EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    if not args.paths:  # the configuration as every command loads it, validated whole
        config = load_config(args)
        checked = [config.suites_dir] + ([config.budgets_path] if config.budgets is not None else [])
        print(f"ok: {', '.join(str(p) for p in checked)}")
        return EXIT_OK
    suites_dir = load_config(args).suites_dir
    problems = check_paths(list(args.paths), suites_dir if suites_dir.is_dir() else None)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) found", problems=problems)
    print(f"ok: {', '.join(str(p) for p in args.paths)}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(args.kind), indent=2))
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    url = args.db or load_config(args).storage_url
    if args.db_command == "upgrade":
        store = ResultStore.open_for_upgrade(url)
        before, after = store.upgrade()
        print(f"schema version {before} -> {after}" if before != after
              else f"schema is up to date (version {after})")
        return EXIT_OK
    print(f"schema version {ResultStore.open(url).schema_version()} (this perfd: {SCHEMA_VERSION})")
    return EXIT_OK


def cmd_harness(args: argparse.Namespace) -> int:
    if args.path:
        print(harness_dir())
    elif args.cflags:
        print(harness_cflags())
    else:
        print(harness_dir() / "perfd_harness.c")
    return EXIT_OK


def cmd_daemon(args: argparse.Namespace) -> int:
    from perfd.daemon.app import main as daemon_main

    return daemon_main(config_path(args), cwd=Path.cwd(), stop_timeout_s=args.stop_timeout)


def cmd_enqueue(args: argparse.Namespace) -> int:
    from perfd.flows.jobs import EnqueueRequest, enqueue
    from perfd.report.jobs import job_dict, job_line

    done = enqueue(services(args), EnqueueRequest(
        suite=args.suite, commit=args.commit, tier=args.tier, branch=args.branch,
        requested_by=os.environ.get("USER") or "cli"))
    if args.json:
        print(json.dumps({**job_dict(done.job), "created": done.created,
                          "skipped": list(done.skipped)}, indent=2))
    else:
        print(("queued " if done.created else "already queued: ") + job_line(done.job))
        if done.skipped:
            print(f"skipped older queued job(s) {', '.join(map(str, done.skipped))} (burst policy)")
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace) -> int:
    from perfd.flows import jobs as flow
    from perfd.report.jobs import job_dict, job_text, jobs_table

    svc = services(args)
    if args.jobs_command == "list":
        found = flow.list_jobs(svc, states=args.state, suite=args.suite, limit=args.limit,
                               all_machines=args.all_machines)
        print(json.dumps([job_dict(j) for j in found], indent=2) if args.json
              else jobs_table(found))
        return EXIT_OK
    if args.jobs_command == "show":
        job = flow.show_job(svc, args.job_id)
        print(json.dumps(job_dict(job), indent=2) if args.json else job_text(job))
        return EXIT_OK
    job = flow.cancel_job(svc, args.job_id, args.by or os.environ.get("USER") or "cli",
                          args.reason)
    print(job_text(job))
    return EXIT_OK


COMMANDS = {
    "analyze": cmd_analyze,
    "run": cmd_run, "compare": cmd_compare, "alert": cmd_alert, "evidence": cmd_evidence,
    "gate": cmd_gate,
    "runs": cmd_runs, "budgets": cmd_budgets, "reference": cmd_reference,
    "check-config": cmd_check_config, "schema": cmd_schema, "db": cmd_db, "harness": cmd_harness,
    "daemon": cmd_daemon, "enqueue": cmd_enqueue, "jobs": cmd_jobs,
    "bisect": cmd_bisect,
}


def dispatch(args: argparse.Namespace) -> int:
    handler = COMMANDS.get(args.command)
    if handler is None:
        raise UsageError(f"unknown command {args.command!r}")
    return handler(args)
