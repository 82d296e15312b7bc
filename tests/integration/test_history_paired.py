"""Reference-paired history over a real 12-commit repository: a one-run excursion is two
steps, a small step alerts at its commit against the pooled stable runs before it, moving the
reference keeps the series continuous through the measured link, and a budget can be held
against the reference.

The fake harness adds $FAKE_HARNESS_OFFSET_BY_VERSION's ns to the build of each version.txt
(commit i has version i), so a test chooses each commit's level; the reference (commit 0)
gets none.
"""

from __future__ import annotations

import json
import sys

import pytest

from perfd.errors import EXIT_NEGATIVE, EXIT_OK
from tests.conftest import git
from tests.integration.conftest import FAKE
from tests.integration.test_confirm import COPY_VERSION

SUITE = """\
name: paired
repository: {repo}
build:
  steps:
    - argv: [cp, "{fake}", "${{PERFD_BUILD_DIR}}/bench"]
{copy}harness:
  binary: "{python}"
  args: ["-S", "${{PERFD_BUILD_DIR}}/bench"]
defaults:
  warmup: 0
  samples: 3
  min_time_s: 0.001
  repetitions: {repetitions}
  timeout_s: 10
  threshold_pct: {threshold}
benchmarks:
  - name: fake/one
"""
N_COMMITS = 12


