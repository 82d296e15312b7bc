"""The CI examples in examples/ci: each file's structure, and the one `perfd gate` command
line they all run, run the way GitHub Actions runs its step (bash -e, the script verbatim)
against a temporary repository: the gate scenario's commit 5 (request/parse 15% slower)
against its merge base with main, then again with the override a label gives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.gate_scenario import GateScenario, make_scenario

ROOT = Path(__file__).parents[2]
CI = ROOT / "examples" / "ci"
KNOWN_ACTIONS = {"actions/checkout", "actions/upload-artifact", "actions/github-script"}


def gate_command(script: str) -> str:
    """The `perfd gate ...` command line of a shell script, continuation lines joined and
    whitespace normalised."""
    joined = script.replace("\\\n", " ")
    found = [line.strip() for line in joined.splitlines() if line.strip().startswith("perfd gate")]
    assert len(found) == 1, found
    return " ".join(found[0].split())


def github() -> dict[str, Any]:
    return yaml.safe_load((CI / "github-actions.yml").read_text())


def github_gate_step() -> dict[str, Any]:
    steps = github()["jobs"]["gate"]["steps"]
    (step,) = [s for s in steps if "perfd gate" in s.get("run", "")]
    return step


def gitlab() -> dict[str, Any]:
    return yaml.safe_load((CI / ".gitlab-ci.yml").read_text())


def jenkins_scripts() -> list[str]:
    return re.findall(r"sh '''(.*?)'''", (CI / "Jenkinsfile").read_text(), re.DOTALL)


def test_github_actions_workflow_structure():
    doc = github()
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert "pull_request" in on
    job = doc["jobs"]["gate"]
    assert job["runs-on"] == ["self-hosted", "perf"]
    assert {"PERFD_SUITE", "PERFD_CURRENT", "PERFD_TARGET", "PERFD_OUT"} <= set(job["env"])
    uses = [s["uses"] for s in job["steps"] if "uses" in s]
    for action in uses:  # well-known actions, pinned by a version tag
        name, _, tag = action.partition("@")
        assert name in KNOWN_ACTIONS and re.fullmatch(r"v\d+", tag), action
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # the merge base needs the history
    upload = next(s for s in job["steps"]
                  if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "perfd-gate/"
    assert "--junit \"$PERFD_OUT/junit.xml\"" in github_gate_step()["run"]


def test_gitlab_ci_structure():
    job = gitlab()["perf-gate"]
    assert job["tags"] == ["perf"]
    assert job["variables"]["GIT_DEPTH"] == "0"
    assert job["artifacts"]["reports"]["junit"] == "perfd-gate/junit.xml"
    assert job["artifacts"]["when"] == "always"
    assert any("perfd gate" in line for line in job["script"])


def test_jenkinsfile_structure():
    text = (CI / "Jenkinsfile").read_text()
    assert re.search(r"agent\s*\{\s*label 'perf'\s*\}", text)
    assert re.findall(r"stage\('([^']+)'\)", text) == ["Checkout", "Perf gate"]
    assert re.search(r"junit [^\n]*testResults: 'perfd-gate/junit.xml'", text)
    assert text.count("{") == text.count("}")
    assert len([s for s in jenkins_scripts() if "perfd gate" in s]) == 1


def test_every_ci_runs_the_same_gate_command():
    commands = {
        "github": gate_command(github_gate_step()["run"]),
        "gitlab": gate_command(next(s for s in gitlab()["perf-gate"]["script"]
                                    if "perfd gate" in s)),
        "jenkins": gate_command(next(s for s in jenkins_scripts() if "perfd gate" in s)),
    }
    assert len(set(commands.values())) == 1, commands
    command = commands["github"]
    for option in ("--suite", "--current", "--target-branch", "--summary", "--comment",
                   "--junit", "--json", "--repo"):
        assert f" {option} " in f" {command} ", option


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> GateScenario:
    return make_scenario(tmp_path_factory.mktemp("ci"))


def run_github_step(scenario: GateScenario, out: Path, **env: str) -> subprocess.CompletedProcess:
    """The workflow's gate step as GitHub runs it: bash -e, in the checkout, with the job's
    environment (perfd from this virtualenv, the runner's PERFD_CONFIG). Run again, as one
    re-runs a CI job, while it could not measure because other tests kept the machine's CPUs
    busy past the gate's own retries (exit 3, CONTENDED)."""
    for _ in range(3):
        done = _github_step(scenario, out, **env)
        text = (out / "verdict.json").read_text() if (out / "verdict.json").is_file() else ""
        if done.returncode != 3 or "contended" not in (json.loads(text)["reason"] if text
                                                       else ""):
            break
    return done


def _github_step(scenario: GateScenario, out: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PERFD_")}
    environment.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PERFD_CONFIG": str(scenario.config), "PERFD_SUITE": "example",
        "PERFD_CURRENT": scenario.shas[5], "PERFD_TARGET": "main", "PERFD_OUT": str(out),
        "GITHUB_STEP_SUMMARY": str(out.parent / f"{out.name}-step-summary.md"), **env})
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                           github_gate_step()["run"]], cwd=scenario.repo, env=environment,
                          capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_the_ci_command_blocks_the_slowdown_and_an_override_label_passes_it(scenario, tmp_path):
    out = tmp_path / "perfd-gate"
    done = run_github_step(scenario, out)
    verdict = json.loads((out / "verdict.json").read_text())
    assert done.returncode == 1, verdict["reason"]
    assert verdict["schema"] == "perfd-gate/1" and verdict["verdict"] == "BLOCKED"
    assert verdict["baseline"]["commit"] == scenario.shas[4]  # the merge base with main
    assert any(b["benchmark"] == "request/parse" for b in verdict["blockers"])
    summary = (out / "summary.md").read_text()
    assert "request/parse" in summary
    assert (tmp_path / "perfd-gate-step-summary.md").read_text() == summary
    assert (out / "comment.md").read_text().startswith("<!-- perfd-gate:example -->\n")
    junit = ET.parse(out / "junit.xml").getroot()
    assert int(junit.get("failures")) >= 1

    label = "pull request 7 is labelled perf-override"
    out = tmp_path / "perfd-gate-override"
    done = run_github_step(scenario, out, PERFD_OVERRIDE=label)
    verdict = json.loads((out / "verdict.json").read_text())
    assert done.returncode == 0, verdict["reason"]
    assert (verdict["verdict"], verdict["overridden"]) == ("PASS", True)
    assert verdict["override"] == {"reason": label, "source": "flag", "applied": True}
    junit = ET.parse(out / "junit.xml").getroot()
    assert junit.get("failures") == "0" and int(junit.get("skipped")) >= 1
