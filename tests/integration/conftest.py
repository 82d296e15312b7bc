"""Suites whose 'build' installs a fake harness, over a tiny real git repository."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import git

FAKE = Path(__file__).parent.parent / "fixtures" / "fake_harness.py"
def version_repo(repo: Path, commits: int) -> list[str]:
    """A new repository at ``repo`` whose commit i writes version.txt = i (what the fake
    harness keys a speed by); returns the commits' ids, oldest first."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    shas = []
    for i in range(commits):
        (repo / "version.txt").write_text(f"{i}\n")
        git(repo, "add", "version.txt")
        git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", f"commit {i}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    return shas


@pytest.fixture
def tiny_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """A repository with two commits; returns (path, [sha1, sha2])."""
    repo = tmp_path / "repo"
    return repo, version_repo(repo, 2)


SUITE = """\
name: fake
repository: {repo}
build:
  steps:
    - argv: [cp, "{fake}", "${{PERFD_BUILD_DIR}}/bench"]
{extra_steps}harness:
  binary: "${{PERFD_BUILD_DIR}}/bench"
defaults:
  warmup: 0
  samples: 4
  min_time_s: 0.001
  repetitions: 3
  timeout_s: {timeout}
benchmarks:
  - name: fake/one
  - name: fake/two
    metrics: [time, throughput]
"""


DAEMON_SUITE = """\
name: {name}
repository: {repo}
branches: [main]
build:
  steps:
    - argv: [cp, "{fake}", "${{PERFD_BUILD_DIR}}/bench"]
{extra_steps}harness:
  binary: "{python}"
  args: ["-S", "${{PERFD_BUILD_DIR}}/bench"]
defaults:
  warmup: 0
  samples: 3
  min_time_s: 0.001
  repetitions: {repetitions}
  timeout_s: 20
tiers: {tiers}
benchmarks:
  - name: fake/one
"""


def daemon_suite(repo: Path | str, *, name: str = "fake", repetitions: int = 3,
                 tiers: str = "[commit, nightly]", extra_steps: str = "") -> str:
    """The suite the daemon tests and benchmarks run: one benchmark of the fake harness, run by
    this Python, built by copying it (``extra_steps``: more build steps, YAML list items)."""
    return DAEMON_SUITE.format(name=name, repo=repo, fake=FAKE, python=sys.executable,
                               repetitions=repetitions, tiers=tiers, extra_steps=extra_steps)


@pytest.fixture
def workspace(tmp_path: Path, tiny_repo: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch):
    """A working directory with suites/, a daemon file and its database; returns a helper."""
    repo, shas = tiny_repo
    work = tmp_path / "work"
    (work / "suites").mkdir(parents=True)
    (work / "perfd.yaml").write_text("machine_id: test-machine\ndata_dir: state\n")
    monkeypatch.chdir(work)
    monkeypatch.delenv("PERFD_CONFIG", raising=False)

    class Workspace:
        path = work
        db_path = work / "state" / "perfd.db"
        commits = shas
        repo_path = repo

        def suite(self, extra_steps: str = "", timeout: float = 10, name: str = "fake") -> Path:
            text = SUITE.format(repo=repo, fake=FAKE, extra_steps=extra_steps, timeout=timeout)
            path = work / "suites" / f"{name}.yaml"
            path.write_text(text.replace("name: fake", f"name: {name}", 1))
            return path

        def count(self, table: str, where: str = "") -> int:
            engine = sa.create_engine(f"sqlite:///{self.db_path}")
            with engine.connect() as conn:
                return conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one()

        def rows(self, sql: str) -> list[tuple]:
            engine = sa.create_engine(f"sqlite:///{self.db_path}")
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql))]

    return Workspace()
