"""perfd's Prometheus alerting rules: promtool checks them, runs their unit tests and checks
the example configuration; the rules hold to the project's conventions (for:, severity, the
annotations, runbook anchors that exist in docs/alerts.md) and every alert is tested firing
and not firing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules" / "perfd.rules.yml"
RULE_TESTS = ROOT / "prometheus" / "tests" / "perfd.rules.test.yml"
CONFIG = ROOT / "prometheus" / "prometheus.yml"
RUNBOOK = ROOT / "docs" / "alerts.md"

SEVERITIES = {"page", "ticket", "info"}
ANNOTATIONS = {"summary", "description", "runbook_url", "dashboard"}
RUNBOOK_URL = re.compile(r"^\{\{ \$labels\.perfd_url \}\}/docs/alerts\.md#(?P<anchor>[a-z0-9_-]+)$")
EVIDENCE_URL = ("{{ $labels.perfd_url }}/api/v1/evidence?suite={{ $labels.suite | urlquery }}"
                "&benchmark={{ $labels.benchmark | urlquery }}"
                "&metric={{ $labels.metric | urlquery }}")
# The families whose series are one suite x benchmark x metric: their alerts link the evidence.
SERIES_FAMILIES = ("perfd_alert_active", "perfd_alert_change_ratio", "perfd_budget_ok")
DASHBOARDS = {"/d/perfd-trends", "/d/perfd-overview", "/d/perfd-health"}



def run_promtool(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def alerting_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the rules file, in order."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text: lowercase, punctuation
    dropped, spaces to '-', '-1', '-2', ... for repeats (code blocks skipped)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_code or heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


# ----------------------------------------------------------------------------- promtool


def test_promtool_accepts_the_rules(promtool: Path) -> None:
    checked = run_promtool(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rule_unit_tests_pass(promtool: Path) -> None:
    tested = run_promtool(promtool, "test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_wrong_expectation_fails_the_rule_unit_tests(promtool: Path, tmp_path: Path) -> None:
    """The unit tests compare what they say: one changed annotation fails them."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["rule_files"] = [str(RULES)]
    firing = next(case for test in tests["tests"] for case in test["alert_rule_test"]
                  if case["exp_alerts"])
    firing["exp_alerts"][0]["exp_annotations"]["summary"] += " (changed)"
    tampered = tmp_path / "tampered.test.yml"
    tampered.write_text(yaml.safe_dump(tests, sort_keys=False))
    tested = run_promtool(promtool, "test", "rules", str(tampered))
    assert tested.returncode == 1, tested.stdout + tested.stderr
    assert "(changed)" in tested.stdout + tested.stderr


def test_promtool_accepts_the_example_config(promtool: Path) -> None:
    """The example scrape/alerting configuration, rule file included."""
    checked = run_promtool(promtool, "check", "config", str(CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_example_config_labels_its_target_with_machine_and_url() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["rules/perfd.rules.yml"]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "perfd"
    for target in job["static_configs"]:
        assert set(target["labels"]) >= {"machine", "perfd_url"}, target


# ----------------------------------------------------------------------------- conventions


def test_every_rule_has_for_severity_and_the_annotations() -> None:
    rules = alerting_rules()
    assert rules
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: no for:"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        missing = ANNOTATIONS - set(rule.get("annotations", {}))
        assert not missing, f"{name}: missing annotations {sorted(missing)}"
        assert rule["annotations"]["dashboard"] in DASHBOARDS, name


def test_alerts_on_one_series_link_its_evidence() -> None:
    for rule in alerting_rules():
        on_series = any(family in rule["expr"] for family in SERIES_FAMILIES)
        if on_series:
            assert rule["annotations"].get("evidence_url") == EVIDENCE_URL, rule["alert"]


def test_every_runbook_url_points_at_a_heading_of_the_runbook() -> None:
    anchors = github_anchors(RUNBOOK.read_text())
    for rule in alerting_rules():
        found = RUNBOOK_URL.match(rule["annotations"]["runbook_url"])
        assert found, f"{rule['alert']}: runbook_url {rule['annotations']['runbook_url']!r}"
        assert found["anchor"] in anchors, f"{rule['alert']}: no heading #{found['anchor']}"


def test_github_anchors_follow_githubs_rules() -> None:
    text = "# perfd alerts: the runbook\n```\n# not a heading\n```\n## Use `perfd`\n## Use perfd\n"
    assert github_anchors(text) == {"perfd-alerts-the-runbook", "use-perfd", "use-perfd-1"}


def test_every_alert_and_severity_is_tested_firing_and_not_firing() -> None:
    """Each alert name has a case with exp_alerts: [] and each (alert, severity) of the
    rules fires in some case with exactly that severity."""
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test["alert_rule_test"]]
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    fired = {(case["alertname"], alert["exp_labels"]["severity"])
             for case in cases for alert in case["exp_alerts"]}
    wanted = {(rule["alert"], rule["labels"]["severity"]) for rule in alerting_rules()}
    assert wanted - fired == set(), "never tested firing"
    assert {name for name, _ in wanted} - quiet == set(), "never tested not firing"
    assert {name for name, _ in fired} <= {name for name, _ in wanted}, "tests of unknown alerts"


def test_the_rule_tests_use_series_with_the_target_labels() -> None:
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for series in test["input_series"]:
            for label in ("job", "instance", "machine", "perfd_url"):
                assert f'{label}="' in series["series"], series["series"]
