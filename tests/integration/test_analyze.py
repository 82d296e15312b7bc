"""`perfd analyze` through the real CLI: a real git history measured with the fake harness.

The fake harness reads $FAKE_HARNESS_OFFSET (ns added to every sample) and adds a small
seeded per-process jitter, so the test chooses the level of each commit.
"""

from __future__ import annotations

import json
import random
import sys

import pytest
import sqlalchemy as sa

from perfd.errors import EXIT_NEGATIVE, EXIT_OK, EXIT_REPOSITORY
from perfd.store import AlertDraft, ResultStore
from tests.conftest import git
from tests.integration.conftest import FAKE

# The harness is the fake script run by this interpreter directly (-S: stdlib only), which
# starts several times faster than through a `python3` shim: the runs here are most of the time.
SUITE = """\
name: ranged
repository: {repo}
build:
  steps:
    - argv: [cp, "{fake}", "${{PERFD_BUILD_DIR}}/bench"]
harness:
  binary: "{python}"
  args: ["-S", "${{PERFD_BUILD_DIR}}/bench"]
defaults:
  warmup: 0
  samples: 3
  min_time_s: 0.001
  repetitions: 5
  timeout_s: 10
benchmarks:
  - name: fake/one
    metrics: [time, throughput]
"""

# The change-point detector needs 5 runs before a step and 3 after it; on fewer than about a
# dozen runs a step also inflates its estimate of the noise, so the step test uses 12 commits.
N_COMMITS = 12


@pytest.fixture
def history(workspace, cli, monkeypatch, tmp_path):
    """A repository of N_COMMITS commits ("commit 0" .. "commit 11") and a suite over it.

    ``measure({i: level})`` runs `perfd run` at commit i with its samples shifted by level ns
    plus a seeded jitter (about 101 + level ns per run); ``analyze(a, b, ...)`` runs `perfd
    analyze` over commit a..commit b."""
    repo = workspace.repo_path
    shas = list(workspace.commits)
    for i in range(len(shas), N_COMMITS):
        (repo / "version.txt").write_text(f"{i}\n")
        git(repo, "commit", "-q", "-a", "-m", f"commit {i}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    (workspace.path / "suites" / "ranged.yaml").write_text(
        SUITE.format(repo=repo, fake=FAKE, python=sys.executable))
    monkeypatch.setenv("FAKE_HARNESS_JITTER", "0.2")
    monkeypatch.setenv("FAKE_HARNESS_SEED", "11")
    monkeypatch.setenv("FAKE_HARNESS_COUNTER", str(tmp_path / "processes"))
    rng = random.Random(5)

    class History:
        commits = shas
        short = [sha[:12] for sha in shas]

        def measure(self, levels: dict[int, float]) -> None:
            for i, level in sorted(levels.items()):
                monkeypatch.setenv("FAKE_HARNESS_OFFSET", f"{level + rng.gauss(0, 0.2):.3f}")
                code, _, err = cli("-q", "run", "--suite", "ranged", "--commit", shas[i])
                assert code == EXIT_OK, err

        def analyze(self, base: int, head: int, *extra: str) -> tuple[int, str, str]:
            return cli("-q", "analyze", "--suite", "ranged",
                       "--range", f"{shas[base]}..{shas[head]}", *extra)

        def store(self) -> ResultStore:
            return ResultStore.open(f"sqlite:///{workspace.db_path}")

    return History()


def test_a_step_is_a_worse_change_point_at_its_commit(history, tmp_path):
    history.measure({i: 0.0 if i < 6 else 10.0 for i in range(N_COMMITS)})
    report_file = tmp_path / "reports" / "analysis.md"
    code, out, err = history.analyze(0, 11, "--output", str(report_file))
    assert code == EXIT_NEGATIVE, err
    assert report_file.read_text() == out
    c5, c6 = history.short[5], history.short[6]
    assert out.startswith(f"## :red_circle: perfd analyze: suite `ranged` on `test-machine`, "
                          f"`{history.short[0]}..{history.short[11]}`")
    assert ("**REGRESSED: 2 of 2 series got worse; start vs end: 2 REGRESSED; change points: "
            "2 worse, 0 better**") in out
    # time went up and throughput down: both worse, both between commit 5 and commit 6
    for name in ("fake/one (time)", "fake/one (throughput)"):
        step = next(line for line in out.splitlines() if line.startswith(f"- **{name}**"))
        assert "**worse**" in step and "beyond the threshold" in step
        assert step.endswith(f"between `{c5}` commit 5 and `{c6}` commit 6")
    (marked,) = [line for line in out.splitlines() if line.startswith(f"| 6 | `{c6}` |")]
    assert "| commit 6 | 1 | **<- fake/one (time) +" in marked
    assert "% worse**; **<- fake/one (throughput) -" in marked
    assert sum("**<-" in line for line in out.splitlines()) == 1  # no other commit is marked
    assert (f"confirm with `perfd compare --suite ranged --baseline {c5} --current {c6} "
            "--interleave`") in out
    assert "| fake/one | time | 12 | 12 | 101 ns | 111 ns | +10." in out

    code, out, err = history.analyze(0, 11, "--format", "json")
    assert code == EXIT_NEGATIVE, err
    data = json.loads(out)
    assert data["format"] == "perfd-analyze-report" and data["version"] == 1
    assert data["verdict"] == "REGRESSED"
    by_name = {(s["benchmark"], s["metric"]): s for s in data["series"]}
    for name, shift in ((("fake/one", "time"), 100 * 10 / 101),
                        (("fake/one", "throughput"), 100 * (101 / 111 - 1))):
        series = by_name[name]
        assert series["runs"] == N_COMMITS and series["commits"] == N_COMMITS
        assert series["status"] == "REGRESSED" and series["alert_worthy"]
        (step,) = series["change_points"]
        assert step["before"]["commit"] == history.commits[5]
        assert step["after"]["commit"] == history.commits[6]
        assert step["suspects"] == 1
        assert step["direction"] == "worse" and step["beyond_threshold"]
        assert step["shift_pct"] == pytest.approx(shift, abs=1.0)
    assert [c["runs"] for c in data["commits"]] == [1] * N_COMMITS
    assert data["commits"][0]["base"] and data["commits"][0]["subject"] == "commit 0"


