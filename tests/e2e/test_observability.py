"""Operations, end to end with the real tools: the real daemon on the example project, a real
Prometheus scraping it with perfd's rules, a real Alertmanager with perfd's routing, and a
webhook receiver standing in for the pager.

A pushed commit with a real slowdown -> the alert opens after confirmation -> Prometheus
scrapes -> the rule fires -> Alertmanager delivers a payload naming the suite, benchmark,
confidence and an evidence link that answers. Every PromQL expression of the dashboards and
rules runs against that Prometheus and returns data, or is listed below as legitimately
empty with the reason. Then the alert is resolved in perfd and the resolved notification
arrives.

The copies of prometheus.yml, the rules and alertmanager.yml differ from the shipped files
only where a test must: the ports, 1 s scrape and evaluation intervals, every rule's ``for:``
and ``keep_firing_for:`` cut to 1 s, and Alertmanager's waits cut to 1 s; expressions,
labels, annotations, routes and receivers are the shipped ones (promtool and amtool test
those on their own)."""

from __future__ import annotations

import copy
import re
import signal
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon_process import wait_for
from tests.prometheus_stack import Alertmanager, Prometheus, Receiver
from tests.unit.test_grafana_dashboards import all_expressions

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
MACHINE = "daemon-test"  # tests.daemon_process.daemon_file's machine id
SERIES = {"suite": "example", "benchmark": "request/parse", "metric": "time"}

# Rules (alert name, severity) whose expression may be empty on this history (the alert does
# not fire), and why. The others must return samples (fire).
RULES_QUIET_HERE = {
    ("PerfdBudgetExceeded", "info"): "the one budget is a block budget",
    ("PerfdMachineDrifting", "ticket"): "the machine did not change: no infrastructure alert",
    ("PerfdRunsFailing", "ticket"): "no run failed",
    ("PerfdMachineContended", "ticket"): "fewer than three runs were CONTENDED",
    ("PerfdDown", "page"): "the daemon is up",
    ("PerfdStoreUnreadable", "page"): "the store is readable",
    ("PerfdConfigReloadFailed", "ticket"): "no configuration reload failed",
    ("PerfdQueueStuck", "ticket"): "the queue drains",
}
# PerfdRegressionConfirmed has one rule per confidence: the alert's fires, the others are quiet.
SEVERITY = {"HIGH": "page", "MEDIUM": "ticket", "LOW": "info"}

# Dashboard expressions that are empty on this history, and why (each is matched as a regex
# against the expression). Everything else must return at least one sample.
EMPTY_HERE = {
    r'kind="infrastructure"': "no environment change happened, so no infrastructure alert",
    r"perfd_budget_no_data": "the one budget could judge every run",
    r'state="ACKNOWLEDGED"': "nobody acknowledged the alert",
    r"perfd_benchmark_(bytes|ratio|value)\b": "the example suite has no size, percentage "
                                              "or counter metric",
    r'perfd_benchmark_per_second\{[^}]*metric=~"time"': "the series the variables pick is "
                                                      "request/parse time, not a rate",
    r"perfd_budget_limit": "the one budget has a relative limit only (+5% against the "
                           "reference), no absolute one",
    r"perfd_repository_fetch_failures": "polling is off here (pushes come by webhook), so "
                                        "no repository was fetched",
}


def grafana_values(port: int) -> dict[str, str]:
    """What the dashboards' variables and Grafana's macros stand for in these queries."""
    return {"__rate_interval": "1m", "__interval": "15s", "__range": "5m",
            "__range_s": "300", "machine": MACHINE, "suite": "example",
            "benchmark": "request/parse", "metric": "time",
            "perfd_url": f"http://127.0.0.1:{port}"}


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"no test value for ${name} in {expr!r}")
        return values[name]

    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)
    # a variable's label_values(selector, label) is Grafana's, not PromQL: what it lists
    listed = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", expr.strip(), re.S)
    return f"count by ({listed.group(2)}) ({listed.group(1)})" if listed else expr


def rules_for_test(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The shipped rules with every ``for:`` and ``keep_firing_for:`` at 1 s, and each
    alerting rule's (name, severity, expression)."""
    rules = yaml.safe_load(text)
    exprs = []
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "alert" in rule:
                exprs.append((rule["alert"], rule["labels"]["severity"], rule["expr"]))
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = "1s"
    return yaml.safe_dump(rules, sort_keys=False), exprs


def prometheus_config(daemon_port: int, alertmanager_port: int) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = ["perfd.rules.yml"]
    config["alerting"] = {"alertmanagers": [
        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]}
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "perfd"]
    (target,) = job["static_configs"]
    target["targets"] = [f"127.0.0.1:{daemon_port}"]
    target["labels"] = {"machine": MACHINE, "perfd_url": f"http://127.0.0.1:{daemon_port}"}
    job["scrape_interval"] = "1s"
    return config


