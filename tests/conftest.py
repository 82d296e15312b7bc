"""Fixtures shared by every test tree: real git repositories, perfd run in-process, and a
real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import MISSING, PostgresCluster, server_bindir

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@pytest.fixture(scope="session")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The bundled example project as a git repo: (path, {"base": sha, "slow": sha})."""
    dest = tmp_path_factory.mktemp("demo") / "repo"
    script = Path(__file__).parents[1] / "examples" / "make-demo-repo.sh"
    out = subprocess.run([str(script), str(dest)], check=True, capture_output=True, text=True)
    shas = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    return dest, shas


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run perfd in-process: returns (exit code, stdout, stderr)."""
    from perfd.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL server of this session (started when a test first needs it); its
    ``create_database()`` gives a new empty database. Fails, never skips, without the
    server binaries."""
    bindir = server_bindir()
    if bindir is None:
        pytest.fail(MISSING, pytrace=False)
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
    except RuntimeError as exc:
        cluster.stop()
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool from Debian's prometheus package; fails, never skips, without it."""
    return _debian_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> Path:
    """amtool from Debian's prometheus-alertmanager package; fails, never skips, without it."""
    return _debian_tool("amtool", "prometheus-alertmanager")


def _debian_tool(name: str, package: str) -> Path:
    from tests.prometheus_stack import binary

    try:
        return Path(binary(name, package))
    except AssertionError as missing:
        pytest.fail(str(missing), pytrace=False)
