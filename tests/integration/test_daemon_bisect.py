"""The daemon bisects on its own: a confirmed alert whose range spans commits nobody measured
queues a bisect job, which names the first bad commit and records it on the alert. A real
`perfd daemon` process over a real git repository, with the fake harness (each commit's
speed from its version.txt)."""

from __future__ import annotations

import json
import signal

import pytest

from tests.daemon_process import DaemonProcess, daemon_workdir, wait_for
from tests.integration.conftest import daemon_suite, version_repo

pytestmark = pytest.mark.slow

# the fake harness reads its commit's speed from version.txt in the build directory
COPY_VERSION = '    - argv: [cp, "${PERFD_WORKTREE}/version.txt", "${PERFD_BUILD_DIR}/version.txt"]\n'
CULPRIT = 3  # commits 0..5; from commit 3 on the fake harness is 10 ns (10%) slower
SPEEDS = ",".join(f"{i}:{10 if i >= CULPRIT else 0}" for i in range(6))


@pytest.fixture
def work(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    shas = version_repo(repo, 6)
    work = tmp_path / "work"
    port = daemon_workdir(work, monkeypatch,
                          suites={"fake": daemon_suite(repo, repetitions=8, tiers="[commit]",
                                                     extra_steps=COPY_VERSION)},
                          poll="{interval_s: 0}",
                          jobs="{lease_s: 30, heartbeat_s: 1, max_attempts: 1, bisect: true, "
                               "bisect_max_steps: 4}")
    env = {"FAKE_HARNESS_OFFSET_BY_VERSION": SPEEDS, "FAKE_HARNESS_JITTER": "0.3",
           "FAKE_HARNESS_COUNTER": str(tmp_path / "counter"), "FAKE_HARNESS_SEED": "1"}
    daemon = DaemonProcess(work, port, extra_env=env)
    yield daemon, shas
    if daemon.proc.poll() is None:
        daemon.stop(signal.SIGKILL)


def done(daemon: DaemonProcess, kind: str, commit: str) -> dict | None:
    """The job of kind at commit once it has ended; a FAILED one fails the test."""
    for job in daemon.jobs():
        if job["kind"] == kind and job["commit"] == commit and job["state"] in ("DONE", "FAILED"):
            assert job["state"] == "DONE", f"{kind} job failed: {job['error']}\n{daemon.output()}"
            return job
    return None


def test_a_confirmed_alert_over_unmeasured_commits_is_bisected_by_the_daemon(work, cli):
    daemon, shas = work
    daemon.wait_ready()
    assert cli("enqueue", "--suite", "fake", "--commit", shas[0])[0] == 0
    wait_for("the first run's confirmation", lambda: done(daemon, "confirm", shas[0]), 120)
    assert cli("enqueue", "--suite", "fake", "--commit", shas[5])[0] == 0  # 1..4 unmeasured
    confirm = wait_for("the step's confirmation", lambda: done(daemon, "confirm", shas[5]), 180)
    assert "1 alert(s) opened" in confirm["note"] and "1 bisection(s) queued" in confirm["note"]

    (alert,) = daemon.get("/api/v1/alerts")["items"]
    assert alert["first_bad_commit"] == shas[5] and alert["baseline_commit"] == shas[0]
    assert "not all measured: bisect them" in alert["reason"]
    job = wait_for("the bisection", lambda: done(daemon, "bisect", shas[5]), 300)
    (queued,) = [j for j in daemon.jobs() if j["kind"] == "bisect"]
    assert queued["requested_by"] == f"job {confirm['id']}"
    assert f"bisected: first bad commit {shas[CULPRIT]} (commit {CULPRIT})" in job["note"]

    shown = daemon.get(f"/api/v1/alerts/{alert['id']}")
    text = json.dumps(shown)
    assert shown["state"] == "OPEN"
    assert shown["reason"].startswith(f"bisected: first bad commit {shas[CULPRIT]} ")
    assert "builds" in shown["reason"] and "pairs" in shown["reason"]
    assert "perfd bisect" in text  # the note in the alert's history
    assert daemon.stop() == 0
