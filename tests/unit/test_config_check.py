"""check_paths: `perfd check-config PATH...` over files and directories of any kind."""

from __future__ import annotations

import textwrap
from pathlib import Path

from perfd.config import check_paths, detect_kind

FIXTURES = Path(__file__).parent / "fixtures" / "config"
VALID = FIXTURES / "valid"
INVALID = FIXTURES / "invalid"
REPO = Path(__file__).resolve().parents[2]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_files_of_every_kind_have_no_problems() -> None:
    paths = [VALID / "suites", VALID / "budgets.yaml", VALID / "perfd.yaml"]
    assert check_paths(paths, None) == []


def test_kind_detection() -> None:
    assert detect_kind({"name": "x", "benchmarks": []}) == "suite"
    assert detect_kind({"version": 1, "budgets": []}) == "budgets"
    assert detect_kind({"version": 2}) == "budgets"
    assert detect_kind({"machine_id": "m"}) == "daemon"
    assert detect_kind({"storage_url": "sqlite://"}) == "daemon"
    assert detect_kind({"budgets": "budgets.yaml"}) == "daemon"
    assert detect_kind({"services": {}}) is None


def test_each_file_is_checked_as_its_kind(tmp_path: Path) -> None:
    daemon = write(tmp_path, "d.yaml", "data_dir: 3\n")
    budgets = write(
        tmp_path, "b.yaml", "version: 1\nbudgets:\n  - suite: nowhere\n    benchmark: x\n"
    )
    unknown = INVALID / "unknown_kind.yaml"
    assert check_paths([daemon, budgets, unknown], None) == [
        f"{daemon}:1: data_dir: expected a path, got 3",
        f"{budgets}:3: budgets[0].metric: field required",
        f"{budgets}:3: budgets[0].suite: unknown suite 'nowhere'; no suites loaded",
        f"{unknown}:1: cannot tell what kind of perfd file this is (a suite has 'benchmarks', "
        "a budgets file 'budgets', a daemon file 'machine_id', 'data_dir', 'storage_url' or "
        "'suites_dir')",
    ]


def test_budgets_are_checked_against_suites_dir() -> None:
    budgets = VALID / "budgets.yaml"
    assert check_paths([budgets], VALID / "suites") == []
    assert check_paths([budgets], None)[0] == (
        f"{budgets}:3: budgets[0].suite: unknown suite 'example'; no suites loaded"
    )


def test_budgets_use_the_suites_dir_of_a_daemon_file_checked_with_them() -> None:
    assert check_paths([VALID / "perfd.yaml", VALID / "budgets.yaml"], None) == []


def test_a_directory_is_read_non_recursively_and_every_file_reported(tmp_path: Path) -> None:
    for name in ("several_errors.yaml", "budgets_v2.yaml", "duplicate_key.yaml"):
        (tmp_path / name).write_text((INVALID / name).read_text())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ignored.yaml").write_text("- not even a mapping\n")
    (tmp_path / "README").write_text("not yaml")
    problems = check_paths([tmp_path], None)
    files = [p.split(":")[0] for p in problems]
    assert files == sorted(files)  # grouped per file, files in name order
    assert set(files) == {
        str(tmp_path / "budgets_v2.yaml"),
        str(tmp_path / "duplicate_key.yaml"),
        str(tmp_path / "several_errors.yaml"),
    }
    assert len(problems) == 1 + 1 + 7


def test_duplicate_suite_names_and_broken_suites(tmp_path: Path) -> None:
    suite = textwrap.dedent(
        """\
        name: {name}
        repository: .
        build: {{steps: [{{argv: [make]}}]}}
        harness: {{binary: b}}
        benchmarks: [{{name: a}}]
        """
    )
    first = write(tmp_path, "one.yaml", suite.format(name="same"))
    second = write(tmp_path, "two.yaml", suite.format(name="same"))
    broken = write(tmp_path, "three.yaml", suite.format(name="broken") + "samples: 2\n")
    budgets = write(
        tmp_path,
        "budgets.yaml",
        """\
        version: 1
        budgets:
          - {suite: broken, benchmark: a, metric: time, max_value: 1}
          - {suite: same, benchmark: b, metric: time, max_value: 1}
        """,
    )
    assert check_paths([first, second, broken, budgets], None) == [
        f"{second}:1: name: duplicate suite name 'same' (also defined in {first})",
        f"{broken}:6: samples: unknown key 'samples' (known keys: name, description, repository, "
        "branches, build, harness, defaults, tiers, benchmarks)",
        # the broken suite's own problem is listed above; its budget is not judged
        f"{budgets}:4: budgets[1].benchmark: 'b' matches no benchmark of suite 'same' (it has: a)",
    ]


def test_broken_suite_in_suites_dir_is_named_on_the_budget(tmp_path: Path) -> None:
    suites_dir = tmp_path / "suites"
    suites_dir.mkdir()
    write(suites_dir, "core.yaml", "name: core\nbenchmarks: []\n")
    budgets = write(
        tmp_path,
        "budgets.yaml",
        "version: 1\nbudgets:\n  - {suite: core, benchmark: a, metric: time, max_value: 1}\n",
    )
    assert check_paths([budgets], suites_dir) == [
        f"{budgets}:3: budgets[0].suite: suite 'core' cannot be checked: "
        f"{suites_dir / 'core.yaml'} has problems"
    ]


def test_missing_path(tmp_path: Path) -> None:
    assert check_paths([tmp_path / "nope"], None) == [
        f"{tmp_path / 'nope'}: no such file or directory"
    ]


def test_repository_example_files_are_valid() -> None:
    paths = [REPO / "perfd.example.yaml", REPO / "budgets.yaml", REPO / "suites"]
    assert check_paths([p for p in paths if p.exists()], REPO / "suites") == []
