"""Build a suite's benchmark binary at one commit, cached by commit + build-config hash."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from perfd.config import SuiteConfig, expand
from perfd.errors import BuildError
from perfd.locks import file_lock
from perfd.model import stable_hash
from perfd.runner.git import Repository
from perfd.runner.harness_src import HARNESS_FILES, harness_dir
from perfd.runner.procs import run_process

MARKER = "perfd-build.json"


@dataclass(frozen=True, slots=True)
class BuiltHarness:
    commit_sha: str
    build_hash: str
    binary: Path
    build_dir: Path
    cached: bool
    variables: Mapping[str, str]  # ${PERFD_*} values for this build (for harness.args)


def _digest_tree(path: Path, h: hashlib._Hash) -> None:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())


def build_inputs_digest(suite: SuiteConfig, variables: Mapping[str, str]) -> str:
    """Hash of everything outside the commit that shapes the binary.

    That is the build steps and environment as written, the harness sources, and every
    file under the suite's directory that a build step names (benchmark .c files kept next
    to the YAML), so editing one of them invalidates the cached build.
    """
    h = hashlib.sha256()
    h.update(json.dumps(suite.build.model_dump(mode="json"), sort_keys=True).encode())
    h.update(json.dumps(suite.harness.model_dump(mode="json"), sort_keys=True).encode())
    for name in HARNESS_FILES:
        h.update((harness_dir() / name).read_bytes())
    suite_dir = Path(variables["PERFD_SUITE_DIR"])
    for step in suite.build.steps:
        for arg in step.argv:
            for token in expand(arg, variables).replace("=", " ").split():
                p = Path(token)
                if p.is_absolute() and p.exists() and p.is_relative_to(suite_dir) and p != suite_dir:
                    _digest_tree(p, h)
    return h.hexdigest()[:16]


class Builder:
    """Builds into ``<builds_dir>/<build_hash>/`` and reuses a finished build."""

    def __init__(self, builds_dir: Path, jobs: int | None = None) -> None:
        self.builds_dir = builds_dir
        self.jobs = jobs or (os.cpu_count() or 1)

    def variables(self, suite: SuiteConfig, sha: str, root: Path) -> dict[str, str]:
        return {
            "PERFD_WORKTREE": str(root / "worktree"),
            "PERFD_BUILD_DIR": str(root / "out"),
            "PERFD_HARNESS": str(harness_dir()),
            "PERFD_SUITE_DIR": str(suite.suite_dir),
            "PERFD_COMMIT": sha,
            "PERFD_JOBS": str(self.jobs),
        }

    def build(self, suite: SuiteConfig, repo: Repository, sha: str) -> BuiltHarness:
        """Check out sha and run the suite's build steps; raise BuildError on any failure."""
        probe = self.variables(suite, sha, self.builds_dir / "probe")
        build_hash = stable_hash({"commit": sha, "inputs": build_inputs_digest(suite, probe)})
        # Another perfd process may be building (or cleaning up) the same key right now.
        with file_lock(self.builds_dir / f"{build_hash}.lock"):
            return self._build_locked(suite, repo, sha, build_hash)

    def _build_locked(self, suite: SuiteConfig, repo: Repository, sha: str,
                      build_hash: str) -> BuiltHarness:
        root = self.builds_dir / build_hash
        variables = self.variables(suite, sha, root)
        binary = Path(expand(suite.harness.binary, variables))
        marker = root / MARKER
        if marker.is_file() and binary.is_file():
            return BuiltHarness(sha, build_hash, binary, root, True, variables)

        # A half-finished build from an interrupted attempt is never reused.
        if root.exists():
            repo.remove_worktree(root / "worktree")
            shutil.rmtree(root, ignore_errors=True)
        (root / "out").mkdir(parents=True)
        repo.worktree(sha, root / "worktree")
        try:
            self._run_steps(suite, variables, root)
            if not binary.is_file() or not os.access(binary, os.X_OK):
                raise BuildError(
                    f"suite {suite.name}: the build finished but the harness binary "
                    f"{binary} does not exist or is not executable (check harness.binary)"
                )
        except BaseException:
            repo.remove_worktree(root / "worktree")
            shutil.rmtree(root, ignore_errors=True)
            raise
        marker.write_text(json.dumps({"commit": sha, "binary": str(binary)}))
        return BuiltHarness(sha, build_hash, binary, root, False, variables)

    def _run_steps(self, suite: SuiteConfig, variables: dict[str, str], root: Path) -> None:
        base_env = {**os.environ, **variables}
        base_env.update({k: expand(v, variables) for k, v in suite.build.env.items()})
        with open(root / "build.log", "w") as log:
            for i, step in enumerate(suite.build.steps, start=1):
                argv = [expand(a, variables) for a in step.argv]
                env = {**base_env, **{k: expand(v, variables) for k, v in step.env.items()}}
                cwd = Path(expand(step.cwd, variables)) if step.cwd else root / "worktree"
                timeout_s = step.timeout_s or suite.build.timeout_s
                where = f"suite {suite.name}: build step {i} ({' '.join(argv)})"
                if not cwd.is_dir():
                    raise BuildError(f"{where}: working directory {cwd} does not exist")
                try:
                    done = run_process(argv, timeout_s=timeout_s, cwd=cwd, env=env)
                except FileNotFoundError:
                    raise BuildError(f"{where}: program {argv[0]!r} not found (is it installed?)") from None
                except PermissionError:
                    raise BuildError(f"{where}: program {argv[0]!r} is not executable") from None
                log.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
                failure = done.describe_failure()
                if failure:
                    tail = done.stderr_tail() or "\n".join(done.stdout.splitlines()[-20:])
                    raise BuildError(f"{where} {failure}\n--- last lines of its output ---\n{tail}")