@pytest.fixture
def history(workspace, cli, monkeypatch, tmp_path):
    repo = workspace.repo_path
    shas = list(workspace.commits)
    for i in range(len(shas), N_COMMITS):
        (repo / "version.txt").write_text(f"{i}\n")
        git(repo, "commit", "-q", "-a", "-m", f"commit {i}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    monkeypatch.setenv("FAKE_HARNESS_JITTER", "0.2")
    monkeypatch.setenv("FAKE_HARNESS_SEED", "3")
    monkeypatch.setenv("FAKE_HARNESS_COUNTER", str(tmp_path / "processes"))

    class History:
        commits = shas
        short = [sha[:12] for sha in shas]

        def suite(self, threshold: float, repetitions: int = 5) -> None:
            (workspace.path / "suites" / "paired.yaml").write_text(SUITE.format(
                repo=repo, fake=FAKE, python=sys.executable, copy=COPY_VERSION,
                threshold=threshold, repetitions=repetitions))
            code, _, err = cli("-q", "reference", "set", "--suite", "paired", "--commit",
                               shas[0], "--reason", "release 1.0", "--by", "test")
            assert code == EXIT_OK, err

        def levels(self, offsets: dict[int, float]) -> None:
            monkeypatch.setenv("FAKE_HARNESS_OFFSET_BY_VERSION",
                               ",".join(f"{i}:{v:g}" for i, v in offsets.items()) or "0:0")

        def run(self, *indexes: int) -> None:
            for i in indexes:
                code, _, err = cli("-q", "run", "--suite", "paired", "--commit", shas[i])
                assert code == EXIT_OK, err

        def alert(self) -> tuple[int, list[dict]]:
            code, out, _ = cli("-q", "alert", "--no-evidence", "--no-confirm", "--json")
            return code, json.loads(out)

    return History()


def test_a_one_run_excursion_is_two_steps_at_its_commits(history, cli):
    history.suite(threshold=5)
    history.levels({6: 20.0})  # commit 6 is ~20% slower, commit 7 reverts it
    history.run(*range(N_COMMITS))
    code, out, err = cli("-q", "analyze", "--suite", "paired", "--range",
                         f"{history.commits[0]}..{history.commits[-1]}", "--format", "json")
    assert code == EXIT_NEGATIVE, err
    (series,) = [s for s in json.loads(out)["series"] if s["metric"] == "time"]
    assert series["unit"] == "x ref" and series["against"].startswith("against the reference ")
    steps = [(s["before"]["commit"], s["after"]["commit"], s["direction"], s["excursion"],
              s["beyond_threshold"]) for s in series["change_points"]]
    c = history.commits
    assert steps == [(c[5], c[6], "worse", True, True), (c[6], c[7], "better", True, True)]
    code, out, _ = cli("-q", "analyze", "--suite", "paired", "--range", f"{c[0]}..{c[-1]}")
    assert "(a one-run excursion: in and out again)" in out


def test_a_small_step_alerts_at_its_commit_against_the_pooled_baseline(history):
    history.suite(threshold=0.5)
    history.levels({i: 1.0 for i in range(6, N_COMMITS)})  # +1% from commit 6 on
    history.run(*range(6))
    code, decisions = history.alert()
    assert code == EXIT_OK and {d["action"] for d in decisions} == {"quiet"}
    history.run(6)
    code, decisions = history.alert()
    assert code == EXIT_NEGATIVE
    (opened,) = [d for d in decisions if d["action"] == "opened"]
    assert opened["note"].startswith("against the reference ")
    assert opened["comparison"]["n_baseline"] == 25  # five runs' pairs, not one run's
    history.run(7)
    code, decisions = history.alert()
    assert [d["action"] for d in decisions] == ["updated"]


def test_moving_the_reference_links_the_series_across_it(history, cli, workspace):
    history.suite(threshold=5)
    history.levels({i: 10.0 for i in range(3, N_COMMITS)})  # commit 3 on: ~10% slower
    history.run(0, 1, 2, 3)
    code, out, err = cli("-q", "reference", "set", "--suite", "paired", "--commit",
                         history.commits[3], "--reason", "release 1.1", "--by", "test",
                         "--link-pairs", "8", "--json")
    assert code == EXIT_OK, err
    moved = json.loads(out)
    (link,) = [x for x in moved["links"] if x["metric"] == "time"]
    assert link["pairs"] == 8 and link["factor"] == pytest.approx(111.0 / 101.0, rel=0.01)
    assert link["ci"][0] <= link["factor"] <= link["ci"][1]
    assert moved["previous"]["commit"] == history.commits[0]
    history.run(4, 5, 6)
    # one series across both references: commits 0-2 carried over to ~0.91 of release 1.1
    code, out, err = cli("-q", "analyze", "--suite", "paired", "--range",
                         f"{history.commits[0]}..{history.commits[6]}", "--format", "json")
    (series,) = [s for s in json.loads(out)["series"] if s["metric"] == "time"]
    assert series["runs"] == 7 and "re-anchored at " in series["against"]
    assert series["start_median"] == pytest.approx(101.0 / 111.0, rel=0.01)
    assert series["end_median"] == pytest.approx(1.0, rel=0.01)
    # the code got slower at commit 3, not at the move: the alert says so, across both
    code, decisions = history.alert()
    assert code == EXIT_NEGATIVE
    (opened,) = [d for d in decisions if d["action"] == "opened" and d["metric"] == "time"]
    assert opened["comparison"]["change_pct"] == pytest.approx(100 * 10 / 101, abs=1.5)
    (alert,) = [a for a in json.loads(cli("alert", "list", "--json")[1]) if a["metric"] == "time"]
    assert alert["first_bad_commit"] == history.commits[3]
    assert workspace.count("reference_links") == 1


def test_a_move_without_a_link_leaves_earlier_runs_out(history, cli):
    history.suite(threshold=5)
    history.run(0, 1)
    code, out, err = cli("-q", "reference", "set", "--suite", "paired", "--commit",
                         history.commits[1], "--reason", "release 1.1", "--no-link")
    assert code == EXIT_OK and "not linked to the previous reference" in out, err
    history.run(2)
    code, decisions = history.alert()
    assert {d["action"] for d in decisions} == {"skipped"}  # one run against release 1.1


def test_a_budget_holds_a_run_to_the_reference(history, cli, workspace):
    history.suite(threshold=5, repetitions=8)  # 5 pairs cannot reach p < 0.05: NO_DATA
    (workspace.path / "budgets.yaml").write_text(
        "version: 1\nbudgets:\n  - suite: paired\n    benchmark: fake/one\n    metric: time\n"
        "    max_regression_pct: 5\n    against: reference\n")
    history.levels({1: 10.0})
    history.run(1)
    code, out, _ = cli("budgets", "check", "--suite", "paired", "--json")
    assert code == EXIT_NEGATIVE
    (result,) = json.loads(out)[0]["budgets"]
    assert result["status"] == "FAIL" and "against the reference" in result["reason"]
    assert result["limit"] == "+5% vs reference"
    assert result["change_pct"] == pytest.approx(100 * 10 / 101, abs=1.0)
    code, out, _ = cli("-q", "run", "--suite", "paired", "--commit", history.commits[2], "--solo")
    code, out, _ = cli("budgets", "check", "--suite", "paired", "--json")
    (result,) = json.loads(out)[0]["budgets"]
    assert result["status"] == "NO_DATA" and "not paired with a reference" in result["reason"]
