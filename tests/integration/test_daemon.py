"""The real `perfd daemon` process over a real git repository, with the fake harness: jobs
through the queue and the HTTP API, webhooks and their signatures, tokens, reloads, systemd
notifications, SIGTERM, kill -9 mid-job, a hanging harness."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import git
from tests.daemon_process import DaemonProcess, daemon_workdir, wait_for
from tests.integration.conftest import daemon_suite

pytestmark = pytest.mark.slow

HANGS = """\
name: hangs
repository: {repo}
branches: [main]
build:
  steps:
    - argv: ["true"]
harness:
  binary: /bin/sh
  args: ["-c", "sleep 3600"]
defaults:
  repetitions: 1
  timeout_s: 2
tiers: [commit]
benchmarks:
  - name: never/answers
"""


@pytest.fixture
def work(tmp_path, tiny_repo, monkeypatch):
    repo, shas = tiny_repo
    work = tmp_path / "work"
    port = daemon_workdir(work, monkeypatch,
                          suites={"fake": daemon_suite(repo)},
                          poll="{interval_s: 0}", jobs="{lease_s: 4, heartbeat_s: 1, max_attempts: 2}")

    class Work:
        path = work
        commits = shas
        repo_path = repo
        started: list[DaemonProcess] = []

        def start(self, **env: str) -> DaemonProcess:
            d = DaemonProcess(work, port, extra_env=env)
            self.started.append(d)
            d.wait_ready()
            return d

        def rows(self, sql: str) -> list[tuple]:
            engine = sa.create_engine(f"sqlite:///{work / 'state' / 'perfd.db'}")
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql))]

    yield Work()
    for d in Work.started:
        if d.proc.poll() is None:
            d.stop(signal.SIGKILL)


def job_states(d: DaemonProcess) -> dict[tuple[str, str], str]:
    return {(j["kind"], j["commit"]): j["state"] for j in d.jobs()}


def test_a_queued_commit_is_run_then_confirmed_and_served(work, cli):
    d = work.start()
    assert d.get("/healthz") == {"status": "ok"}
    code, out, err = cli("enqueue", "--suite", "fake", "--commit", work.commits[0], "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["state"] == "QUEUED" and job["created"] and job["kind"] == "run"
    again = json.loads(cli("enqueue", "--suite", "fake", "--commit", work.commits[0], "--json")[1])
    assert again["id"] == job["id"] or again["state"] != "QUEUED"  # the same job, or done
    c0 = work.commits[0]
    wait_for("the run and its confirmation", lambda: job_states(d).get(("confirm", c0)) == "DONE")
    (run,) = [j for j in d.jobs() if j["kind"] == "run"]
    assert run["state"] == "DONE" and run["run_id"] and run["attempts"] == 1
    assert d.get(f"/api/v1/runs/{run['run_id']}")["status"] == "COMPLETED"
    # reads carry an ETag and answer 304 when nothing changed
    status, body, headers = d.request("GET", "/api/v1/jobs?limit=1")
    assert status == 200 and len(body["items"]) == 1 and body["next"].endswith("before=" +
                                                                              str(body["items"][0]["id"]))
    status, _, _ = d.request("GET", "/api/v1/jobs?limit=1", headers={"If-None-Match": headers["etag"]})
    assert status == 304
    series = d.get("/api/v1/series")["items"]
    assert [s["benchmark"] for s in series] == ["fake/one"]
    assert "perfd_jobs" in d.get("/metrics")
    assert d.stop() == 0
    assert "STOPPING=1" in d.receive()


def test_webhooks_need_their_signature_and_commit_ids_are_checked(work):
    d = work.start()
    push = {"ref": "refs/heads/main", "after": work.commits[1], "before": work.commits[0],
            "commits": [{"id": work.commits[1]}], "repository": {"clone_url": str(work.repo_path)}}
    assert d.webhook(push, secret=None)[0] == 401
    assert d.webhook(push, secret="not-the-secret")[0] == 401
    assert d.jobs() == []  # nothing queued
    bad = {**push, "after": "$(rm -rf /)", "commits": []}
    assert d.webhook(bad)[0] == 400
    assert d.webhook(push, event="ping") == (200, {"status": "pong"})
    status, body = d.webhook(push)
    assert status == 202 and [j["commit"] for j in body["jobs"]] == [work.commits[1]]
    elsewhere = {**push, "ref": "refs/heads/feature"}
    assert d.webhook(elsewhere)[1]["jobs"] == []  # an untracked branch


def test_writes_need_the_token(work):
    d = work.start()
    body = {"suite": "fake", "commit": work.commits[0]}
    assert d.request("POST", "/api/v1/jobs", body, token=None)[0] == 401
    assert d.request("POST", "/api/v1/jobs", body, token="wrong")[0] == 401
    assert d.request("POST", "/api/v1/jobs", {**body, "commit": "HEAD~1; ls"})[0] == 400
    assert d.request("POST", "/api/v1/jobs", {**body, "commit": "ab" * 20})[0] == 400  # not here
    status, job, _ = d.request("POST", "/api/v1/jobs", body)
    assert status == 201
    assert d.request("GET", "/api/v1/jobs/999999")[0] == 404
    assert d.request("POST", "/api/v1/alerts/999999/ack", {"reason": "x"})[0] == 404
    wait_for("the job to finish", lambda: d.get(f"/api/v1/jobs/{job['id']}")["state"] == "DONE")
    assert d.request("POST", f"/api/v1/jobs/{job['id']}/cancel", {"reason": "late"})[0] == 409


def test_kill_9_mid_job_leaves_nothing_running_and_the_job_completes_once(work, cli, tmp_path):
    spans = tmp_path / "spans.log"
    env = {"FAKE_HARNESS_SPAN_LOG": str(spans), "FAKE_HARNESS_SLEEP": "1.5"}
    d = work.start(**env)
    assert cli("enqueue", "--suite", "fake", "--commit", work.commits[0])[0] == 0
    wait_for("a harness process to start", lambda: work.rows(
        "SELECT count(*) FROM benchmark_runs WHERE status = 'RUNNING'")[0][0] == 1, 30)
    time.sleep(0.5)
    d.kill9()
    written = spans.read_text() if spans.exists() else ""
    time.sleep(3)  # a surviving harness would finish its sleep and write its span
    assert (spans.read_text() if spans.exists() else "") == written, "a harness outlived perfd"
    d2 = work.start(**env)
    c0 = work.commits[0]
    wait_for("the re-claimed job to finish", lambda: job_states(d2).get(("run", c0)) == "DONE", 60)
    (run,) = [j for j in d2.jobs() if j["kind"] == "run"]
    assert run["attempts"] == 2
    statuses = sorted(r[0] for r in work.rows(
        f"SELECT status FROM benchmark_runs WHERE commit_sha = '{c0}' AND tier = 'commit'"))
    assert statuses == ["COMPLETED", "FAILED"]  # the killed one marked interrupted, one result
    assert d2.stop() == 0


def test_a_hanging_harness_fails_its_job_and_the_next_job_runs(work, cli):
    (work.path / "suites" / "hangs.yaml").write_text(HANGS.format(repo=work.repo_path))
    d = work.start()
    assert cli("enqueue", "--suite", "hangs", "--commit", work.commits[0])[0] == 0
    assert cli("enqueue", "--suite", "fake", "--commit", work.commits[0])[0] == 0
    c0 = work.commits[0]
    wait_for("the fake suite's run", lambda: any(
        j["suite"] == "fake" and j["kind"] == "run" and j["state"] == "DONE" for j in d.jobs()), 90)
    hung = [j for j in d.jobs() if j["suite"] == "hangs"]
    assert hung and "timed out" in (hung[0]["error"] or "") and hung[0]["commit"] == c0
    assert d.get("/healthz") == {"status": "ok"}


def test_an_invalid_edit_keeps_the_running_config_and_a_good_one_is_picked_up(work):
    d = work.start(WATCHDOG_USEC="400000")
    wait_for("watchdog pings", lambda: d.receive().count("WATCHDOG=1") >= 2, 10)
    suite = work.path / "suites" / "fake.yaml"
    good = suite.read_text()
    suite.write_text(good.replace("repetitions: 3", "repetitions: [3"))  # broken YAML
    d.proc.send_signal(signal.SIGHUP)
    wait_for("the refused reload", lambda: "perfd_config_reload_success 0.0" in d.get("/metrics"))
    assert "fake.yaml:" in d.output()  # the error names the file and line
    assert d.get("/healthz") == {"status": "ok"}
    # an editor's save: write elsewhere, rename over the file; the watcher reloads by itself
    fixed = suite.with_suffix(".tmp")
    fixed.write_text(good)
    os.replace(fixed, suite)
    wait_for("the watched reload", lambda: "perfd_config_reload_success 1.0" in d.get("/metrics"))
    config = work.path / "perfd.yaml"
    config.write_text(config.read_text() + 'schedules:\n  - {tier: nightly, at: "03:00", days: [sun]}\n')
    try:
        wait_for("the new schedule", lambda: "tier-nightly-0" in d.get("/readyz")["schedules"], 10)
    except AssertionError:
        print(d.output(), config.read_text())
        raise


def test_a_config_that_does_not_validate_stops_the_daemon_at_start(work):
    (work.path / "perfd.yaml").write_text("machine_id: x\nhttp: {listen: nowhere}\n")
    d = DaemonProcess(work.path, 1)
    assert d.proc.wait(30) == 2
    assert "perfd.yaml:2" in d.output() and "host:port" in d.output()
    d.stop()


def test_a_git_commit_pushed_later_is_found_by_polling(work, cli):
    config = work.path / "perfd.yaml"
    config.write_text(config.read_text().replace("poll: {interval_s: 0}", "poll: {interval_s: 1}"))
    d = work.start()
    c1 = work.commits[1]
    wait_for("the head's job", lambda: job_states(d).get(("run", c1)) == "DONE", 60)
    (work.repo_path / "version.txt").write_text("2\n")
    git(work.repo_path, "commit", "-q", "-a", "-m", "commit 2")
    c2 = git(work.repo_path, "rev-parse", "HEAD")
    wait_for("the new commit's job", lambda: job_states(d).get(("run", c2)) == "DONE", 60)
    assert Path(work.path / "state" / "perfd.db").exists()


def test_the_daemon_waits_while_a_cli_benchmark_holds_the_machine(work, cli):
    from perfd.locks import MachineLock

    d = work.start()
    lock = MachineLock(work.path / "machine.lock")
    with lock.hold("a perfd run from the command line"):
        assert cli("enqueue", "--suite", "fake", "--commit", work.commits[0])[0] == 0
        wait_for("the claim", lambda: any(j["state"] == "RUNNING" for j in d.jobs()), 30)
        time.sleep(2)
        assert work.rows("SELECT count(*) FROM benchmark_runs")[0][0] == 0  # it waits
        assert "waiting for the machine" in d.output()
    c0 = work.commits[0]
    wait_for("the run once the machine is free", lambda: job_states(d).get(("run", c0)) == "DONE")


def test_an_unreachable_remote_is_retried_and_shows_in_the_metrics(work):
    (work.path / "suites" / "gone.yaml").write_text(
        daemon_suite("https://127.0.0.1:9/nothing.git", name="gone"))
    config = work.path / "perfd.yaml"
    config.write_text(config.read_text().replace("poll: {interval_s: 0}",
                                                 "poll: {interval_s: 1, max_backoff_s: 2}"))
    d = work.start()
    wait_for("fetch failures in the metrics", lambda: any(
        line.startswith("perfd_repository_fetch_failures{") and not line.endswith(" 0.0")
        for line in d.get("/metrics").splitlines()), 60)
    assert d.get("/healthz") == {"status": "ok"}
    assert "poll https://127.0.0.1:9/nothing.git (failure" in d.output()


def test_a_database_a_cli_command_holds_locked_makes_the_daemon_wait_not_fail(work):
    import sqlite3
    import threading

    d = work.start()
    holder = sqlite3.connect(work.path / "state" / "perfd.db", isolation_level=None,
                             check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # what a CLI command's write transaction holds
    released = threading.Timer(2.0, holder.execute, args=("COMMIT",))
    released.start()
    started = time.monotonic()
    status, job, _ = d.request("POST", "/api/v1/jobs", {"suite": "fake", "commit": work.commits[0]})
    waited = time.monotonic() - started
    released.join()
    holder.close()
    assert status == 201, job
    assert waited >= 1.5  # it waited for the lock (busy timeout), instead of failing
    wait_for("the job", lambda: d.get(f"/api/v1/jobs/{job['id']}")["state"] == "DONE")
    assert d.get("/healthz") == {"status": "ok"}
