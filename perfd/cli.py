"""Command line: argument parsing, and the only place that maps errors to exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from perfd import __version__
from perfd.errors import (
    EXIT_CONFIG,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PerfdError,
    UsageError,
)
from perfd.records import JOB_STATES

EXIT_CODES = """\
exit codes:
  0    success
  1    negative verdict (regression found, gate failed)
  2    usage or configuration error (bad YAML, unknown key, wrong type, bad reference)
  3    repository error (not a git repository, unknown commit)
  4    build failed (step failed, timed out, or its program is missing)
  5    benchmark run failed (harness crashed, hung, printed garbage or an unknown format,
       or the run stayed CONTENDED: its samples were taken off their CPU)
  6    storage error (database locked, unwritable, or at another schema version)
  7    machine busy: another perfd process is benchmarking here (with --no-wait)
  70   internal error (a bug in perfd)
  130  interrupted
"""


ALERT_EPILOG = """\
without an ACTION, `perfd alert` evaluates: for every series (suite x benchmark x metric x
machine x config) it compares the latest run with its baseline, updates open alerts and
resolves those back within the threshold. A regression at or above --confidence is first
confirmed: its last good and first bad commit run now in lock-step pairs (as `perfd
compare` does) and the alert opens with that A/B's numbers, or is recorded as a false
positive when the A/B shows no regression. Exit status 1 when an alert is open afterwards.
"""


GATE_EPILOG = """\
the baseline is --baseline, else the merge base of --current with --target-branch (tried as
given, then as origin/BRANCH); no such branch, no common history, or a current commit that is
already on the branch is an error (exit 2), never a silent pass. Both commits are built and
run in adaptive lock-step pairs (as `perfd compare`), measured again while the machine is
CONTENDED (--retries); the current side is held to the suite's budgets (relative limits
against the baseline side of the same pairs). An override - a `Perf-Override: <reason>`
trailer in the current commit's message, or --override REASON (a CI passes it from a pull
request label; it wins over the trailer) - turns a block into a pass that says so. Every
verdict is recorded in the store (table gate_verdicts) and shown in every output.

exit codes of perfd gate:
  0    PASS: no regression at the required confidence, no failing block budget (or an
       override accepted them; warn budgets and weaker regressions are shown)
  1    BLOCKED: a regression at --require-confidence or more, or a failing block budget
  2    configuration error: bad arguments, suite or budgets; no baseline to compare with
  3    could not measure: a commit does not exist or does not build, the harness failed,
       the machine stayed CONTENDED past --retries, or no benchmark could be decided
  6    storage error    7  machine busy (--no-wait)    70  internal error    130  interrupted
