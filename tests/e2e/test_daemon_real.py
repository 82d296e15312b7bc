"""The issue's end-to-end case: the real daemon on a git repository of the example project
(real C, real builds), a signed push of a commit with a real injected slowdown, and with no
manual step the job runs, the alert opens after its lock-step confirmation with evidence,
the budget fails and /metrics shows it."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_pushed_slowdown_is_run_confirmed_alerted_with_evidence_and_budgeted(example_daemon):
    shas = example_daemon.shas
    d = example_daemon.start()
    try:
        example_daemon.push("base")
        example_daemon.wait_jobs("the base commit's run", "confirm", shas["base"], 300)
        body = example_daemon.push("slow", before="base")
        assert body["jobs"][0]["commit"] == shas["slow"]
        example_daemon.wait_jobs("the slowdown's run, confirmation and evidence", "evidence",
                                 shas["slow"])
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
