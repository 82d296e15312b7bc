"""`perfd run` against a real git repo and a fake harness: every way a run can go wrong."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfd.errors import EXIT_BUILD, EXIT_CONFIG, EXIT_REPOSITORY, EXIT_RUN, EXIT_STORAGE


def test_successful_run_stores_everything_and_writes_raw_data(workspace, cli, tmp_path):
    workspace.suite()
    code, out, err = cli("run", "--suite", "fake", "--commit", "main", "--output", str(tmp_path / "o"))
    assert code == 0, err
    assert "COMPLETED" in out and "fake/one" in out and "throughput" in out
    assert workspace.count("benchmark_runs", "WHERE status='COMPLETED'") == 1
    assert workspace.count("processes") == 6  # 2 benchmarks x 3 processes
    # fake/one: time; fake/two: time + throughput; 4 samples each process
    assert workspace.count("measurements") == 3 * 4 + 3 * 4 * 2
    assert workspace.count("statistics") == 3
    data = json.loads((tmp_path / "o" / "benchmark_data.json").read_text())
    assert data["format"] == "perfd-benchmark-data" and data["version"] == 1
    assert data["run"]["commit"] == workspace.commits[1]
    one = next(b for b in data["benchmarks"] if b["name"] == "fake/one")
    assert len(one["processes"]) == 3
    assert one["processes"][0]["values"]["time"] == [100.0, 101.0, 102.0, 103.0]
    assert one["statistics"]["time"]["median"] == pytest.approx(101.5)
    assert data["environment"]["kernel"]


def test_runs_list_and_show(workspace, cli):
    workspace.suite()
    assert cli("run", "--suite", "fake", "--commit", workspace.commits[0])[0] == 0
    code, out, _ = cli("runs", "list")
    assert code == 0 and "COMPLETED" in out and workspace.commits[0][:12] in out
    code, out, _ = cli("runs", "show", "1")
    assert code == 0 and "fake/two" in out and "  kernel: " in out
    code, out, _ = cli("runs", "show", "1", "--json")
    assert json.loads(out)["status"] == "COMPLETED"
    code, _, err = cli("runs", "show", "99")
    assert code == EXIT_CONFIG and "no run with id 99" in err


def test_build_is_cached_by_commit_and_build_config(workspace, cli):
    workspace.suite()
    assert cli("run", "--suite", "fake", "--commit", "main")[0] == 0
    code, _, err = cli("run", "--suite", "fake", "--commit", "main")
    assert code == 0 and "build reused" in err
    code, _, err = cli("run", "--suite", "fake", "--commit", workspace.commits[0])
    assert code == 0 and "build done" in err


@pytest.mark.parametrize("mode, message", [
    ("crash", "was killed by SIGSEGV"),
    ("garbage", "not JSON"),
    ("version2", "version 2.0 is not supported"),
    ("bench_error", "failed inside the harness: setup failed"),
])
def test_bad_harness_fails_the_run_and_writes_no_statistics(workspace, cli, monkeypatch, mode, message):
    workspace.suite()
    monkeypatch.setenv("FAKE_HARNESS_MODE", mode)
    code, out, err = cli("run", "--suite", "fake", "--commit", "main", "--output", "o")
    assert code == EXIT_RUN
    assert message in err
    (status, error), = workspace.rows("SELECT status, error FROM benchmark_runs")
    assert status == "FAILED" and message in error
    assert workspace.count("statistics") == 0 and workspace.count("measurements") == 0
    assert not Path("o/benchmark_data.json").exists()


def test_hanging_harness_is_killed_at_the_timeout(workspace, cli, monkeypatch):
    workspace.suite(timeout=0.5)
    monkeypatch.setenv("FAKE_HARNESS_MODE", "hang")
    started = time.monotonic()
    code, _, err = cli("run", "--suite", "fake", "--commit", "main")
    assert code == EXIT_RUN and "timed out after 0.5 s" in err and "hanging" in err
    assert time.monotonic() - started < 30
    assert workspace.count("statistics") == 0


def test_harness_killed_mid_run_leaves_failed_run_and_no_statistics(workspace, cli, monkeypatch, tmp_path):
    workspace.suite()
    monkeypatch.setenv("FAKE_HARNESS_MODE", "kill_on_second")
    monkeypatch.setenv("FAKE_HARNESS_COUNTER", str(tmp_path / "counter"))
    code, _, err = cli("run", "--suite", "fake", "--commit", "main")
    assert code == EXIT_RUN and "SIGKILL" in err
    assert workspace.rows("SELECT status FROM benchmark_runs") == [("FAILED",)]
    assert workspace.count("processes") == 1  # the one that finished, kept for diagnosis
    assert workspace.count("statistics") == 0 and workspace.count("measurements") == 0


def test_killed_perfd_leaves_a_run_that_the_next_run_marks_failed(workspace, cli, tmp_path):
    """SIGKILL perfd itself mid-run: its run is found and marked FAILED; its harness dies too."""
    workspace.suite(timeout=600)
    pidfile = tmp_path / "harness.pid"
    env = {**os.environ, "FAKE_HARNESS_MODE": "hang", "FAKE_HARNESS_PIDFILE": str(pidfile)}
    proc = subprocess.Popen([sys.executable, "-m", "perfd", "-q", "run", "--suite", "fake",
                             "--commit", "main"], cwd=workspace.path, env=env)
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pidfile.exists(), "the harness never started"
    harness_pid = int(pidfile.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert workspace.rows("SELECT status FROM benchmark_runs") == [("RUNNING",)]
    # The harness got SIGKILL with its parent (PR_SET_PDEATHSIG).
    deadline = time.monotonic() + 10
    while Path(f"/proc/{harness_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{harness_pid}").exists()
    code, _, err = cli("run", "--suite", "fake", "--commit", "main")
    assert code == 0
    assert "interrupted earlier" in err
    rows = workspace.rows("SELECT status, error FROM benchmark_runs ORDER BY id")
    assert rows[0][0] == "FAILED" and "interrupted" in rows[0][1]
    assert rows[1][0] == "COMPLETED"
    assert workspace.count("statistics", "WHERE run_id = 1") == 0


def test_unknown_commit_is_a_repository_error_and_stores_nothing(workspace, cli):
    workspace.suite()
    code, _, err = cli("run", "--suite", "fake", "--commit", "deadbeef" * 5)
    assert code == EXIT_REPOSITORY and "does not exist" in err
    assert workspace.count("benchmark_runs") == 0


def test_option_like_commit_is_refused(workspace, cli):
    workspace.suite()
    code, _, err = cli("run", "--suite", "fake", "--commit=--output=/tmp/x")
    assert code == EXIT_REPOSITORY and "not a valid commit" in err


def test_failing_build_step(workspace, cli):
    workspace.suite(extra_steps='    - argv: [sh, -c, "echo compile error in foo.c >&2; exit 3"]\n')
    code, _, err = cli("run", "--suite", "fake", "--commit", "main")
    assert code == EXIT_BUILD
    assert "build step 2" in err and "exited with status 3" in err and "compile error in foo.c" in err
    assert workspace.count("benchmark_runs") == 0
    assert not any((workspace.path / "state" / "builds").glob("*/perfd-build.json"))


def test_missing_build_tool(workspace, cli):
    workspace.suite(extra_steps="    - argv: [no-such-compiler-xyz, --version]\n")
    code, _, err = cli("run", "--suite", "fake", "--commit", "main")
    assert code == EXIT_BUILD and "program 'no-such-compiler-xyz' not found" in err


def test_malformed_suite_names_file_and_line(workspace, cli):
    path = workspace.suite()
    path.write_text(path.read_text().replace("  warmup: 0", "  warmup: -1"))
    code, _, err = cli("run", "--suite", "fake", "--commit", "main")
    assert code == EXIT_CONFIG
    assert "fake.yaml:9: defaults.warmup: must be >= 0 (got -1)" in err


def test_unwritable_database(workspace, cli, tmp_path):
    workspace.suite()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = cli("--db", f"sqlite:///{blocker}/sub/perfd.db", "run", "--suite", "fake",
                       "--commit", "main")
    assert code == EXIT_STORAGE and "perfd.db" in err


def test_locked_database_is_a_storage_error_and_the_lock_holder_loses_nothing(workspace, cli):
    import sqlite3

    workspace.suite()
    assert cli("run", "--suite", "fake", "--commit", workspace.commits[0])[0] == 0
    holder = sqlite3.connect(workspace.db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, _, err = cli("run", "--suite", "fake", "--commit", "main")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == EXIT_STORAGE and "database is locked" in err
    assert workspace.rows("SELECT status FROM benchmark_runs") == [("COMPLETED",)]


def test_pinning_to_a_cpu_this_machine_lacks_is_refused_before_running(workspace, cli):
    path = workspace.suite()
    path.write_text(path.read_text().replace("  repetitions: 3", "  repetitions: 3\n  cpus: [4095]"))
    code, _, err = cli("run", "--suite", "fake", "--commit", "main")
    assert code == EXIT_CONFIG and "pins to CPU(s) 4095" in err
    assert workspace.count("benchmark_runs") == 0