"""


def _add_gate_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    g = sub.add_parser("gate", help="CI gate: measure a change against its merge base, hold it "
                                    "to its budgets, pass or block (exit 0/1; 2 config, 3 "
                                    "could not measure)",
                       epilog=GATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("--suite", required=True, help="suite name or path to its YAML")
    g.add_argument("--current", required=True, metavar="REV",
                   help="the commit to judge (the pull request's head)")
    g.add_argument("--baseline", metavar="REV",
                   help="compare with this commit (default: the merge base with --target-branch)")
    g.add_argument("--target-branch", default="main", metavar="BRANCH",
                   help="the branch the change goes into (main); also tried as origin/BRANCH")
    g.add_argument("--require-confidence", default="HIGH", type=str.upper,
                   choices=["HIGH", "MEDIUM", "LOW"],
                   help="least confidence of a regression that blocks (HIGH)")
    g.add_argument("--override", metavar="REASON",
                   help="accept a known regression (e.g. from a pull request label); wins over "
                        "a Perf-Override trailer; recorded and shown")
    g.add_argument("--summary", type=Path, metavar="FILE",
                   help="write the Markdown summary here (it is also appended to "
                        "$GITHUB_STEP_SUMMARY when that is set)")
    g.add_argument("--comment", type=Path, metavar="FILE",
                   help="write a PR-comment body here (its first line is the hidden marker "
                        "<!-- perfd-gate:SUITE --> to find and edit the comment by)")
    g.add_argument("--comment-only-on-change", action="store_true",
                   help="write no --comment file when nothing moved, no budget broke and the "
                        "gate passed without an override")
    g.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    g.add_argument("--json", action="store_true",
                   help="print the JSON verdict (schema perfd-gate/1) instead of the text report")
    g.add_argument("--min-pairs", type=int, default=5, help="pairs before the first decision (5)")
    g.add_argument("--max-pairs", type=int, default=20, help="cap on pairs per benchmark (20)")
    g.add_argument("--threshold", type=float, metavar="PCT",
                   help="magnitude threshold in percent (default: each benchmark's threshold_pct)")
    g.add_argument("--retries", type=int, default=2, metavar="N",
                   help="measure again up to N times while the machine is CONTENDED (2); still "
                        "contended after that: exit 3")
    g.add_argument("--retry-delay", type=float, default=5.0, metavar="S",
                   help="seconds to wait before each retry (5)")
    g.add_argument("--repo", metavar="PATH|URL",
                   help="repository to use instead of the suite's (a CI passes its checkout)")
    g.add_argument("--seed", type=int, default=0, help="seed for pair order and bootstrap (0)")
    g.add_argument("--no-evidence", dest="evidence", action="store_false",
                   help="do not profile regressions (default: profile each one, so the summary "
                        "names the functions that grew)")
    g.add_argument("--evidence-dir", type=Path, metavar="DIR",
                   help="where evidence bundles go (default: <data_dir>/evidence)")
    g.add_argument("--profiler", choices=["auto", "perf", "harness"], default="auto")


BISECT_EPILOG = """\
Both ends are verified first: the bad end runs against the good end in adaptive lock-step
pairs (as `perfd compare`) and must be REGRESSED at MEDIUM or HIGH confidence. Then a binary
search over the first-parent commits after --good up to --bad: each commit runs against both
ends and is the same as the good end, the same as the bad end, or unknown (measured once more
with twice --max-pairs). A commit that does not build, or stays unknown, is passed over and
its neighbour tried; an unknown one is measured again at the end if the range needs it. What
could not be told is reported with the smallest range proven. Builds go through the build cache. The
result is recorded on --alert, or on the active alert of the series whose range it overlaps.
With --alert, --suite, --good, --bad, --benchmark and --metric default to the alert's.

exit codes of perfd bisect:
  0    the first bad commit was named
  1    only a range could be proven (commits next to the culprit stayed unknown or do not
       build, or --max-steps ran out); the range is reported
  2    usage or configuration error (unknown suite, benchmark, metric or alert)
  3    nothing to bisect: the bad end is not shown worse than the good end; or a repository
       error (unknown commit, --good not on the first-parent history of --bad)
  4    an end does not build    5  an end could not be measured (harness failed, CONTENDED)
  6    storage error    7  machine busy (--no-wait)    70  internal error    130  interrupted
