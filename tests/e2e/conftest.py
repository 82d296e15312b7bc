"""The example project served by a real daemon: shared by the end-to-end tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import git
from tests.daemon_process import DaemonProcess, daemon_workdir, wait_for
from tests.example_suite import write_example_suite

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


@dataclass
class ExampleDaemon:
    """A git repository of the example project (main at the base commit; ``shas`` has
    "base" and "slow", a real 10% slowdown of request/parse), perfd configured on it with
    its reference at the base and a budget on request/parse, and the daemon once started."""

    repo: Path
    work: Path
    shas: dict[str, str]
    port: int
    daemon: DaemonProcess | None = None

    def start(self) -> DaemonProcess:
        self.daemon = DaemonProcess(self.work, self.port)
        self.daemon.wait_ready()
        return self.daemon

    def push(self, name: str, before: str | None = None) -> dict:
        """A signed push webhook moving main to ``shas[name]``; returns the answer."""
        assert self.daemon is not None
        git(self.repo, "update-ref", "refs/heads/main", self.shas[name])
        status, body = self.daemon.webhook({
            "ref": "refs/heads/main", "after": self.shas[name],
            "before": self.shas[before] if before else "0" * 40,
            "commits": [{"id": self.shas[name]}], "repository": {"clone_url": str(self.repo)}})
        assert status == 202, body
        return body

    def wait_jobs(self, what: str, kind: str, commit: str, timeout_s: float = 600) -> None:
        """Until a ``kind`` job of ``commit`` is DONE; any FAILED job fails the test."""
        assert self.daemon is not None
        daemon = self.daemon

        def done() -> bool:
            jobs = daemon.jobs()
            failed = [j for j in jobs if j["state"] == "FAILED"]
            assert not failed, failed
            return any(j["kind"] == kind and j["commit"] == commit and j["state"] == "DONE"
                       for j in jobs)

        wait_for(what, done, timeout_s, 1.0)


@pytest.fixture
def example_daemon(tmp_path, cli, monkeypatch) -> Iterator[ExampleDaemon]:
    repo = tmp_path / "repo"
    out = subprocess.run([str(ROOT / "examples" / "make-demo-repo.sh"), str(repo)], check=True,
                         capture_output=True, text=True).stdout
    shas = dict(line.split() for line in out.splitlines() if line.strip())
    git(repo, "update-ref", "refs/heads/main", shas["base"])  # the slowdown is not pushed yet
    work = tmp_path / "work"
    write_example_suite(work / "suites", repo, tiers={"commit": {"repetitions": 8}})
    (work / "budgets.yaml").write_text(BUDGET)
    port = daemon_workdir(work, monkeypatch, poll="{interval_s: 0}")
    assert cli("reference", "set", "--suite", "example", "--commit", shas["base"],
               "--reason", "the release")[0] == 0
    example = ExampleDaemon(repo, work, shas, port)
    yield example
    if example.daemon is not None and example.daemon.proc.poll() is None:
        example.daemon.stop()
    shutil.rmtree(work / "state" / "builds", ignore_errors=True)
