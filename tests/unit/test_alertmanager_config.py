"""perfd's example Alertmanager configuration: amtool accepts it, routes each kind of perfd
alert to the receiver docs/alerts.md names (and fails on a wrong one), and its inhibitions,
receivers and matchers are the documented ones."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "prometheus" / "rules" / "perfd.rules.yml"
RUNBOOK = ROOT / "docs" / "alerts.md"

# Where the alerts of each severity go when no more specific route takes them.
SEVERITY_RECEIVER = {"page": "oncall-page", "ticket": "tickets", "info": "info"}
# label=value arguments of an alert -> the receiver it must reach
ROUTES = [
    pytest.param(["alertname=PerfdRegressionConfirmed", "severity=page", "confidence=HIGH",
                  "machine=bench-01", "suite=example"], "oncall-page", id="HIGH regression pages"),
    pytest.param(["alertname=PerfdRegressionConfirmed", "severity=ticket", "confidence=MEDIUM",
                  "machine=bench-01", "suite=example"], "tickets", id="MEDIUM regression ticket"),
    pytest.param(["alertname=PerfdRegressionConfirmed", "severity=info", "confidence=LOW",
                  "machine=bench-01", "suite=example"], "info", id="LOW regression info"),
    pytest.param(["alertname=PerfdBudgetExceeded", "severity=ticket", "action=block",
                  "owner=perf-team", "machine=bench-01", "suite=example"], "perf-team",
                 id="block budget of perf-team"),
    pytest.param(["alertname=PerfdBudgetExceeded", "severity=info", "action=warn",
                  "owner=perf-team", "machine=bench-01", "suite=example"], "perf-team",
                 id="warn budget of perf-team"),
    pytest.param(["alertname=PerfdBudgetExceeded", "severity=ticket", "action=block",
                  "owner=team-core", "machine=bench-01", "suite=example"], "tickets",
                 id="budget of a team without a route"),
    pytest.param(["alertname=PerfdBudgetExceeded", "severity=ticket", "action=block",
                  "machine=bench-01", "suite=example"], "tickets", id="budget without owner"),
    pytest.param(["alertname=PerfdDown", "severity=page", "machine=bench-01"], "oncall-page",
                 id="daemon down pages"),
    pytest.param(["alertname=PerfdQueueStuck", "severity=ticket", "machine=bench-01"], "tickets",
                 id="queue stuck ticket"),
    pytest.param(["alertname=SomethingElse", "machine=bench-01"], "default-webhook",
                 id="unknown alert to the default"),
    pytest.param(["alertname=SomethingElse", "severity=critical"], "default-webhook",
                 id="unknown severity to the default"),
]



def route_test(amtool: Path, receiver: str, labels: list[str]) -> subprocess.CompletedProcess[str]:
    """`amtool config routes test` of an alert with ``labels``, verifying ``receiver``."""
    return subprocess.run(
        [str(amtool), "config", "routes", "test", f"--config.file={CONFIG}",
         f"--verify.receivers={receiver}", *labels],
        capture_output=True, text=True, timeout=60, cwd=ROOT)


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return loaded


def matcher_alertnames(matcher: str) -> set[str]:
    """The alert names an alertname matcher (`alertname="A"` or `alertname=~"A|B"`) selects."""
    found = re.fullmatch(r'alertname(=~|=)"([A-Za-z|]+)"', matcher)
    assert found, f"not an alertname matcher: {matcher}"
    return set(found[2].split("|")) if found[1] == "=~" else {found[2]}


def documented_inhibitions() -> list[tuple[str, set[str], list[str]]]:
    """The rows of the runbook's Inhibitions table: (source, silenced alerts, equal labels)."""
    section = RUNBOOK.read_text().split("\n## Inhibitions\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue  # prose, the header and its rule

        def names(cell: str) -> list[str]:
            return re.findall(r"`([^`]+)`", cell)

        [source] = names(cells[0])
        rows.append((source, set(names(cells[1])), names(cells[2])))
    return rows


# ----------------------------------------------------------------------------- amtool


def test_amtool_accepts_the_config(amtool: Path) -> None:
    checked = subprocess.run([str(amtool), "check-config", str(CONFIG)], capture_output=True,
                             text=True, timeout=60, cwd=ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(("labels", "receiver"), ROUTES)
def test_each_alert_reaches_its_receiver(amtool: Path, labels: list[str], receiver: str) -> None:
    routed = route_test(amtool, receiver, labels)
    assert routed.returncode == 0, routed.stdout + routed.stderr
    assert routed.stdout.strip() == receiver


def test_a_wrong_receiver_fails_the_route_test(amtool: Path) -> None:
    routed = route_test(amtool, "tickets", ["alertname=PerfdRegressionConfirmed",
                                            "severity=page", "confidence=HIGH"])
    assert routed.returncode == 1, routed.stdout + routed.stderr
    assert routed.stdout.splitlines()[0] == "oncall-page"


def test_every_rule_reaches_the_receiver_of_its_severity(amtool: Path) -> None:
    """Each alerting rule, with its own labels and a budget owner without a route."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        severity = rule["labels"]["severity"]
        labels = [f"alertname={rule['alert']}", "machine=bench-01", "suite=example",
                  "owner=nobody", *(f"{k}={v}" for k, v in rule["labels"].items())]
        routed = route_test(amtool, SEVERITY_RECEIVER[severity], labels)
        assert routed.returncode == 0, f"{rule['alert']} ({severity}): {routed.stdout}"


# ----------------------------------------------------------------------------- the YAML


def test_the_inhibit_rules_are_the_documented_ones() -> None:
    configured = []
    for rule in config()["inhibit_rules"]:
        [source] = rule["source_matchers"]
        [target] = rule["target_matchers"]
        [source_name] = matcher_alertnames(source)
        configured.append((source_name, matcher_alertnames(target), rule["equal"]))
    assert configured == documented_inhibitions()
    assert configured == [
        ("PerfdDown", {"PerfdRegressionConfirmed", "PerfdBudgetExceeded"}, ["machine"]),
        ("PerfdMachineDrifting", {"PerfdRegressionConfirmed"}, ["machine", "suite"]),
    ]


def test_every_alert_name_in_the_config_is_a_rule() -> None:
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"]}
    loaded = config()
    matchers = [m for route in loaded["route"]["routes"] for m in route["matchers"]]
    matchers += [m for rule in loaded["inhibit_rules"]
                 for m in (*rule["source_matchers"], *rule["target_matchers"])]
    named = set().union(*(matcher_alertnames(m) for m in matchers if m.startswith("alertname")))
    assert named and named <= alerts


def test_webhook_receivers_point_at_the_test_receiver_and_send_resolved() -> None:
    receivers = {receiver["name"]: receiver for receiver in config()["receivers"]}
    assert {"default-webhook", "oncall-page", "tickets", "info", "perf-team"} <= set(receivers)
    for name, receiver in receivers.items():
        for hook in receiver.get("webhook_configs", []):
            assert hook["url"] == f"http://127.0.0.1:9099/{name}"
            assert hook["send_resolved"] is True, name
            # Alertmanager 0.25 refuses both
            assert not {"timeout", "url_file"} & set(hook), name
        for kind in ("email_configs", "slack_configs"):
            for notifier in receiver.get(kind, []):
                assert notifier["send_resolved"] is True, f"{name} {kind}"
    assert receivers["perf-team"].get("email_configs") and receivers["perf-team"].get(
        "slack_configs")


def test_the_root_route_catches_all_and_groups_by_alert_machine_and_suite() -> None:
    route = config()["route"]
    assert route["receiver"] == "default-webhook"
    assert "matchers" not in route
    assert route["group_by"] == ["alertname", "machine", "suite"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert key in route