"""


def _add_bisect_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    b = sub.add_parser("bisect", help="find the commit that made a benchmark worse, in "
                                      "lock-step pairs (exit 0 found, 1 only a range)",
                       epilog=BISECT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--suite", help="suite name or path to its YAML")
    b.add_argument("--good", metavar="REV", help="a commit where the benchmark is not worse")
    b.add_argument("--bad", metavar="REV", help="a later commit where it is worse")
    b.add_argument("--benchmark", help="the benchmark to bisect")
    b.add_argument("--metric", help="its metric (default: time)")
    b.add_argument("--alert", type=int, metavar="ID",
                   help="bisect this alert's range and record the result on it")
    b.add_argument("--threshold", type=float, metavar="PCT",
                   help="magnitude threshold in percent (default: the benchmark's threshold_pct)")
    b.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    b.add_argument("--min-pairs", type=int, default=5, help="pairs before the first decision (5)")
    b.add_argument("--max-pairs", type=int, default=20,
                   help="cap on the pairs of one comparison (20; an unknown answer gets twice)")
    b.add_argument("--max-steps", type=int, default=12, metavar="N",
                   help="most commits between the ends to measure (12)")
    b.add_argument("--repo", metavar="PATH|URL", help="repository to use instead of the suite's")
    b.add_argument("--seed", type=int, default=0, help="seed for pair order and bootstrap (0)")
    b.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    b.add_argument("--json", action="store_true", help="the same as --format json")
    b.add_argument("--output", type=Path, metavar="FILE", help="also write the report here")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="perfd",
        description="Performance-regression system for C code: measure, record, decide.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"perfd {__version__}")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="daemon file (default: $PERFD_CONFIG, else ./perfd.yaml if present)")
    parser.add_argument("--db", metavar="URL", help="SQLAlchemy URL of the store (overrides the config)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    parser.add_argument("--no-wait", action="store_true",
                        help="fail at once (exit 7) instead of waiting when another perfd "
                             "process is benchmarking on this machine")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("run", help="build a suite at a commit, run its benchmarks, store the results",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", required=True, help="suite name (in the suites dir) or path to its YAML")
    p.add_argument("--commit", required=True, help="commit id, branch or tag to measure")
    p.add_argument("--output", type=Path, metavar="DIR", help="write benchmark_data.json here")
    p.add_argument("--repo", metavar="PATH|URL", help="repository to use instead of the suite's")
    p.add_argument("--seed", type=int, help="seed for the order of processes within a round")
    p.add_argument("--json", action="store_true", help="print the run's statistics as JSON")
    p.add_argument("--tier", choices=["manual", "commit", "nightly", "weekly"], default="manual",
                   help="record the run as this tier and measure with the tier's sizes from the "
                        "suite's `tiers:` (manual: the suite's own sizes)")
    p.add_argument("--solo", action="store_true",
                   help="measure the commit alone even when the suite has a reference")
    p.add_argument("--branch", help="whose reference to pair with (default: the suite's first "
                                    "tracked branch)")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="measure again up to N times while the run comes out CONTENDED (2); "
                        "still contended after that: exit 5")
    p.add_argument("--retry-delay", type=float, default=5.0, metavar="S",
                   help="seconds to wait before each retry (5)")

    c = sub.add_parser("compare", help="decide whether a commit changed performance against another",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--suite", required=True, help="suite name or path to its YAML")
    c.add_argument("--baseline", required=True, metavar="REV", help="baseline commit/branch/tag")
    c.add_argument("--current", required=True, metavar="REV", help="commit to judge")
    mode = c.add_mutually_exclusive_group()
    mode.add_argument("--interleave", dest="interleave", action="store_true", default=None,
                      help="build both and run them now in randomised pairs (default when either "
                           "commit has no stored run)")
    mode.add_argument("--stored", dest="interleave", action="store_false",
                      help="only compare stored runs of both commits")
    c.add_argument("--min-pairs", type=int, default=5, help="pairs before the first decision (5)")
    c.add_argument("--max-pairs", type=int, default=20, help="cap on pairs per benchmark (20)")
    c.add_argument("--threshold", type=float, metavar="PCT",
                   help="magnitude threshold in percent (default: each benchmark's threshold_pct)")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    c.add_argument("--fdr", type=float, default=0.05, metavar="Q",
                   help="Benjamini-Hochberg false-discovery rate across benchmarks (0.05)")
    c.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    c.add_argument("--output", type=Path, metavar="FILE", help="also write the report here")
    c.add_argument("--repo", metavar="PATH|URL", help="repository to use instead of the suite's")
    c.add_argument("--seed", type=int, default=0, help="seed for pair order and bootstrap (0)")
    c.add_argument("--no-evidence", dest="evidence", action="store_false",
                   help="do not profile regressions (default: profile each one and write its "
                        "evidence bundle under <data_dir>/evidence or --evidence-dir)")
    c.add_argument("--evidence-dir", type=Path, metavar="DIR")
    c.add_argument("--profiler", choices=["auto", "perf", "harness"], default="auto",
                   help="perf record, the harness's own sampler, or perf when permitted (auto)")

    _add_gate_parser(sub)
    _add_bisect_parser(sub)

    ev = sub.add_parser("evidence", help="profile an alert's baseline and current commits and "
                                         "write its evidence bundle")
    ev.add_argument("alert_id", type=int)
    ev.add_argument("--output", type=Path, metavar="DIR",
                    help="bundle directory (default: <data_dir>/evidence/alert-<id>)")
    ev.add_argument("--profiler", choices=["auto", "perf", "harness"], default="auto")
    ev.add_argument("--repo", metavar="PATH|URL", help="repository to use instead of the suite's")

    an = sub.add_parser("analyze", help="change points and start-vs-end changes over a commit range",
                        description="Analyse the stored runs of a suite over BASE..HEAD on this "
                                    "machine: change points of each series,\nstart vs end, open "
                                    "alerts and next steps. Exit 1 when the range regressed.",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    an.add_argument("--suite", required=True, help="suite name or path to its YAML")
    an.add_argument("--range", required=True, metavar="BASE..HEAD", dest="range",
                    help="commits after BASE up to HEAD (BASE must be an ancestor of HEAD)")
    an.add_argument("--threshold", type=float, metavar="PCT",
                    help="magnitude threshold in percent (default: each benchmark's threshold_pct)")
    an.add_argument("--format", choices=["markdown", "json"], default="markdown",
                    help="report format (markdown)")
    an.add_argument("--output", type=Path, metavar="FILE", help="also write the report here")
    an.add_argument("--repo", metavar="PATH|URL", help="repository to use instead of the suite's")
    an.add_argument("--evidence", action="store_true",
                    help="profile both sides of each worse step and write evidence bundles "
                         "under <data_dir>/evidence")

    a = sub.add_parser("alert", help="evaluate the latest runs and manage regression alerts",
                       epilog=ALERT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--suite", help="only this suite (default: every suite with stored runs)")
    a.add_argument("--threshold", type=float, metavar="PCT",
                   help="magnitude threshold in percent (default: each benchmark's threshold_pct)")
    a.add_argument("--confidence", choices=["low", "medium", "high"], default="medium",
                   help="least confidence that opens an alert (medium)")
    a.add_argument("--alpha", type=float, default=0.05)
    a.add_argument("--json", action="store_true", help="print the decisions as JSON")
    a.add_argument("--no-evidence", dest="evidence", action="store_false",
                   help="do not profile newly opened alerts (default: collect their evidence)")
    a.add_argument("--no-confirm", dest="confirm", action="store_false",
                   help="open alerts from the stored runs alone (default: re-measure each step "
                        "as a lock-step A/B of its last good and first bad commit first)")
    a.add_argument("--max-pairs", type=int, default=20,
                   help="cap on the confirming A/B's pairs per benchmark (20)")
    a_sub = a.add_subparsers(dest="alert_command", metavar="ACTION", parser_class=_Parser)
    al = a_sub.add_parser("list", help="alerts, newest first (default: OPEN and ACKNOWLEDGED)")
    al.add_argument("--state", action="append",
                    choices=["OPEN", "ACKNOWLEDGED", "RESOLVED", "FALSE_POSITIVE", "INVALID",
                             "DOWNSTREAM"], help="repeatable; default OPEN and ACKNOWLEDGED")
    al.add_argument("--all", action="store_true", help="every state")
    al.add_argument("--suite", dest="list_suite")
    al.add_argument("--limit", type=int, default=50)
    al.add_argument("--json", dest="list_json", action="store_true")
    ashow = a_sub.add_parser("show", help="one alert and its history (who/when/why)")
    ashow.add_argument("alert_id", type=int)
    for name, needs_reason, help_text in (
        ("ack", False, "acknowledge: someone is looking at it"),
        ("resolve", False, "resolved: fixed or accepted"),
        ("false-positive", True, "it was noise, not a regression"),
        ("invalid", True, "the measurement itself was wrong (broken benchmark, bad machine)"),
        ("downstream", True, "caused by another alert (--of ID)"),
    ):
        ap = a_sub.add_parser(name, help=help_text)
        ap.add_argument("alert_id", type=int)
        ap.add_argument("--reason", required=needs_reason, default="")
        ap.add_argument("--by", default=None, help="who (default: $USER)")
        if name == "downstream":
            ap.add_argument("--of", dest="parent", type=int, required=True, metavar="ID")

    runs = sub.add_parser("runs", help="inspect stored runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", parser_class=_Parser)
    runs_sub.required = True
    rl = runs_sub.add_parser("list", help="newest runs first")
    rl.add_argument("--suite")
    rl.add_argument("--commit")
    rl.add_argument("--status", choices=["RUNNING", "COMPLETED", "CONTENDED", "FAILED"])
    rl.add_argument("--limit", type=int, default=20)
    rs = runs_sub.add_parser("show", help="one run: environment, statistics, error")
    rs.add_argument("run_id", type=int)
    rs.add_argument("--json", action="store_true")

    rf = sub.add_parser("reference", help="the build history runs are measured against, in "
                                          "lock-step pairs")
    rf_sub = rf.add_subparsers(dest="reference_command", metavar="ACTION", parser_class=_Parser)
    rf_sub.required = True
    rset = rf_sub.add_parser("set", help="pair the suite's runs with this commit from now on "
                                         "(recorded with who and why)")
    rset.add_argument("--suite", required=True)
    rset.add_argument("--commit", required=True, metavar="REV", help="tag, commit or branch")
    rset.add_argument("--reason", required=True, help="why this reference (e.g. release 1.4)")
    rset.add_argument("--branch", help="the tracked branch it is for (default: the suite's first)")
    rset.add_argument("--by", help="who (default: $USER)")
    rset.add_argument("--repo", metavar="PATH|URL", help="repository to use instead of the suite's")
    rset.add_argument("--no-link", dest="link", action="store_false",
                      help="do not measure the new reference against the previous one (runs "
                           "against the previous one then leave the ratio series)")
    rset.add_argument("--link-pairs", type=int, default=20, metavar="N",
                      help="lock-step pairs of the link run (default 20)")
    rset.add_argument("--seed", type=int)
    rset.add_argument("--json", action="store_true")
    rshow = rf_sub.add_parser("show", help="the suite's current reference")
    rshow.add_argument("--suite", required=True)
    rshow.add_argument("--branch")
    rshow.add_argument("--json", action="store_true")
    rlist = rf_sub.add_parser("list", help="every reference ever set, newest first")
    rlist.add_argument("--suite")
    rlist.add_argument("--json", action="store_true")

    bu = sub.add_parser("budgets", help="hold runs to budgets.yaml")
    bu_sub = bu.add_subparsers(dest="budgets_command", metavar="ACTION", parser_class=_Parser)
    bu_sub.required = True
    bc = bu_sub.add_parser(
        "check", help="evaluate the budgets of the latest completed run of each suite (or of "
                      "--run) on this machine; exit 1 when a block budget fails",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    bc.add_argument("--suite", help="only this suite")
    bc.add_argument("--run", type=int, metavar="ID", help="this run instead of the latest")
    bc.add_argument("--json", action="store_true")

    cc = sub.add_parser("check-config", help="validate suite, budgets and daemon YAML files")
    cc.add_argument("paths", nargs="*", type=Path,
                    help="files or directories (default: the configured suites dir and budgets)")

    sc = sub.add_parser("schema", help="print the JSON Schema of a config file kind (for editors)")
    sc.add_argument("kind", choices=["suite", "budgets", "daemon"])

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    db_sub.required = True
    db_sub.add_parser("upgrade", help="apply pending schema migrations")
    db_sub.add_parser("version", help="print the schema version of the database")

    dm = sub.add_parser("daemon", help="the service: scheduled tiers, job queue, HTTP API, "
                                       "/metrics (see docs/install.md)")
    dm.add_argument("--stop-timeout", type=float, default=30.0, metavar="S",
                    help="on SIGTERM, seconds the job in hand gets to finish before it is put "
                         "back in the queue (default 30)")

    eq = sub.add_parser("enqueue", help="queue a job for the daemon of this machine")
    eq.add_argument("--suite", required=True)
    eq.add_argument("--commit", required=True, metavar="REV", help="commit id, branch or tag")
    eq.add_argument("--tier", default="commit", choices=["commit", "nightly", "weekly"])
    eq.add_argument("--branch", help="the tracked branch it is on (default: the suite's first)")
    eq.add_argument("--json", action="store_true")

    jb = sub.add_parser("jobs", help="the daemon's job queue")
    jb_sub = jb.add_subparsers(dest="jobs_command", metavar="ACTION", parser_class=_Parser)
    jb_sub.required = True
    jl = jb_sub.add_parser("list", help="jobs newest first")
    jl.add_argument("--state", action="append", choices=list(JOB_STATES))
    jl.add_argument("--suite")
    jl.add_argument("--limit", type=int, default=30)
    jl.add_argument("--all-machines", action="store_true")
    jl.add_argument("--json", action="store_true")
    js = jb_sub.add_parser("show", help="one job")
    js.add_argument("job_id", type=int)
    js.add_argument("--json", action="store_true")
    jc = jb_sub.add_parser("cancel", help="cancel a queued or running job")
    jc.add_argument("job_id", type=int)
    jc.add_argument("--reason", default="")
    jc.add_argument("--by", help="who (default: $USER)")

    h = sub.add_parser("harness", help="where the C harness is, for building benchmarks")
    group = h.add_mutually_exclusive_group(required=True)
    group.add_argument("--path", action="store_true", help="directory with perfd_harness.{h,c}")
    group.add_argument("--cflags", action="store_true", help="compiler flags for a benchmark")
    group.add_argument("--sources", action="store_true", help="the harness C file to compile in")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `perfd`; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        from perfd import commands

        return commands.dispatch(args)
    except PerfdError as exc:
        print(f"perfd: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("perfd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `perfd runs list | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into a status
        import traceback

        traceback.print_exc()
        print(f"perfd: internal error: {exc!r} (please report this)", file=sys.stderr)
        return EXIT_INTERNAL


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))
