"""Reference-paired history: with a reference set, each run takes turns with the reference
build and history is judged on the ratios, so a host that got slower opens no alert while a
code change does."""

from __future__ import annotations

import json

import pytest

from perfd.errors import EXIT_CONFIG, EXIT_NEGATIVE
from tests.integration.test_confirm import COPY_VERSION


@pytest.fixture
def paired(workspace, cli, monkeypatch, tmp_path):
    path = workspace.suite(extra_steps=COPY_VERSION)
    path.write_text(path.read_text().replace("repetitions: 3", "repetitions: 8"))
    monkeypatch.setenv("FAKE_HARNESS_COUNTER", str(tmp_path / "counter"))
    monkeypatch.setenv("FAKE_HARNESS_JITTER", "0.3")
    code, out, err = cli("reference", "set", "--suite", "fake", "--commit", workspace.commits[0],
                         "--reason", "release 1.0", "--by", "alice")
    assert code == 0, err
    assert out.startswith("reference of fake on main: ") and "by alice: release 1.0" in out

    def run(commit_index: int, host_slowdown: float, *extra: str) -> tuple[int, str, str]:
        monkeypatch.setenv("FAKE_HARNESS_OFFSET", str(host_slowdown))  # hits both sides
        return cli("run", "--suite", "fake", "--commit", workspace.commits[commit_index], *extra)

    return run


def test_a_paired_run_stores_both_sides_and_its_ratios(paired, cli, workspace, monkeypatch):
    monkeypatch.setenv("FAKE_HARNESS_OFFSET_BY_VERSION", "0:0,1:10")
    code, out, err = paired(1, 0.0, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["reference"]["rev"] == workspace.commits[0]
    ratios = {(r["benchmark"], r["metric"]): r for r in data["ratios"]}
    assert set(ratios) == {("fake/one", "time"), ("fake/two", "time"), ("fake/two", "throughput")}
    one = ratios[("fake/one", "time")]
    assert one["pairs"] == 8 and one["ratio"] == pytest.approx(111.5 / 101.5, rel=0.01)
    assert one["ci"][0] <= one["ratio"] <= one["ci"][1]
    assert ratios[("fake/two", "throughput")]["ratio"] < 1  # higher is better: fewer ops/s
    tiers = sorted(r[0] for r in workspace.rows("SELECT tier FROM benchmark_runs"))
    assert tiers == ["manual", "reference"]  # the reference's side is stored, outside history
    assert workspace.count("run_ratios") == 3
    code, out, _ = paired(1, 0.0, "--output", "out")
    assert "against the reference" in out and "vs reference" in out and "pairs" in out
    written = json.loads((workspace.path / "out" / "benchmark_data.json").read_text())
    assert written["run"]["commit"] == workspace.commits[1]


def test_a_slower_host_opens_no_alert_on_the_ratio_series(paired, cli, workspace):
    assert paired(0, 0.0)[0] == 0
    assert paired(1, 10.0)[0] == 0  # the whole host ~10% slower, the code unchanged
    code, out, _ = cli("alert", "--no-evidence", "--no-confirm", "--json")
    assert code == 0, out
    assert {d["action"] for d in json.loads(out)} == {"quiet"}
    # measured alone, the same slowdown would have paged
    assert paired(1, 10.0, "--solo")[0] == 0
    absolute = workspace.rows("SELECT count(*) FROM benchmark_runs WHERE tier = 'manual'")
    assert absolute == [(3,)]


def test_a_code_change_alerts_against_the_reference(paired, cli, monkeypatch):
    monkeypatch.setenv("FAKE_HARNESS_OFFSET_BY_VERSION", "0:0,1:10")
    assert paired(0, 0.0)[0] == 0
    assert paired(1, 0.0)[0] == 0
    code, out, _ = cli("alert", "--no-evidence", "--no-confirm", "--json")
    assert code == EXIT_NEGATIVE
    opened = json.loads(cli("alert", "list", "--json")[1])
    assert {a["benchmark"] for a in opened} == {"fake/one", "fake/two"}
    assert all(a["reason"].startswith("against the reference ") for a in opened)
    assert all(8 < abs(a["change_pct"]) < 12 for a in opened)


def test_references_are_listed_with_who_and_why(paired, cli, workspace):
    assert cli("reference", "set", "--suite", "fake", "--commit", workspace.commits[1],
               "--reason", "release 1.1", "--by", "bob")[0] == 0
    code, out, _ = cli("reference", "list", "--json")
    refs = json.loads(out)
    assert [(r["set_by"], r["reason"]) for r in refs] == [("bob", "release 1.1"),
                                                        ("alice", "release 1.0")]
    code, out, _ = cli("reference", "show", "--suite", "fake")
    assert "release 1.1" in out
    code, _, err = cli("reference", "set", "--suite", "fake", "--commit", "no-such-tag",
                       "--reason", "x")
    assert code == 3 and "does not exist" in err
    code, _, err = cli("reference", "set", "--suite", "fake", "--commit", workspace.commits[0],
                       "--reason", " ")
    assert code == EXIT_CONFIG