def test_a_flat_series_has_no_change_points(history):
    history.measure({i: 0.0 for i in range(9)})
    code, out, err = history.analyze(0, 8)
    assert code == EXIT_OK, err
    assert "**UNCHANGED: 2 series; start vs end: 2 UNCHANGED; change points: 0 worse, 0 better**" in out
    assert "| fake/one | time | 9 | 9 | 101 ns | 101 ns | " in out
    assert out.count("| UNCHANGED | - | 0 |") == 2
    assert "### Change points\n\nnone\n" in out
    assert out.endswith("### Recommendations\n\n- no action needed\n")


def test_one_measured_commit_is_insufficient_data_never_unchanged(history, workspace):
    history.measure({2: 0.0, 3: 0.0})
    # an interleaved compare run is no history: with it left out, one commit has data
    engine = sa.create_engine(f"sqlite:///{workspace.db_path}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE benchmark_runs SET tier = 'compare' WHERE commit_sha = :sha"),
                     {"sha": history.commits[3]})
    store = history.store()
    key = next(k for k in store.series_keys(suite="ranged") if k.metric == "time")
    (run,) = store.runs_for_commit("ranged", history.commits[2], "test-machine")
    alert_id = store.open_alert(AlertDraft(
        kind="code", series=key, baseline_commit=history.commits[1],
        first_bad_commit=history.commits[2], baseline_run_id=None, last_run_id=run.id,
        change_pct=7.5, confidence="HIGH", p_value=0.001, reason="slower"))

    code, out, err = history.analyze(1, 5)
    assert code == EXIT_OK, err
    assert "**INCONCLUSIVE: 2 series; start vs end: 2 INSUFFICIENT_DATA;" in out
    assert "| fake/one | time | 1 | 1 | 101 ns | - | - | INSUFFICIENT_DATA | - | - (<8 runs) |" in out
    assert "runs at 1 commit of the range, need at least 2" in out
    assert "UNCHANGED" not in out
    assert (f"| {alert_id} | fake/one | time | +7.5% | HIGH | `{history.short[2]}` commit 2 "
            "(in range) | OPEN |") in out
    assert f"`perfd alert ack {alert_id}` while investigating" in out
    assert ("too few commits with runs in the range: run `perfd run --suite ranged --commit <sha>` "
            "on more commits of the range (not measured yet: "
            f"{history.short[1]}, {history.short[4]}, {history.short[5]})") in out
    data = json.loads(history.analyze(1, 5, "--format", "json")[1])
    assert {s["status"] for s in data["series"]} == {"INSUFFICIENT_DATA"}
    assert [c["runs"] for c in data["commits"]] == [0, 1, 0, 0, 0]


@pytest.mark.parametrize("make_range, message", [
    (lambda c: "nothex..x", "commit 'nothex' does not exist"),
    (lambda c: f"{c[0]}..{'deadbeef' * 5}", f"commit '{'deadbeef' * 5}' does not exist"),
    (lambda c: f"{c[4]}..{c[1]}", "is not an ancestor of"),
    (lambda c: f"{c[1]}..{c[1]}", "is empty"),
    (lambda c: c[1], "is not BASE..HEAD"),
    (lambda c: f"{c[1]}...{c[4]}", "A...B (symmetric difference) is not supported"),
    (lambda c: f"..{c[4]}", "is not BASE..HEAD"),
])
def test_a_bad_range_is_a_repository_error(history, cli, make_range, message):
    code, out, err = cli("analyze", "--suite", "ranged", "--range", make_range(history.commits))
    assert code == EXIT_REPOSITORY
    assert message in err and out == ""


def test_a_reversed_range_says_so(history, cli):
    c = history.commits
    code, _, err = cli("analyze", "--suite", "ranged", "--range", f"{c[4]}..{c[1]}")
    assert code == EXIT_REPOSITORY
    assert f"{c[4]} ({c[4][:12]}) is not an ancestor of {c[1]}" in err
    assert f"the range is reversed: try --range {c[1]}..{c[4]}" in err