def alertmanager_config(receiver_url: str) -> dict[str, Any]:
    """The shipped routing with every webhook pointed at ``receiver_url`` (same path)."""
    config = copy.deepcopy(yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text()))

    def fast(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        if "repeat_interval" in route:
            route["repeat_interval"] = "1h"
        for child in route.get("routes", []):
            fast(child)

    config["route"].update(group_wait="1s", group_interval="1s")
    fast(config["route"])
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            path = urllib.parse.urlsplit(hook["url"]).path
            hook["url"] = receiver_url + path
        # email and Slack are configuration only: nothing to deliver them to here
        receiver.pop("email_configs", None)
        receiver.pop("slack_configs", None)
    return config


def heading_anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the Markdown headings."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in markdown.splitlines() if line.startswith("#")}


def notifications(receiver: Receiver, status: str) -> list[tuple[str, dict[str, Any]]]:
    """(receiver path, alert) of every delivered alert with ``status`` on our series."""
    found = []
    for path, payload in list(receiver.received):
        for alert in payload.get("alerts", []):
            labels = alert["labels"]
            if (alert["status"] == status and labels.get("alertname") == "PerfdRegressionConfirmed"
                    and all(labels.get(k) == v for k, v in SERIES.items() if k != "metric")):
                found.append((path, alert))
    return found


def test_a_confirmed_regression_pages_through_prometheus_and_alertmanager_and_resolves(
        example_daemon, tmp_path):
    receiver = Receiver()
    alertmanager = Alertmanager(tmp_path / "alertmanager", alertmanager_config(receiver.url))
    rules, rule_exprs = rules_for_test((ROOT / "prometheus" / "rules" / "perfd.rules.yml").read_text())
    prometheus = Prometheus(tmp_path / "prometheus",
                            prometheus_config(example_daemon.port, alertmanager.port),
                            {"perfd.rules.yml": rules})
    shas = example_daemon.shas
    d = example_daemon.start()
    try:
        alertmanager.wait_ready()
        prometheus.wait_ready()
        wait_for("Prometheus scraping perfd", prometheus.targets_up, 60, 1.0)
        example_daemon.push("base")
        example_daemon.wait_jobs("the base commit's run", "confirm", shas["base"], 300)
        example_daemon.push("slow", before="base")
        example_daemon.wait_jobs("the slowdown's run, confirmation and evidence", "evidence",
                                 shas["slow"])

        wait_for("the firing notification", lambda: notifications(receiver, "firing"), 120, 1.0)
        path, alert = notifications(receiver, "firing")[0]
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["confidence"] in ("HIGH", "MEDIUM", "LOW") and labels["machine"] == MACHINE
        assert labels["severity"] in ("page", "ticket", "info")
        assert {"summary", "description", "runbook_url", "evidence_url"} <= set(annotations)
        with urllib.request.urlopen(annotations["evidence_url"], timeout=30) as response:
            report = response.read().decode()
            assert response.status == 200 and "request/parse" in report
        with urllib.request.urlopen(annotations["runbook_url"], timeout=30) as response:
            assert response.status == 200
            anchor = urllib.parse.urlsplit(annotations["runbook_url"]).fragment
            assert anchor in heading_anchors(response.read().decode()), anchor

        # every rule: the regression's (at the alert's confidence) and the block budget's
        # fire, the others are quiet for the reasons listed
        firing = {("PerfdRegressionConfirmed", SEVERITY[labels["confidence"]]),
                  ("PerfdBudgetExceeded", "ticket")}
        for name, severity, expr in rule_exprs:
            fires = bool(prometheus.query(expr))
            if (name, severity) in firing:
                assert fires, (name, severity, expr)
            elif not fires:
                assert (name, severity) in RULES_QUIET_HERE or name == "PerfdRegressionConfirmed", \
                    (name, severity, expr)
        # every dashboard query returns data, or is listed as empty here with the reason
        values = grafana_values(example_daemon.port)
        expressions = [(f"{uid}: {where}", substitute(expr, values))
                       for uid, where, expr in all_expressions()]
        empty = [(where, expr) for where, expr in expressions if not prometheus.query(expr)]
        unexplained = [(w, e) for w, e in empty
                       if not any(re.search(pattern, e) for pattern in EMPTY_HERE)]
        assert not unexplained, unexplained
        assert len(empty) < len(expressions) / 4, empty  # nearly all of them show data here

        (active,) = [a for a in d.get("/api/v1/alerts?state=OPEN")["items"]
                     if a["benchmark"] == "request/parse" and a["metric"] == "time"]
        status, body, _ = d.request("POST", f"/api/v1/alerts/{active['id']}/resolve",
                                    {"reason": "fixed upstream"})
        assert status == 200, body
        wait_for("the resolved notification", lambda: notifications(receiver, "resolved"),
                 180, 1.0)
        assert notifications(receiver, "resolved")[0][0] == path  # the same receiver
    finally:
        code = d.stop(signal.SIGTERM)
        prometheus.stop()
        alertmanager.stop()
        receiver.stop()
    assert code == 0, d.output()
