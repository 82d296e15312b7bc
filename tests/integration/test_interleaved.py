"""Interleaved A/B runs: pairs of processes in random order, both sides stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfd.config import find_suite
from perfd.errors import HarnessError
from perfd.runner.build import Builder
from perfd.runner.git import Repository
from perfd.runner.pipeline import RunOptions, run_interleaved
from perfd.store import ResultStore


def options(workspace, progress=None) -> RunOptions:
    return RunOptions(machine_id="test-machine", seed=7,
                      events=(lambda e: progress(e.message)) if progress else (lambda e: None))


def deps(workspace, suite):
    state = workspace.path / "state"
    return Repository.open(suite.repository_location(), state / "mirrors"), Builder(state / "builds")


def test_pairs_until_keep_going_says_stop(workspace):
    workspace.suite()
    store = ResultStore.open(f"sqlite:///{workspace.db_path}")
    suite = find_suite("fake", Path("suites"))
    asked = []

    def keep_going(name, base, cur):
        asked.append((name, len(base), len(cur)))
        return name == "fake/two" and len(base) < 4

    messages: list[str] = []
    out = run_interleaved(suite, *deps(workspace, suite), workspace.commits[0], workspace.commits[1], store,
                          options(workspace, messages.append), keep_going=keep_going,
                          min_pairs=2, max_pairs=6)
    assert out.pairs == {"fake/one": 2, "fake/two": 4}
    assert out.baseline.commit_sha == workspace.commits[0]
    assert out.current.commit_sha == workspace.commits[1]
    # decisions are only asked for from min_pairs on, with equal numbers on both sides
    assert all(b == c and b >= 2 for _, b, c in asked)
    runs = {r.id: r for r in store.list_runs()}
    assert {r.tier for r in runs.values()} == {"compare"}
    assert {r.status for r in runs.values()} == {"COMPLETED"}
    rounds = [p.round_index for p in out.current.result.processes if p.benchmark == "fake/two"]
    assert rounds == [0, 1, 2, 3]
    # the order inside a pair is randomised, so both orders occur
    orders = {m.split("(")[1] for m in messages if m.startswith("pair ")}
    assert len(orders) == 2


def test_a_crash_on_one_side_fails_both_runs(workspace, monkeypatch):
    workspace.suite()
    monkeypatch.setenv("FAKE_HARNESS_MODE", "crash")
    store = ResultStore.open(f"sqlite:///{workspace.db_path}")
    suite = find_suite("fake", Path("suites"))
    with pytest.raises(HarnessError, match="SIGSEGV"):
        run_interleaved(suite, *deps(workspace, suite), workspace.commits[0], workspace.commits[1], store,
                        options(workspace), keep_going=lambda *a: True, min_pairs=2, max_pairs=3)
    assert {r.status for r in store.list_runs()} == {"FAILED"}
    assert workspace.count("statistics") == 0


def test_compare_of_stored_runs_without_them_is_a_clear_error(workspace, cli):
    workspace.suite()
    code, _, err = cli("compare", "--suite", "fake", "--baseline", workspace.commits[0],
                       "--current", workspace.commits[1], "--stored")
    assert code == 2, err
    assert (f"no stored history run of suite fake on machine test-machine at "
            f"{workspace.commits[0][:12]}, {workspace.commits[1][:12]}") in err
    assert "perfd run" in err
