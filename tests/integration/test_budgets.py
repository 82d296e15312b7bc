"""Budgets are evaluated: after every run, stored with it, shown by `run` and `runs show`, and
`perfd budgets check` exits 1 when a block budget fails."""

from __future__ import annotations

import json

import pytest

from perfd.errors import EXIT_NEGATIVE

BUDGETS = """version: 1
budgets:
  - suite: fake
    benchmark: "fake/*"
    metric: time
    max_value: 0.2us
    max_regression_pct: 5
    owner: team-fake
  - suite: fake
    benchmark: fake/two
    metric: throughput
    max_value: 9000k/s
    action: warn
"""


@pytest.fixture
def budgeted(workspace, cli, monkeypatch, tmp_path):
    path = workspace.suite()
    path.write_text(path.read_text().replace("repetitions: 3", "repetitions: 8"))
    (workspace.path / "budgets.yaml").write_text(BUDGETS)
    monkeypatch.setenv("FAKE_HARNESS_COUNTER", str(tmp_path / "counter"))
    monkeypatch.setenv("FAKE_HARNESS_JITTER", "0.3")

    def run(commit_index: int, offset: float, *extra: str):
        monkeypatch.setenv("FAKE_HARNESS_OFFSET", str(offset))
        return cli("run", "--suite", "fake", "--commit", workspace.commits[commit_index], *extra)

    return run


def test_each_run_is_held_to_its_budgets_and_the_verdicts_are_stored(budgeted, cli, workspace):
    code, out, err = budgeted(0, 0.0)
    assert code == 0, err  # a broken budget is shown; `budgets check` is the gate
    # fake samples are ~101.5 ns/op: within 200 ns; throughput ~9.85M/s: above the 9M/s floor
    assert "budget" in out and "team-fake" in out
    rows = workspace.rows("SELECT benchmark, metric, status, confidence FROM budget_results "
                          "ORDER BY budget_index, benchmark")
    assert rows == [("fake/one", "time", "PASS", None), ("fake/two", "time", "PASS", None),
                    ("fake/two", "throughput", "PASS", None)]
    code, out, err = budgeted(1, 110.0, "--json")  # ~211.5 ns/op: +108%, beyond 200 ns
    assert code == 0, err
    budgets = {(b["benchmark"], b["metric"]): b for b in json.loads(out)["budgets"]}
    one = budgets[("fake/one", "time")]
    assert one["status"] == "FAIL" and one["confidence"] == "HIGH"
    assert one["change_pct"] == pytest.approx(108, abs=2) and one["baseline_run_id"] == 1
    assert "is above the limit 200" in one["reason"] and "regressed" in one["reason"]
    assert budgets[("fake/two", "throughput")]["status"] == "WARN"  # ~4.7M/s < 9M/s floor
    code, out, _ = cli("runs", "show", "2")
    assert "FAIL: fake/one time: median 21" in out and "is above the limit 200 (+" in out


def test_budgets_check_exits_1_on_a_failed_block_budget_and_0_on_warnings(budgeted, cli,
                                                                          workspace):
    budgeted(0, 0.0)
    code, out, _ = cli("budgets", "check")
    assert code == 0 and "run 1: suite fake" in out and "0 failed, 0 warned of 3" in out
    budgeted(1, 110.0)
    code, out, _ = cli("budgets", "check")
    assert code == EXIT_NEGATIVE and "run 2: suite fake" in out and "2 failed, 1 warned" in out
    code, out, _ = cli("budgets", "check", "--run", "1", "--json")
    assert code == 0 and json.loads(out)[0]["run_id"] == 1
    # only warn budgets broken: the check passes
    lenient = BUDGETS.replace("max_value: 0.2us\n    max_regression_pct: 5\n", "max_value: 1ms\n")
    (workspace.path / "budgets.yaml").write_text(lenient)
    code, out, _ = cli("budgets", "check")
    assert code == 0 and "0 failed, 1 warned" in out
