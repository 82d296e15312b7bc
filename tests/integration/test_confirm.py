"""Confirm before paging: a step seen in stored runs is re-measured as a lock-step A/B of its
last good and first bad commit; the alert opens with the A/B's numbers, or is recorded as a
false positive when the A/B refutes it."""

from __future__ import annotations

import json

import pytest

from perfd.errors import EXIT_NEGATIVE

COPY_VERSION = '    - argv: [cp, "${PERFD_WORKTREE}/version.txt", "${PERFD_BUILD_DIR}/version.txt"]\n'


@pytest.fixture
def history(workspace, cli, monkeypatch, tmp_path):
    path = workspace.suite(extra_steps=COPY_VERSION)
    path.write_text(path.read_text().replace("repetitions: 3", "repetitions: 8"))
    monkeypatch.setenv("FAKE_HARNESS_COUNTER", str(tmp_path / "counter"))
    monkeypatch.setenv("FAKE_HARNESS_JITTER", "0.3")

    def run(commit_index: int, seed: int) -> None:
        monkeypatch.setenv("FAKE_HARNESS_SEED", str(seed))
        code, _, err = cli("run", "--suite", "fake", "--commit", workspace.commits[commit_index])
        assert code == 0, err

    return run


def test_a_real_step_is_confirmed_and_the_alert_carries_the_ab(history, cli, monkeypatch):
    monkeypatch.setenv("FAKE_HARNESS_OFFSET_BY_VERSION", "0:0,1:10")  # commit 2 is +10%
    history(0, seed=1)
    history(1, seed=2)
    code, out, err = cli("alert", "--no-evidence", "--json")
    assert code == EXIT_NEGATIVE, err
    assert "in interleaved pairs" in err  # the A/B ran
    actions = {(d["benchmark"], d["metric"]): d["action"] for d in json.loads(out)}
    assert set(actions.values()) == {"opened"}
    opened = json.loads(cli("alert", "list", "--json")[1])
    one = next(a for a in opened if a["benchmark"] == "fake/one")
    assert one["reason"].startswith("confirmed by a lock-step A/B of ")
    assert "pairs)" in one["reason"] and 8 < one["change_pct"] < 12
    assert one["confidence"] in ("MEDIUM", "HIGH")
    runs = json.loads(cli("runs", "show", "3", "--json")[1])
    assert runs["tier"] == "compare"  # the A/B's sides are stored, outside history


def test_a_step_the_ab_refutes_is_recorded_and_not_asked_again(history, cli, monkeypatch, workspace):
    history(0, seed=1)
    monkeypatch.setenv("FAKE_HARNESS_OFFSET", "10")  # one slow run, the code is the same
    history(1, seed=2)
    monkeypatch.delenv("FAKE_HARNESS_OFFSET")
    code, out, err = cli("alert", "--no-evidence", "--json")
    assert code == 0, err
    decisions = json.loads(out)
    assert {d["action"] for d in decisions} == {"refuted"}
    assert cli("alert", "list", "--json")[1].strip() == "[]"
    recorded = json.loads(cli("alert", "list", "--all", "--json")[1])
    assert {a["state"] for a in recorded} == {"FALSE_POSITIVE"}
    assert all(a["reason"].startswith("refuted by a lock-step A/B") for a in recorded)
    code, out, _ = cli("alert", "show", str(recorded[0]["id"]))
    assert "OPEN -> FALSE_POSITIVE" in out and "by perfd: the lock-step A/B shows no regression" in out
    runs_before = workspace.count("benchmark_runs")
    code, out, _ = cli("alert", "--no-evidence", "--json")  # same runs: no second A/B
    assert code == 0 and {d["action"] for d in json.loads(out)} == {"kept"}
    assert workspace.count("benchmark_runs") == runs_before


def test_no_confirm_keeps_paging_on_the_stored_runs(history, cli, monkeypatch, workspace):
    history(0, seed=1)
    monkeypatch.setenv("FAKE_HARNESS_OFFSET", "10")
    history(1, seed=2)
    code, out, _ = cli("alert", "--no-evidence", "--no-confirm", "--json")
    assert code == EXIT_NEGATIVE
    assert {d["action"] for d in json.loads(out)} == {"opened"}
    assert workspace.count("benchmark_runs") == 2  # nothing re-measured
