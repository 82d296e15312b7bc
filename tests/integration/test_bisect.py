"""`perfd bisect` on real C: the example project in a git repository of 8 commits, where
commit 5 makes request/parse 15% slower (MINILIB_SLOW_PARSE_PCT) and commit 3 does not build
(a syntax error that commit 4 fixes). The bisection verifies both ends, skips commit 3,
names commit 5 and records it on the matching alert."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from perfd.store import AlertDraft, ResultStore, SeriesKey
from tests.conftest import git
from tests.example_suite import write_example_suite

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
# Small sizes (a 2-core machine): one benchmark, short samples; lock-step pairs keep the noise
# far below the 15% step, so --min-pairs 8 (the first pair count the signed-rank test can
# decide at, with alpha split over two looks) decides every comparison.
SIZES = {"samples": 8, "min_time_s": 0.005, "repetitions": 3}
BROKEN = "\nint minilib_broken(void) { return }\n"  # a syntax error


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def eight_commits(repo: Path) -> list[str]:
    """examples/minilib in a new repository, 8 commits (index 0 = commit 1)."""
    shutil.copytree(ROOT / "examples" / "minilib", repo,
                    ignore=shutil.ignore_patterns("build", "*.o", "*.a", "*.d"))
    git(repo, "init", "-q", "-b", "main")
    crc = repo / "src" / "crc32.c"
    tuning = repo / "include" / "minilib_tuning.h"
    readme = repo / "README.md"
    shas = [commit(repo, "minilib: initial import")]
    readme.write_text(readme.read_text() + "\nSee include/minilib_tuning.h for the knobs.\n")
    shas.append(commit(repo, "docs: point at the knobs"))
    crc.write_text(crc.read_text() + BROKEN)
    shas.append(commit(repo, "crc32: a helper (does not compile)"))
    edit(crc, BROKEN, "\n")
    shas.append(commit(repo, "crc32: fix the build"))
    edit(tuning, "#define MINILIB_SLOW_PARSE_PCT 0\n", "#define MINILIB_SLOW_PARSE_PCT 15\n")
    shas.append(commit(repo, "request: make parse 15% slower"))
    for i in range(6, 9):
        (repo / "NOTES").write_text(f"note {i}\n")
        shas.append(commit(repo, f"notes: {i}"))
    assert len(shas) == 8
    return shas


@pytest.fixture
def bisect_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    repo = tmp_path / "repo"
    shas = eight_commits(repo)
    work = tmp_path / "work"
    write_example_suite(work / "suites", repo, name="bisect-example", benchmarks=["request/parse"],
                        defaults={**SIZES, "cpus": [max(os.sched_getaffinity(0))]})
    (work / "perfd.yaml").write_text("machine_id: bisect-test\ndata_dir: state\n")
    monkeypatch.chdir(work)
    monkeypatch.delenv("PERFD_CONFIG", raising=False)
    monkeypatch.setenv("PERFD_MACHINE_LOCK", str(work / "machine.lock"))
    return work, shas


def test_bisect_names_commit_5_skipping_commit_3_and_records_it_on_the_alert(bisect_work, cli):
    work, shas = bisect_work
    store = ResultStore.open(f"sqlite:///{work / 'state' / 'perfd.db'}")
    alert_id = store.open_alert(AlertDraft(
        kind="code", series=SeriesKey("bisect-example", "request/parse", "time", "bisect-test",
                                      "cfg-parse"),
        baseline_commit=shas[0], first_bad_commit=shas[7], baseline_run_id=None,
        last_run_id=None, change_pct=15.0, confidence="HIGH", p_value=0.002,
        reason="confirmed by a lock-step A/B; (not all measured: bisect them)"))

    code, out, err = cli("bisect", "--suite", "bisect-example", "--good", shas[0], "--bad",
                         shas[7], "--benchmark", "request/parse", "--min-pairs", "8",
                         "--max-pairs", "12", "--json")
    assert code == 0, err + out
    doc = json.loads(out)
    assert doc["outcome"] == "found", doc["summary"]
    assert doc["first_bad_commit"] == shas[4]  # commit 5
    assert [s["commit"] for s in doc["skipped"]] == [shas[2]]  # commit 3 does not build
    assert doc["ends"]["answer"] == "bad" and doc["ends"]["vs_good"]["change_pct"] > 10
    tested = {s["commit"]: s["answer"] for s in doc["steps"]}
    expected = {sha: "skipped" if i == 2 else "bad" if i >= 4 else "good"
                for i, sha in enumerate(shas)}
    assert tested == {sha: expected[sha] for sha in tested}
    assert tested[shas[4]] == "bad" and tested[shas[2]] == "skipped"
    # commits 1 and 8, the ones tested and the one that failed: each built once, then cached
    assert doc["builds"] == 2 + len(tested)
    assert doc["pairs"] >= 8 * (1 + 2 * (len(tested) - 1))
    assert "bisect: testing" in err and "does not build" in err

    assert doc["alert_id"] == alert_id
    alert, events = store.get_alert(alert_id)
    assert alert.reason.startswith(f"bisected: first bad commit {shas[4]} (request: make parse "
                                   f"15% slower), {doc['builds']} builds, {doc['pairs']} pairs; ")
    assert events[-1].actor == "perfd bisect" and events[-1].to_state == "OPEN"

    # --alert bisects the alert's range and series; one step (commit 5) proves only a range
    code, text, _ = cli("-q", "bisect", "--alert", str(alert_id), "--min-pairs", "8",
                        "--max-pairs", "12", "--max-steps", "1")
    assert code == 1, text
    assert "BISECTION" in text and "request/parse (time)" in text and "RANGE: " in text
    assert "reached the cap of 1 tested commits" in text
    assert f"recorded on alert {alert_id}" in text
    assert store.get_alert(alert_id)[0].reason.startswith("bisected to a range: ")
