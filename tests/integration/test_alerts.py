"""`perfd alert`: open on a real regression, stay quiet on A/A and noise, update, auto-resolve,
and every state change stored with who/when/why."""

from __future__ import annotations

import json
import re

import pytest

from perfd.errors import EXIT_CONFIG, EXIT_NEGATIVE


@pytest.fixture
def alerting(workspace, cli, monkeypatch, tmp_path):
    path = workspace.suite()
    path.write_text(path.read_text().replace("repetitions: 3", "repetitions: 8"))
    monkeypatch.setenv("FAKE_HARNESS_COUNTER", str(tmp_path / "counter"))

    def run(commit_index: int, offset: float, jitter: float = 0.3, seed: int = 1) -> None:
        monkeypatch.setenv("FAKE_HARNESS_OFFSET", str(offset))
        monkeypatch.setenv("FAKE_HARNESS_JITTER", str(jitter))
        monkeypatch.setenv("FAKE_HARNESS_SEED", str(seed))
        code, _, err = cli("run", "--suite", "fake", "--commit", workspace.commits[commit_index])
        assert code == 0, err

    return run


def alerts(cli, *extra):
    code, out, _ = cli("alert", "list", "--json", *extra)
    assert code == 0
    return json.loads(out)


def test_a_ten_percent_regression_opens_alerts_that_update_then_resolve(alerting, cli):
    alerting(0, 0.0, seed=1)
    alerting(1, 10.0, seed=2)  # ~ +10% on every benchmark
    code, out, _ = cli("alert", "--no-evidence", "--no-confirm")
    assert code == EXIT_NEGATIVE
    opened = alerts(cli)
    assert {(a["benchmark"], a["metric"]) for a in opened} == {
        ("fake/one", "time"), ("fake/two", "time"), ("fake/two", "throughput")}
    one = next(a for a in opened if a["benchmark"] == "fake/one")
    assert one["state"] == "OPEN" and one["confidence"] in ("MEDIUM", "HIGH")
    assert 8 < one["change_pct"] < 12
    assert one["runs_seen"] == 1

    alerting(1, 10.0, seed=3)  # still slow: the same alerts are updated, not duplicated
    assert cli("alert", "--no-evidence", "--no-confirm")[0] == EXIT_NEGATIVE
    again = alerts(cli)
    assert sorted(a["id"] for a in again) == sorted(a["id"] for a in opened)
    assert all(a["runs_seen"] == 2 for a in again)

    alerting(1, 0.0, seed=4)  # fixed: back within threshold -> resolved by perfd
    code, out, _ = cli("alert", "--no-evidence", "--no-confirm")
    assert code == 0, out
    assert alerts(cli) == []
    code, out, _ = cli("alert", "show", str(one["id"]))
    assert "RESOLVED" in out and "by perfd: run" in out
    # within the threshold (5%) or half the alert's change, whichever is larger
    assert re.search(r"back within (5|5\.\d)% \(worst case [+-]\d", out), out


def test_a_run_too_noisy_to_show_the_fix_keeps_the_alert_open(alerting, cli):
    alerting(0, 0.0, seed=1)
    alerting(1, 10.0, seed=2)
    assert cli("alert", "--no-evidence", "--no-confirm")[0] == EXIT_NEGATIVE
    (one,) = [a for a in alerts(cli) if a["benchmark"] == "fake/one" and a["metric"] == "time"]
    alerting(1, 0.0, jitter=15.0, seed=5)  # maybe fixed, but the run cannot tell
    code, out, _ = cli("alert", "--no-evidence", "--no-confirm", "--json")
    decisions = {(d["benchmark"], d["metric"]): d for d in json.loads(out)}
    kept = decisions[("fake/one", "time")]
    assert kept["action"] == "kept" and "not shown back yet" in kept["note"], kept
    assert [a["id"] for a in alerts(cli) if a["benchmark"] == "fake/one"
            and a["metric"] == "time"] == [one["id"]]
    alerting(1, 0.0, seed=6)  # a clean run shows it: resolved
    assert cli("alert", "--no-evidence", "--no-confirm")[0] == 0
    assert alerts(cli) == []


