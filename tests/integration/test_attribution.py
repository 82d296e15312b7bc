"""Guilty commits: which commits of a range touched a hot function (real git history)."""

from __future__ import annotations

from pathlib import Path

from perfd.evidence.attribution import function_body, suspects_for
from perfd.runner.git import Repository
from tests.conftest import git

SOURCE = """\
#include "tuning.h"
static int helper(int x);
int hot(int x)
{
    if (x > 0) { return helper(x) * SCALE_FACTOR; }
    return 0;
}
int cold(void) { return 1; }
static int helper(int x) { return x + 1; }
"""


def commit(repo: Path, message: str) -> str:
    git(repo, "add", ".")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_function_body_finds_the_definition_not_the_declaration():
    body = function_body(SOURCE, "helper")
    assert body == "helper(int x) { return x + 1; }"
    assert function_body(SOURCE, "hot").endswith("return 0;\n}")
    assert function_body(SOURCE, "missing") is None


def test_suspects_are_commits_that_changed_the_function_or_its_macros(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "tuning.h").write_text("#define SCALE_FACTOR 1\n")
    (repo / "hot.c").write_text(SOURCE)
    base = commit(repo, "import")
    (repo / "hot.c").write_text(SOURCE.replace("return 0;", "return -1;"))
    body_change = commit(repo, "hot: return -1")
    (repo / "hot.c").write_text(SOURCE.replace("return 0;", "return -1;").replace("return 1;", "return 2;"))
    commit(repo, "cold: return 2")
    (repo / "tuning.h").write_text("#define SCALE_FACTOR 3\n")
    macro_change = commit(repo, "tuning: scale by 3")
    (repo / "README").write_text("docs\n")
    head = commit(repo, "docs")
    suspects = suspects_for(Repository(repo), base, head, "hot")
    assert [(s.sha, s.why) for s in suspects] == [
        (body_change, "changed hot in hot.c"),
        (macro_change, "changed SCALE_FACTOR, used by hot"),
    ]
    assert suspects_for(Repository(repo), base, head, "[unknown]") == []


def test_the_demo_knob_commit_is_named_for_the_parser(demo_repo):
    repo, shas = demo_repo
    suspects = suspects_for(Repository(repo), shas["base"], shas["slow"], "minilib_parse_request")
    assert [s.sha for s in suspects] == [shas["slow"]]
    assert "MINILIB_SLOW_PARSE_PCT" in suspects[0].why
    assert suspects_for(Repository(repo), shas["base"], shas["slow"], "minilib_crc32") == []
