"""The gate's real scenario: the example project as a git repository of 8 commits, and a
perfd configuration with small workloads to gate it with.

Commits (branch ``work``; ``main`` points at commit 4, so the merge base of commits 5-8
with main is commit 4):

    1 minilib: initial import
    2 docs: a README note                       (same code as 1)
    3 crc32: unfinished rewrite                  does not build (a syntax error in src/crc32.c)
    4 crc32: back out the unfinished rewrite     builds again (same code as 1)
    5 request: parse 15% slower                  MINILIB_SLOW_PARSE_PCT 0 -> 15
    6 docs: the stricter parser                  carries a Perf-Override trailer
    7 tests: a note on the parser
    8 docs: changelog
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import git
from tests.example_suite import write_example_suite

ROOT = Path(__file__).parents[2]
MINILIB = ROOT / "examples" / "minilib"
OVERRIDE_REASON = "the stricter parser costs ~15% in request/parse; accepted by team-request"

# Small workloads (2-core machine): short samples; pairs are capped on the command line.
SIZES = {"samples": 8, "min_time_s": 0.005, "repetitions": 3}
BUDGETS = """\
version: 1
budgets:
  - suite: example
    benchmark: "request/*"
    metric: time
    max_regression_pct: 5.0
    confidence: medium
    owner: team-request
  # breaks on every run: shown as WARN, never blocks
  - suite: example
    benchmark: request/parse
    metric: time
    statistic: p99
    max_value: 1ns
    confidence: low
    action: warn
    owner: team-request
"""


@dataclass(frozen=True)
class GateScenario:
    repo: Path
    shas: dict[int, str]  # commit number (1..8) -> id
    config: Path  # the daemon file (machine id, data dir, suites, budgets)
    suites: Path


def _commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def make_repo(dest: Path) -> dict[int, str]:
    """The 8 commits at dest (see the module docstring); returns their ids."""
    shutil.copytree(MINILIB, dest, ignore=shutil.ignore_patterns("build", "*.o", "*.a", "*.d"))
    git(dest, "init", "-q", "-b", "work")
    shas = {1: _commit(dest, "minilib: initial import")}
    _append(dest / "README.md", "\nRun the tests with `make check`.\n")
    shas[2] = _commit(dest, "docs: a README note")
    crc = dest / "src" / "crc32.c"
    original = crc.read_text()
    crc.write_text(original + "\nthis is not C;\n")
    shas[3] = _commit(dest, "crc32: unfinished rewrite")
    crc.write_text(original)
    shas[4] = _commit(dest, "crc32: back out the unfinished rewrite")
    tuning = dest / "include" / "minilib_tuning.h"
    text = tuning.read_text()
    assert "#define MINILIB_SLOW_PARSE_PCT 0\n" in text
    tuning.write_text(text.replace("#define MINILIB_SLOW_PARSE_PCT 0\n",
                                   "#define MINILIB_SLOW_PARSE_PCT 15\n"))
    shas[5] = _commit(dest, "request: parse 15% slower")
    _append(dest / "README.md", "\nThe parser validates every header strictly.\n")
    shas[6] = _commit(dest, f"docs: the stricter parser\n\nPerf-Override: {OVERRIDE_REASON}")
    _append(dest / "tests" / "test_minilib.c", "\n/* the parser is strict on purpose */\n")
    shas[7] = _commit(dest, "tests: a note on the parser")
    _append(dest / "README.md", "\n## Changes\n\n- stricter parser\n")
    shas[8] = _commit(dest, "docs: changelog")
    git(dest, "update-ref", "refs/heads/main", shas[4])
    return shas


def make_config(work: Path, repo: Path) -> tuple[Path, Path]:
    """perfd.yaml, suites/ (the example suite, smaller, on ``repo``) and budgets.yaml in
    work; returns (the daemon file, the suites dir)."""
    suites = work / "suites"
    write_example_suite(suites, repo, defaults=SIZES)
    (work / "budgets.yaml").write_text(BUDGETS)
    config = work / "perfd.yaml"
    config.write_text("machine_id: gate-test\ndata_dir: state\nsuites_dir: suites\n"
                      "budgets: budgets.yaml\n")
    return config, suites


def make_scenario(base: Path) -> GateScenario:
    repo = base / "repo"
    shas = make_repo(repo)
    config, suites = make_config(base / "work", repo)
    return GateScenario(repo, shas, config, suites)
