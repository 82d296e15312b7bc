"""`perfd gate` end to end: the real example project in an 8-commit repository (see
gate_scenario.py: commit 5 slows request/parse by 15%, commit 3 does not build, commit 6
carries a Perf-Override trailer), and the fake harness for contention and overrides.

The real-code tests share one workspace (builds are cached between them) and pass
``--retries`` generously: other tests may share the machine's CPUs, and a gate measures again
while its runs come out CONTENDED instead of judging them.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from perfd.store import ResultStore
from tests.conftest import git
from tests.integration.gate_scenario import OVERRIDE_REASON, GateScenario, make_scenario

# Patient with a shared machine; quick on a quiet one (two builds and 10-20 pairs).
MEASURE = ("--max-pairs", "20", "--retries", "4", "--retry-delay", "2")


@pytest.fixture(autouse=True)
def no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never append to the step summary of a CI that runs these tests."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> GateScenario:
    return make_scenario(tmp_path_factory.mktemp("gate"))


def gate(cli, scenario: GateScenario, out: Path, *args: str) -> tuple[int, dict, str]:
    """Run `perfd gate` with every output in ``out``; returns (exit code, JSON verdict,
    stderr)."""
    code, stdout, err = cli("--config", str(scenario.config), "gate", "--suite", "example",
                            "--summary", str(out / "summary.md"), "--comment",
                            str(out / "comment.md"), "--junit", str(out / "junit.xml"),
                            "--json", *args)
    return code, (json.loads(stdout) if stdout.strip() else {}), err


def store_of(scenario: GateScenario) -> ResultStore:
    return ResultStore.open(f"sqlite:///{scenario.config.parent / 'state' / 'perfd.db'}")


@pytest.mark.slow
def test_a_15pct_parse_slowdown_is_blocked_against_the_merge_base(cli, scenario, tmp_path):
    code, doc, err = gate(cli, scenario, tmp_path, "--current", scenario.shas[5], *MEASURE)
    assert code == 1, err
    assert doc["verdict"] == "BLOCKED" and doc["exit_code"] == 1
    # the default baseline is the merge base with main (commit 4), not the parent
    assert doc["baseline"]["commit"] == scenario.shas[4]
    assert (doc["baseline"]["source"], doc["baseline"]["target_branch"]) == ("merge-base", "main")
    rows = {(b["benchmark"], b["metric"]): b for b in doc["benchmarks"]}
    parse = rows[("request/parse", "time")]
    assert parse["blocking"] and parse["confidence"] == "HIGH" and parse["change_pct"] > 8
    assert not rows[("compute/crc32", "time")]["blocking"]
    assert {(b["kind"], b["benchmark"]) for b in doc["blockers"]} >= {("regression",
                                                                        "request/parse")}
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## :no_entry: perfd gate: BLOCKED")
    assert "| request/parse | time |" in summary and "BLOCKING" in summary
    grown = [f["function"] for e in doc["evidence"] for f in e["grown_functions"]]
    if doc["evidence"]:  # the profile was captured: the summary names the function
        assert "minilib_parse_request" in grown
        assert "minilib_parse_request" in summary
    comment = (tmp_path / "comment.md").read_text()
    assert comment.startswith("<!-- perfd-gate:example -->\n")
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    failing = {c.get("classname") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert "example.request/parse" in failing
    (stored,) = store_of(scenario).gate_verdicts(current_commit=scenario.shas[5])
    assert (stored.verdict, stored.overridden, stored.baseline_commit) == (
        "BLOCKED", False, scenario.shas[4])
    assert stored.summary["schema"] == "perfd-gate/1"


@pytest.mark.slow
def test_an_unchanged_change_passes_and_a_warn_budget_shows(cli, scenario, tmp_path):
    code, doc, err = gate(cli, scenario, tmp_path, "--current", scenario.shas[4],
                          "--baseline", scenario.shas[2], *MEASURE)
    assert code == 0, err
    assert doc["verdict"] == "PASS" and not doc["blockers"]
    assert doc["baseline"]["source"] == "flag"
    statuses = {(b["benchmark"], b["statistic"]): b["status"] for b in doc["budgets"]}
    assert statuses[("request/parse", "p99")] == "WARN"
    assert "FAIL" not in statuses.values()
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## :white_check_mark: perfd gate: PASS")
    assert "**WARN** `request/parse`" in summary and "warn budget(s) broken" in summary
    # the budgets are stored with the gate's current run, as perfd runs show reads them
    with store_of(scenario).reading() as r:
        stored = r.budget_results(doc["current"]["run_id"])
    assert {b.status for b in stored} >= {"WARN"}


@pytest.mark.slow
def test_an_override_trailer_passes_and_is_recorded(cli, scenario, tmp_path):
    code, doc, err = gate(cli, scenario, tmp_path, "--current", scenario.shas[6], *MEASURE)
    assert code == 0, err
    assert (doc["verdict"], doc["overridden"]) == ("PASS", True)
    assert doc["override"] == {"reason": OVERRIDE_REASON, "source": "trailer", "applied": True}
    assert doc["blockers"]  # what was accepted stays on record
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## :white_check_mark: perfd gate: PASS (overridden)")
    assert f"accepted by the Perf-Override trailer: {OVERRIDE_REASON}" in summary
    (stored,) = store_of(scenario).gate_verdicts(current_commit=scenario.shas[6])
    assert (stored.verdict, stored.overridden, stored.override_source,
            stored.override_reason) == ("PASS", True, "trailer", OVERRIDE_REASON)


@pytest.mark.slow
def test_a_baseline_that_does_not_build_could_not_be_measured(cli, scenario, tmp_path):
    code, doc, err = gate(cli, scenario, tmp_path, "--current", scenario.shas[4],
                          "--baseline", scenario.shas[3], *MEASURE)
    assert code == 3, err
    assert doc["verdict"] == "ERROR" and doc["exit_code"] == 3
    assert doc["reason"].startswith(f"could not measure: the baseline {scenario.shas[3][:12]} "
                                    "(crc32: unfinished rewrite) does not build")
    assert doc["benchmarks"] == [] and doc["current"]["run_id"] is None
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.get("errors") == "1"
    assert (tmp_path / "summary.md").read_text().startswith("## :warning: perfd gate: ERROR")
    verdicts = store_of(scenario).gate_verdicts(current_commit=scenario.shas[4])
    assert [v.verdict for v in verdicts if v.baseline_commit == scenario.shas[3]] == ["ERROR"]


@pytest.mark.parametrize("args, message", [
    (("--current", "HEAD", "--require-confidence", "sure"), "invalid choice"),
    (("--current", "HEAD", "--min-pairs", "8", "--max-pairs", "4"), "--min-pairs <= --max-pairs"),
    (("--current", "HEAD", "--override", "  "), "--override needs a reason"),
    (("--current", "HEAD", "--retries", "-1"), "--retries"),
    (("--baseline", "HEAD"), "required: --current"),
    (("--current", "HEAD", "--target-branch", "release"), "target branch 'release' does not "
                                                          "exist"),
    (("--current", "main"), "is already on main"),
    (("--current", "HEAD", "--baseline", "HEAD"), "is the current commit"),
])
def test_bad_arguments_and_missing_baselines_are_configuration_errors(cli, scenario, tmp_path,
                                                                      args, message):
    code, out, err = cli("--config", str(scenario.config), "gate", "--suite", "example",
                         "--summary", str(tmp_path / "summary.md"), *args)
    assert code == 2, err
    assert message in err
    assert not (tmp_path / "summary.md").exists()


def test_an_unknown_suite_is_a_configuration_error(cli, scenario):
    code, _, err = cli("--config", str(scenario.config), "gate", "--suite", "nope",
                       "--current", "HEAD")
    assert code == 2 and "nope" in err


# ------------------------------------------------------------- the fake harness: fast paths

COPY_VERSION = '    - argv: [cp, "${PERFD_WORKTREE}/version.txt", "${PERFD_BUILD_DIR}/version.txt"]\n'


@pytest.fixture
def fake(workspace, monkeypatch, tmp_path):
    """The fake suite over a repo whose main is its first commit; commit 2 is 30% slower."""
    workspace.suite(extra_steps=COPY_VERSION)
    git(workspace.repo_path, "checkout", "-q", "-b", "feature")  # the change's own branch
    git(workspace.repo_path, "update-ref", "refs/heads/main", workspace.commits[0])
    monkeypatch.setenv("FAKE_HARNESS_OFFSET_BY_VERSION", "0:0,1:30")
    monkeypatch.setenv("FAKE_HARNESS_COUNTER", str(tmp_path / "counter"))
    monkeypatch.setenv("FAKE_HARNESS_JITTER", "0.3")
    return workspace


def test_a_machine_contended_past_the_retries_could_not_measure(fake, cli, monkeypatch,
                                                                 tmp_path):
    monkeypatch.setenv("FAKE_HARNESS_CONTENDED", "100000")  # every process shares its CPU
    monkeypatch.setenv("FAKE_HARNESS_CONTENDED_COUNTER", str(tmp_path / "contended"))
    code, out, err = cli("gate", "--suite", "fake", "--current", fake.commits[1], "--json",
                         "--no-evidence", "--retries", "1", "--retry-delay", "0",
                         "--junit", str(tmp_path / "junit.xml"))
    assert code == 3, err
    doc = json.loads(out)
    assert doc["verdict"] == "ERROR" and doc["attempts"] == 2
    assert doc["reason"].startswith("could not measure: the machine stayed contended in all "
                                    "2 attempt(s)")
    assert "is CONTENDED" in err  # the retry was announced
    assert doc["benchmarks"]  # the last attempt is shown, not judged
    assert not any(b["blocking"] for b in doc["benchmarks"])
    assert ET.parse(tmp_path / "junit.xml").getroot().get("errors") == "1"
    assert fake.count("gate_verdicts", "WHERE verdict = 'ERROR'") == 1


def test_the_override_flag_wins_over_a_trailer_and_is_recorded(fake, cli, tmp_path):
    repo = fake.repo_path
    (repo / "version.txt").write_text("1\n")  # same code as commit 2: still 30% slower
    (repo / "notes.txt").write_text("why\n")
    git(repo, "add", ".")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m",
        "notes\n\nPerf-Override: from the trailer")
    head = git(repo, "rev-parse", "HEAD")
    code, out, err = cli("gate", "--suite", "fake", "--current", head, "--json",
                         "--no-evidence", "--retries", "0")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["override"] == {"reason": "from the trailer", "source": "trailer",
                               "applied": True}
    code, out, err = cli("gate", "--suite", "fake", "--current", head, "--json",
                         "--no-evidence", "--retries", "0", "--override", "label perf-override",
                         "--comment", str(tmp_path / "comment.md"), "--comment-only-on-change")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["override"]["source"] == "flag" and doc["overridden"]
    assert (tmp_path / "comment.md").read_text().startswith("<!-- perfd-gate:fake -->")
    rows = fake.rows("SELECT verdict, overridden, override_source, override_reason "
                     "FROM gate_verdicts ORDER BY id")
    assert rows == [("PASS", 1, "trailer", "from the trailer"),
                    ("PASS", 1, "flag", "label perf-override")]
    # without an override the same change blocks
    code, out, err = cli("gate", "--suite", "fake", "--current", fake.commits[1], "--json",
                         "--no-evidence", "--retries", "0")
    assert code == 1, err
    assert {b["benchmark"] for b in json.loads(out)["blockers"]} >= {"fake/one"}


def test_no_comment_is_written_when_nothing_changed(fake, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_HARNESS_OFFSET_BY_VERSION", "0:0,1:0")  # the same speed
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    code, _, err = cli("gate", "--suite", "fake", "--current", fake.commits[1], "--no-evidence",
                       "--retries", "0", "--comment", str(tmp_path / "comment.md"),
                       "--comment-only-on-change")
    assert code == 0, err
    assert not (tmp_path / "comment.md").exists()
    assert "no PR comment written" in err
    text = step_summary.read_text()
    assert text.startswith("earlier step\n## :white_check_mark: perfd gate: PASS")
