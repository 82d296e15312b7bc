"""load_config_set: the daemon file, its suites and budgets validated together into one snapshot."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from perfd.config import (
    ConfigSet,
    DaemonConfig,
    SourceFile,
    check_paths,
    find_suite,
    load_config_set,
)
from perfd.errors import EXIT_CONFIG, ConfigError
from tests.unit.test_config_loader import MINIMAL_SUITE as SUITE

FIXTURES = Path(__file__).parent / "fixtures" / "config"
VALID = FIXTURES / "valid"
INVALID_SET = FIXTURES / "invalid_set"



def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(daemon_path: Path | None, cwd: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_set(daemon_path, cwd=cwd, hostname="bench")
    assert info.value.exit_code == EXIT_CONFIG
    return info.value.problems


@pytest.fixture
def valid() -> ConfigSet:
    return load_config_set(VALID / "perfd.yaml", cwd=FIXTURES, hostname="ignored")


# --------------------------------------------------------------------------- valid tree


def test_valid_tree_loads_daemon_suites_and_budgets(valid: ConfigSet) -> None:
    base = VALID.absolute()
    assert valid.daemon.machine_id == "bench-01"
    assert (valid.machine_id, valid.data_dir) == ("bench-01", base / "state")
    assert valid.storage_url == f"sqlite:///{base}/state/perfd.db"
    assert (valid.suites_dir, valid.budgets_path) == (base / "suites", base / "budgets.yaml")
    assert sorted(valid.suites) == ["example", "storage"]
    assert valid.suites["storage"].benchmark_names() == ("btree/insert", "btree/lookup")
    assert valid.budgets is not None
    assert [(b.suite, b.benchmark, b.metric) for b in valid.budgets.budgets] == [
        ("example", "request/*", "time"),
        ("example", "compute/crc32", "throughput"),
        ("storage", "btree/*", "time"),
    ]


def test_sources_name_every_file_read_with_its_digest(valid: ConfigSet) -> None:
    base = VALID.absolute()
    expected = [
        base / "perfd.yaml",
        base / "suites" / "example.yaml",
        base / "suites" / "storage.yml",
        base / "budgets.yaml",
    ]
    assert [s.path for s in valid.sources] == expected
    for source in valid.sources:
        assert source.sha256 == hashlib.sha256(source.path.read_bytes()).hexdigest()
    assert not valid.changed()


def test_the_snapshot_cannot_be_mutated(valid: ConfigSet) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        valid.budgets = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        valid.suites = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        valid.suites["other"] = valid.suites["example"]  # type: ignore[index]
    with pytest.raises(TypeError):
        del valid.suites["example"]  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        valid.suites["example"].name = "renamed"
    with pytest.raises(ValidationError):
        valid.daemon.machine_id = "other"
    assert isinstance(valid.sources, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        valid.sources[0].sha256 = "0"  # type: ignore[misc]
    assert sorted(valid.suites) == ["example", "storage"]


def test_the_snapshot_does_not_share_the_callers_dict() -> None:
    suites = dict(load_config_set(VALID / "perfd.yaml", cwd=FIXTURES).suites)
    snapshot = ConfigSet(daemon=DaemonConfig.default(FIXTURES), suites=suites, budgets=None)
    suites.clear()
    assert sorted(snapshot.suites) == ["example", "storage"]


def test_relative_daemon_path_is_read_against_cwd() -> None:
    snapshot = load_config_set(Path("perfd.yaml"), cwd=VALID)
    assert snapshot.sources[0].path == VALID.absolute() / "perfd.yaml"
    assert snapshot.suites_dir == VALID.absolute() / "suites"


# --------------------------------------------------------------------------- suite lookup


def test_suite_by_name_file_name_and_path(valid: ConfigSet, tmp_path: Path) -> None:
    assert valid.suite("example") is valid.suites["example"]
    assert valid.suite("storage") is valid.suites["storage"]
    # a path into the snapshot gives the snapshot's suite, not a fresh read
    assert valid.suite(VALID / "suites" / "storage.yml") is valid.suites["storage"]
    assert valid.suite(str(VALID / "suites" / "example.yaml")) is valid.suites["example"]
    outside = write(tmp_path, "extra.yaml", SUITE.format(name="extra"))
    assert valid.suite(outside).name == "extra"
    assert valid.suite(str(outside)).source_path == outside.absolute()


def test_suite_found_by_file_name_before_declared_name(tmp_path: Path) -> None:
    write(tmp_path / "suites", "misc-file.yml", SUITE.format(name="misc"))
    snapshot = load_config_set(None, cwd=tmp_path)
    assert snapshot.suite("misc").name == "misc"
    assert snapshot.suite("misc-file").name == "misc"
    assert snapshot.suite("misc") == find_suite("misc", tmp_path / "suites")


def test_unknown_suite_has_find_suites_message(valid: ConfigSet, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        valid.suite("exampel")
    with pytest.raises(ConfigError) as expected:
        find_suite("exampel", VALID.absolute() / "suites")
    assert str(info.value) == str(expected.value) == (
        f"unknown suite 'exampel' (did you mean 'example'?); suites in "
        f"{VALID.absolute() / 'suites'}: example, storage"
    )
    empty = load_config_set(None, cwd=tmp_path)
    with pytest.raises(ConfigError) as info:
        empty.suite("core")
    assert str(info.value) == f"unknown suite 'core'; suites in {tmp_path / 'suites'}: none"


def test_suite_path_outside_the_snapshot_is_validated(valid: ConfigSet, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", SUITE.format(name="bad") + "    warmup: -1\n")
    with pytest.raises(ConfigError) as info:
        valid.suite(bad)
    assert info.value.problems == [f"{bad}:10: benchmarks[0].warmup: must be >= 0 (got -1)"]


# --------------------------------------------------------------------------- defaults


def test_no_daemon_file_gives_defaults_under_cwd(tmp_path: Path) -> None:
    snapshot = load_config_set(None, cwd=tmp_path, hostname="_bench-07_")
    assert snapshot.daemon == DaemonConfig.default(tmp_path, hostname="_bench-07_")
    assert snapshot.machine_id == "bench-07"
    assert snapshot.data_dir == tmp_path / ".perfd"
    assert snapshot.storage_url == f"sqlite:///{tmp_path}/.perfd/perfd.db"
    assert dict(snapshot.suites) == {}  # no suites dir: no suites
    assert snapshot.budgets is None  # no budgets file
    assert snapshot.sources == ()


def test_no_daemon_file_still_reads_suites_and_budgets_under_cwd(tmp_path: Path) -> None:
    shutil.copytree(VALID / "suites", tmp_path / "suites")
    shutil.copy(VALID / "budgets.yaml", tmp_path / "budgets.yaml")
    snapshot = load_config_set(None, cwd=tmp_path)
    assert sorted(snapshot.suites) == ["example", "storage"]
    assert snapshot.budgets is not None and len(snapshot.budgets.budgets) == 3
    assert [s.path.name for s in snapshot.sources] == ["example.yaml", "storage.yml", "budgets.yaml"]


def test_budgets_file_inside_the_suites_dir_is_not_read_as_a_suite(tmp_path: Path) -> None:
    write(tmp_path / "suites", "core.yaml", SUITE.format(name="core"))
    write(
        tmp_path / "suites",
        "budgets.yaml",
        "version: 1\nbudgets:\n  - {suite: core, benchmark: a, metric: time, max_value: 1}\n",
    )
    write(tmp_path, "perfd.yaml", "suites_dir: suites\nbudgets: suites/budgets.yaml\n")
    snapshot = load_config_set(tmp_path / "perfd.yaml", cwd=tmp_path)
    assert list(snapshot.suites) == ["core"]
    assert snapshot.budgets is not None


# --------------------------------------------------------------------------- invalid trees


def test_errors_in_two_files_are_reported_together_with_file_and_line() -> None:
    base = INVALID_SET.absolute()
    with pytest.raises(ConfigError) as info:
        load_config_set(INVALID_SET / "perfd.yaml", cwd=FIXTURES)
    assert info.value.problems == [
        f"{base / 'suites' / 'core.yaml'}:10: benchmarks[0].warmup: must be >= 0 (got -1)",
        f"{base / 'budgets.yaml'}:4: budgets[0].benchmark: 'connect/*' matches no benchmark "
        "of suite 'net' (it has: send, recv)",
    ]
    assert str(info.value).splitlines()[0] == (
        f"configuration from {INVALID_SET / 'perfd.yaml'}: 2 problems"
    )


def test_check_paths_reports_the_same_problems_for_the_same_tree() -> None:
    base = INVALID_SET.absolute()
    with pytest.raises(ConfigError) as info:
        load_config_set(INVALID_SET / "perfd.yaml", cwd=FIXTURES)
    assert check_paths([base / "suites", base / "budgets.yaml"], None) == info.value.problems


def test_budget_on_a_suite_that_does_not_exist_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path / "suites", "core.yaml", SUITE.format(name="core"))
    budgets = write(
        tmp_path,
        "budgets.yaml",
        "version: 1\nbudgets:\n  - {suite: cores, benchmark: a, metric: time, max_value: 1}\n",
    )
    assert problems_of(None, tmp_path) == [
        f"{budgets}:3: budgets[0].suite: unknown suite 'cores' (did you mean 'core'?); "
        "known suites: core"
    ]


def test_budget_on_a_broken_suite_is_not_judged_twice(tmp_path: Path) -> None:
    core = write(tmp_path / "suites", "core.yaml", SUITE.format(name="core") + "samples: 3\n")
    write(
        tmp_path,
        "budgets.yaml",
        "version: 1\nbudgets:\n  - {suite: core, benchmark: zzz, metric: time, max_value: 1}\n",
    )
    assert problems_of(None, tmp_path) == [
        f"{core}:10: samples: unknown key 'samples' (known keys: name, description, repository, "
        "branches, build, harness, defaults, tiers, benchmarks)"
    ]


def test_duplicate_suite_names_across_the_suites_dir(tmp_path: Path) -> None:
    first = write(tmp_path / "suites", "a.yaml", SUITE.format(name="same"))
    second = write(tmp_path / "suites", "b.yml", SUITE.format(name="same"))
    assert problems_of(None, tmp_path) == [
        f"{second}:1: name: duplicate suite name 'same' (also defined in {first})"
    ]


def test_daemon_problems_do_not_hide_suite_and_budget_problems(tmp_path: Path) -> None:
    daemon = write(
        tmp_path, "perfd.yaml", "machine_id: -bad\nsuites_dir: defs\nbudget: b.yaml\n"
    )
    suite = write(tmp_path / "defs", "core.yaml", SUITE.format(name="core") + "    warmup: x\n")
    budgets = write(tmp_path, "budgets.yaml", "version: 2\n")
    assert problems_of(daemon, tmp_path) == [
        f"{daemon}:1: machine_id: must match [A-Za-z0-9][A-Za-z0-9_.-]* (got '-bad')",
        f"{daemon}:3: budget: unknown key 'budget' (did you mean 'budgets'?)",
        f"{suite}:10: benchmarks[0].warmup: expected an integer, got 'x'",
        f"{budgets}:1: version: unsupported budgets version 2: this perfd reads version 1",
    ]


def test_a_bad_suites_dir_value_skips_the_suites(tmp_path: Path) -> None:
    daemon = write(tmp_path, "perfd.yaml", "suites_dir: [a, b]\n")
    write(tmp_path / "suites", "core.yaml", "not: a suite\n")
    assert problems_of(daemon, tmp_path) == [f"{daemon}:1: suites_dir: expected a path, got a list"]


def test_files_of_another_kind_and_unreadable_files(tmp_path: Path) -> None:
    wrong = write(tmp_path / "suites", "wrong.yaml", "version: 1\nbudgets: []\n")
    broken = write(tmp_path / "suites", "broken.yaml", "name: [\n")
    other = write(tmp_path, "other.yaml", "machine_id: m\n")
    daemon = write(tmp_path, "perfd.yaml", "budgets: other.yaml\n")
    assert problems_of(daemon, tmp_path) == [
        f"{broken}:2: YAML syntax error: expected the node content, but found '<stream end>'",
        f"{wrong}:1: this looks like a budgets file, not a suite",
        f"{other}:1: this looks like a daemon file, not a budgets file",
    ]


def test_suites_dir_that_is_a_file(tmp_path: Path) -> None:
    daemon = write(tmp_path, "perfd.yaml", "suites_dir: suites.txt\n")
    write(tmp_path, "suites.txt", "x")
    assert problems_of(daemon, tmp_path) == [
        f"{daemon}:1: suites_dir: {tmp_path / 'suites.txt'} is not a directory"
    ]


def test_missing_daemon_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.yaml", tmp_path) == [f"{tmp_path / 'nope.yaml'}: no such file"]


# --------------------------------------------------------------------------- change detection


def test_digest_changes_when_a_files_content_changes(tmp_path: Path) -> None:
    shutil.copytree(VALID, tmp_path / "tree")
    daemon = tmp_path / "tree" / "perfd.yaml"
    before = load_config_set(daemon, cwd=tmp_path)
    suite_file = tmp_path / "tree" / "suites" / "storage.yml"
    suite_file.write_text(suite_file.read_text() + "  - name: btree/delete\n")
    assert before.changed()
    after = load_config_set(daemon, cwd=tmp_path)
    digests = {s.path.name: s.sha256 for s in before.sources}
    new_digests = {s.path.name: s.sha256 for s in after.sources}
    assert digests["storage.yml"] != new_digests["storage.yml"]
    assert {k: v for k, v in digests.items() if k != "storage.yml"} == {
        k: v for k, v in new_digests.items() if k != "storage.yml"
    }
    assert before.sources != after.sources
    assert not after.changed()
    # the same bytes again give the same digest
    assert SourceFile.read(suite_file) == next(s for s in after.sources if s.path == suite_file)


def test_changed_sees_added_suites_removed_files_and_a_new_budgets_file(tmp_path: Path) -> None:
    write(tmp_path / "suites", "core.yaml", SUITE.format(name="core"))
    snapshot = load_config_set(None, cwd=tmp_path)
    assert not snapshot.changed()
    added = write(tmp_path / "suites", "net.yaml", SUITE.format(name="net"))
    assert snapshot.changed()
    added.unlink()
    assert not snapshot.changed()
    budgets = write(tmp_path, "budgets.yaml", "version: 1\n")
    assert snapshot.changed()
    budgets.unlink()
    (tmp_path / "suites" / "core.yaml").unlink()
    assert snapshot.changed()
