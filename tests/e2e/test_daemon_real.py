"""The issue's end-to-end case: the real daemon on a git repository of the example project
(real C, real builds), a signed push of a commit with a real injected slowdown, and with no
manual step the job runs, the alert opens after its lock-step confirmation with evidence,
the budget fails and /metrics shows it."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from tests.daemon_process import DaemonProcess, daemon_file, free_port, wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
BUDGET = """version: 1
budgets:
  - suite: example
    benchmark: request/parse
    metric: time
    max_regression_pct: 5
    against: reference
    owner: team-request
"""


def test_a_pushed_slowdown_is_run_confirmed_alerted_with_evidence_and_budgeted(tmp_path, cli,
                                                                             monkeypatch):
    repo = tmp_path / "repo"
    out = subprocess.run([str(ROOT / "examples" / "make-demo-repo.sh"), str(repo)], check=True,
                         capture_output=True, text=True).stdout
    shas = dict(line.split() for line in out.splitlines() if line.strip())
    git(repo, "update-ref", "refs/heads/main", shas["base"])  # the slowdown is not pushed yet
    work = tmp_path / "work"
    (work / "suites").mkdir(parents=True)
    suite = (ROOT / "suites" / "example.yaml").read_text()
    suite = re.sub(r"repository: .*", f"repository: {repo}", suite)
    suite = suite.replace("tiers: [commit, nightly]", "tiers: {commit: {repetitions: 8}}")
    (work / "suites" / "example.yaml").write_text(suite)
    (work / "suites" / "example").symlink_to(ROOT / "suites" / "example")
    (work / "budgets.yaml").write_text(BUDGET)
    port = free_port()
    daemon_file(work, port, poll="{interval_s: 0}")
    monkeypatch.chdir(work)
    monkeypatch.delenv("PERFD_CONFIG", raising=False)
    monkeypatch.setenv("PERFD_MACHINE_LOCK", str(work / "machine.lock"))
    assert cli("reference", "set", "--suite", "example", "--commit", shas["base"],
               "--reason", "the release")[0] == 0

    d = DaemonProcess(work, port)
    try:
        d.wait_ready()
        push = {"ref": "refs/heads/main", "after": shas["base"], "before": "0" * 40,
                "commits": [{"id": shas["base"]}], "repository": {"clone_url": str(repo)}}
        assert d.webhook(push)[0] == 202
        wait_for("the base commit's run", lambda: any(
            j["kind"] == "confirm" and j["state"] == "DONE" for j in d.jobs()), 300, 1.0)

        git(repo, "update-ref", "refs/heads/main", shas["slow"])  # the push of the slowdown
        status, body = d.webhook({**push, "after": shas["slow"], "before": shas["base"],
                                  "commits": [{"id": shas["slow"]}]})
        assert status == 202 and body["jobs"][0]["commit"] == shas["slow"]

        def evidence_done() -> bool:
            jobs = d.jobs()
            failed = [j for j in jobs if j["state"] == "FAILED"]
            assert not failed, failed
            return any(j["kind"] == "evidence" and j["state"] == "DONE" for j in jobs)

        wait_for("the slowdown's run, confirmation and evidence", evidence_done, 600, 1.0)
        alerts = d.get("/api/v1/alerts?state=OPEN")["items"]
        parse = [a for a in alerts if a["benchmark"] == "request/parse" and a["metric"] == "time"]
        assert parse, alerts
        assert parse[0]["reason"].startswith("confirmed by a lock-step A/B")
        assert parse[0]["first_bad_commit"] == shas["slow"]
        assert parse[0]["evidence_path"] and Path(parse[0]["evidence_path"]).is_dir()
        # the evidence over HTTP: the series' link (what Alertmanager's notifications carry)
        # redirects to the report, whose files are served by name and nothing else
        status, report, headers = d.request(
            "GET", "/api/v1/evidence?suite=example&benchmark=request/parse&metric=time")
        assert status == 200 and headers["content-type"].startswith("text/markdown"), report
        assert "request/parse" in report
        files = d.get(f"/api/v1/alerts/{parse[0]['id']}")["evidence_files"]
        assert any(f.endswith("/diff.svg") for f in files), files
        status, svg, headers = d.request("GET", next(f for f in files if f.endswith("/diff.svg")))
        assert status == 200 and headers["content-type"] == "image/svg+xml" and "<svg" in svg
        assert "default-src 'none'" in headers["content-security-policy"]
        for bad in ("..%2Fperfd.db", "nothing.md"):
            assert d.request("GET", f"/api/v1/alerts/{parse[0]['id']}/evidence/{bad}")[0] == 404
        assert d.request("GET", "/api/v1/evidence?suite=example&benchmark=memory/chase"
                                "&metric=time")[0] == 404
        (budgets,) = d.get("/api/v1/budgets?suite=example")["items"]
        (result,) = budgets["budgets"]
        assert result["status"] == "FAIL" and budgets["commit"] == shas["slow"]
        metrics = d.get("/metrics")
        assert re.search(r'perfd_alerts_open\{[^}]*suite="example"[^}]*\} [1-9]', metrics)
        assert re.search(r'perfd_alert_active\{benchmark="request/parse",confidence="[A-Z]+",'
                         r'kind="code",metric="time",state="OPEN",suite="example"\} 1', metrics)
        assert re.search(r'perfd_budget_ok\{[^}]*benchmark="request/parse"[^}]*\} 0', metrics)
        assert "commit" not in " ".join(re.findall(r"\{[^}]*\}", metrics)).replace("tier=\"commit\"", "")
    finally:
        code = d.stop(signal.SIGTERM)
    assert code == 0, d.output()
    shutil.rmtree(work / "state" / "builds", ignore_errors=True)