def test_a_shift_of_every_benchmark_at_once_is_one_infrastructure_alert(alerting, cli, workspace,
                                                                      monkeypatch):
    # five benchmarks all ~10% slower together: the machine changed, not the code
    monkeypatch.setenv("FAKE_HARNESS_NAMES", "fake/one,fake/two,fake/three,fake/four,fake/five")
    path = workspace.path / "suites" / "fake.yaml"  # as the alerting fixture wrote it
    path.write_text(path.read_text().replace(
        "  - name: fake/one\n", "".join(f"  - name: fake/{n}\n"
                                        for n in ("one", "three", "four", "five"))))
    alerting(0, 0.0, seed=1)
    alerting(1, 10.0, seed=2)
    code, out, _ = cli("alert", "--no-evidence", "--no-confirm", "--json")
    (infra,) = [d for d in json.loads(out) if d["action"] == "opened"]
    assert infra["benchmark"] == "" and infra["metric"] == "*"
    (alert,) = alerts(cli)
    assert alert["kind"] == "infrastructure" and alert["state"] == "OPEN"
    assert "environment" in alert["reason"] or "together" in alert["reason"], alert["reason"]
    alerting(1, 10.0, seed=3)  # still shifted: the same alert is updated
    assert cli("alert", "--no-evidence", "--no-confirm")[0] == EXIT_NEGATIVE
    assert [a["id"] for a in alerts(cli)] == [alert["id"]]


def test_identical_builds_open_no_alert(alerting, cli):
    alerting(0, 0.0, seed=1)
    alerting(1, 0.0, seed=2)
    code, out, _ = cli("alert", "--no-evidence", "--no-confirm")
    assert code == 0 and "opened" not in out
    assert alerts(cli) == []


def test_a_small_change_below_the_threshold_opens_no_alert(alerting, cli):
    alerting(0, 0.0, seed=1)
    alerting(1, 2.0, seed=2)  # ~ +2%: below the 5% threshold
    assert cli("alert", "--no-evidence", "--no-confirm")[0] == 0
    assert alerts(cli) == []


def test_an_unstable_baseline_opens_no_alert(alerting, cli):
    alerting(0, 0.0, jitter=25.0, seed=1)  # process CV ~25%
    alerting(1, 10.0, jitter=0.3, seed=2)
    assert cli("alert", "--no-evidence", "--no-confirm")[0] == 0
    assert alerts(cli) == []


def test_state_changes_are_stored_with_who_and_why(alerting, cli):
    alerting(0, 0.0, seed=1)
    alerting(1, 10.0, seed=2)
    cli("alert", "--no-evidence", "--no-confirm")
    ids = sorted(a["id"] for a in alerts(cli))
    code, out, _ = cli("alert", "ack", str(ids[0]), "--by", "alice", "--reason", "looking")
    assert code == 0 and "ACKNOWLEDGED" in out
    code, _, err = cli("alert", "false-positive", str(ids[1]), "--by", "bob")
    assert code == EXIT_CONFIG and "--reason" in err
    assert cli("alert", "false-positive", str(ids[1]), "--by", "bob", "--reason", "noisy VM")[0] == 0
    assert cli("alert", "downstream", str(ids[2]), "--of", str(ids[0]), "--reason", "same cause")[0] == 0
    code, _, err = cli("alert", "ack", str(ids[1]))
    assert code == EXIT_CONFIG and "FALSE_POSITIVE" in err
    code, out, _ = cli("alert", "show", str(ids[0]))
    assert "OPEN -> ACKNOWLEDGED" in out and "by alice: looking" in out
    states = {a["id"]: a["state"] for a in alerts(cli, "--all")}
    assert states == {ids[0]: "ACKNOWLEDGED", ids[1]: "FALSE_POSITIVE", ids[2]: "DOWNSTREAM"}
