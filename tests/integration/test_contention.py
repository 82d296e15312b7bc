"""Runs whose samples were taken off their CPU: stored CONTENDED with the reason, measured
again, never history, and a non-zero exit when they stay contended."""

from __future__ import annotations

import json

from perfd.errors import EXIT_RUN


def contend(monkeypatch, tmp_path, processes: int) -> None:
    """The first `processes` harness processes share their CPU with a neighbour."""
    monkeypatch.setenv("FAKE_HARNESS_CONTENDED", str(processes))
    monkeypatch.setenv("FAKE_HARNESS_CONTENDED_COUNTER", str(tmp_path / "contended"))


def test_a_contended_run_is_measured_again_and_the_clean_one_is_history(workspace, cli,
                                                                       monkeypatch, tmp_path):
    workspace.suite()
    contend(monkeypatch, tmp_path, 6)  # the whole first attempt (2 benchmarks x 3 processes)
    code, out, err = cli("run", "--suite", "fake", "--commit", workspace.commits[0],
                         "--retry-delay", "0")
    assert code == 0, err
    assert "run 1 is CONTENDED (fake/" in err and "measuring again in 0 s (attempt 2 of 3)" in err
    assert "run 2: suite fake" in out and "COMPLETED" in out
    rows = workspace.rows("SELECT id, status, error FROM benchmark_runs ORDER BY id")
    assert [r[1] for r in rows] == ["CONTENDED", "COMPLETED"]
    assert "samples (100%) were disturbed (off its CPU up to 50% of a sample" in rows[0][2]
    # the contended run keeps its samples (wall and on-CPU) for diagnosis
    assert workspace.count("measurements", "WHERE run_id = 1 AND metric = 'cpu_time'") == 24
    assert workspace.count("statistics", "WHERE run_id = 1") > 0
    code, out, _ = cli("runs", "list", "--status", "CONTENDED")
    assert code == 0 and "CONTENDED" in out
    code, out, _ = cli("runs", "show", "1")
    assert "contended:\nfake/" in out


def test_a_run_that_stays_contended_exits_5_and_opens_no_alert(workspace, cli, monkeypatch,
                                                               tmp_path):
    workspace.suite()
    assert cli("run", "--suite", "fake", "--commit", workspace.commits[0])[0] == 0
    contend(monkeypatch, tmp_path, 1000)
    monkeypatch.setenv("FAKE_HARNESS_OFFSET", "50")  # +50% while the neighbour is there
    code, out, err = cli("run", "--suite", "fake", "--commit", workspace.commits[1],
                         "--retries", "1", "--retry-delay", "0", "--json")
    assert code == EXIT_RUN
    data = json.loads(out)
    assert data["status"] == "CONTENDED" and "at most 10% may be" in data["contended_reason"]
    statuses = [r[0] for r in workspace.rows("SELECT status FROM benchmark_runs ORDER BY id")]
    assert statuses == ["COMPLETED", "CONTENDED", "CONTENDED"]
    # the +50% was measured under contention: it is not history, so no alert opens
    code, out, _ = cli("alert", "--no-evidence", "--json")
    assert code == 0
    assert {d["action"] for d in json.loads(out)} == {"skipped"}
    assert cli("alert", "list", "--json")[1].strip() == "[]"
