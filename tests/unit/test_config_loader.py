"""Loading suites, budgets and daemon files: every problem at once, with file:line: path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from perfd.config import (
    DaemonConfig,
    SuiteConfig,
    find_suite,
    load_budgets,
    load_daemon,
    load_suite,
    load_suites,
)
from perfd.errors import EXIT_CONFIG, ConfigError
from perfd.model import Direction

FIXTURES = Path(__file__).parent / "fixtures" / "config"
VALID = FIXTURES / "valid"
INVALID = FIXTURES / "invalid"

MINIMAL_SUITE = """\
name: {name}
repository: ../repo
build:
  steps:
    - argv: [make]
harness:
  binary: "${{PERFD_BUILD_DIR}}/bench"
benchmarks:
  - name: a
"""


def suite_text(name: str, extra: str = "", indent: int = 0) -> str:
    """MINIMAL_SUITE named ``name``, then ``extra`` dedented and indented by ``indent``."""
    return MINIMAL_SUITE.format(name=name) + textwrap.indent(textwrap.dedent(extra), " " * indent)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(load: Callable[..., Any], *args: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(*args)
    assert info.value.exit_code == EXIT_CONFIG
    return info.value.problems


@pytest.fixture
def suites() -> dict[str, SuiteConfig]:
    return load_suites(VALID / "suites")


# --------------------------------------------------------------------------- valid files


def test_valid_suite_loads_with_source_and_resolved_settings() -> None:
    suite = load_suite(VALID / "suites" / "example.yaml")
    assert suite.name == "example"
    assert suite.source_path == (VALID / "suites" / "example.yaml").absolute()
    assert suite.suite_dir == (VALID / "suites").absolute()
    assert suite.branches == ("main", "release")
    assert [t.value for t in suite.tiers] == ["commit", "nightly"]
    assert suite.build.steps[0].argv[3] == "-j${PERFD_JOBS}"
    assert suite.build.timeout_for(suite.build.steps[0]) == 300
    assert suite.build.timeout_for(suite.build.steps[1]) == 600
    assert suite.build.env_for(suite.build.steps[0])["CFLAGS"] == "-O3"
    assert suite.harness.args == ("--quiet",)
    assert suite.benchmark_names() == ("compute/crc32", "request/parse", "request/route")


def test_relative_repository_resolves_against_the_suite_dir() -> None:
    suite = load_suite(VALID / "suites" / "example.yaml")
    assert suite.repository_location() == str((FIXTURES / "demo-repo").resolve())
    url_suite = load_suite(VALID / "suites" / "storage.yml")
    assert url_suite.repository_location() == "https://example.com/storage.git"


def test_settings_for_merges_defaults_and_overrides() -> None:
    suite = load_suite(VALID / "suites" / "example.yaml")
    crc = suite.settings_for("compute/crc32")
    assert (crc.warmup, crc.samples, crc.repetitions, crc.cpus) == (2, 10, 10, (1,))
    assert [(m.name, m.unit, m.direction) for m in crc.metrics] == [
        ("time", "ns", Direction.LOWER),
        ("throughput", "ops/s", Direction.HIGHER),
        ("bytes_per_op", "B", Direction.LOWER),
    ]
    parse = suite.settings_for("request/parse")
    assert (parse.warmup, parse.cpus, parse.counters) == (1, (2, 3), True)
    assert [m.name for m in parse.metrics] == ["time", "instructions"]
    route = suite.settings_for("request/route")
    assert route.metrics == (suite.settings_for("compute/crc32").metrics[0],)
    assert [s.name for s in suite.all_settings()] == list(suite.benchmark_names())
    with pytest.raises(ConfigError, match="did you mean 'request/route'"):
        suite.settings_for("request/rout")


def test_valid_budgets_load_against_suites(suites: dict[str, SuiteConfig]) -> None:
    budgets = load_budgets(VALID / "budgets.yaml", suites)
    assert budgets.version == 1
    assert [b.owner for b in budgets.budgets] == ["team-request", None, None]
    assert budgets.budgets[1].confidence.value == "medium"
    assert budgets.for_benchmark("example", "request/parse", "time") == (budgets.budgets[0],)
    assert budgets.for_benchmark("example", "compute/crc32", "time") == ()


def test_valid_daemon_file_resolves_paths_against_its_directory() -> None:
    daemon = load_daemon(VALID / "perfd.yaml")
    base = VALID.absolute()
    assert daemon.machine_id == "bench-01"
    assert daemon.data_dir == base / "state"
    assert daemon.storage_url == f"sqlite:///{base}/state/perfd.db"
    assert daemon.suites_dir == base / "suites"
    assert daemon.budgets == base / "budgets.yaml"


def test_daemon_defaults_fill_machine_id_and_url(tmp_path: Path) -> None:
    path = write(tmp_path, "perfd.yaml", "storage_url: sqlite:///db/perfd.db\n")
    daemon = load_daemon(path, hostname="bench box.example.com")
    assert daemon.machine_id == "bench-box.example.com"
    assert daemon.data_dir == tmp_path / ".perfd"
    assert daemon.storage_url == f"sqlite:///{tmp_path}/db/perfd.db"
    assert daemon.suites_dir == tmp_path / "suites"
    assert daemon.budgets == tmp_path / "budgets.yaml"


def test_daemon_default_without_a_file(tmp_path: Path) -> None:
    daemon = DaemonConfig.default(tmp_path, hostname="_bench-07_")
    assert daemon.machine_id == "bench-07"
    assert daemon.data_dir == tmp_path / ".perfd"
    assert daemon.storage_url == f"sqlite:///{tmp_path}/.perfd/perfd.db"
    assert daemon.storage_url_resolved() == daemon.storage_url
    assert daemon.suites_dir == tmp_path / "suites"
    assert daemon.budgets == tmp_path / "budgets.yaml"


def test_daemon_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "perfd.yaml",
        """\
        machine_id: -bad
        storage_url: perfd.db
        suite_dir: suites
        """,
    )
    assert problems(load_daemon, path) == [
        f"{path}:1: machine_id: must match [A-Za-z0-9][A-Za-z0-9_.-]* (got '-bad')",
        f"{path}:2: storage_url: expected an SQLAlchemy URL such as "
        "sqlite:////var/lib/perfd/perfd.db or postgresql+psycopg://perfd@db/perfd, "
        "got 'perfd.db'",
        f"{path}:3: suite_dir: unknown key 'suite_dir' (did you mean 'suites_dir'?)",
    ]


# --------------------------------------------------------------------------- YAML problems


def test_malformed_yaml_names_the_line() -> None:
    path = INVALID / "syntax_error.yaml"
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert str(info.value).startswith(f"{path}: 1 problem\n")
    assert info.value.problems == [
        f"{path}:4: YAML syntax error: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 3)"
    ]


def test_duplicate_yaml_key_is_reported_at_the_second_occurrence() -> None:
    path = INVALID / "duplicate_key.yaml"
    assert problems(load_suite, path) == [
        f"{path}:12: benchmarks[0]: duplicate key 'warmup' (first at line 10)"
    ]


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", suite_text("x") + "name: y\n")
    assert problems(load_suite, path) == [f"{path}:10: duplicate key 'name' (first at line 1)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1: file is empty; expected a mapping of keys to values"),
        ("# only a comment\n", "1: file is empty; expected a mapping of keys to values"),
        ("- a\n- b\n", "1: the top level must be a mapping of keys to values, got a list"),
        (
            "a: 1\n---\nb: 2\n",
            "2: a second YAML document starts here; a perfd file holds exactly one",
        ),
        (
            "name: x\n\tbuild: 1\n",
            "2: YAML syntax error: found character '\\t' that cannot start "
            "any token; YAML does not allow tabs for indentation",
        ),
    ],
)
def test_unusable_yaml(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert problems(load_suite, path) == [f"{path}:{expected}"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert problems(load_suite, path) == [f"{path}: no such file"]


def test_merge_keys_are_supported_and_do_not_count_as_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        suite_text(
            "merge",
            """\
          - &slow
            name: slow
            repetitions: 20
            warmup: 3
          - <<: *slow
            name: slow2
            warmup: -1
        """,
            indent=2,
        ),
    )
    assert problems(load_suite, path) == [f"{path}:16: benchmarks[2].warmup: must be >= 0 (got -1)"]
    path.write_text(path.read_text().replace("warmup: -1", "warmup: 0"))
    settings = load_suite(path).settings_for("slow2")
    assert (settings.repetitions, settings.warmup) == (20, 0)


# --------------------------------------------------------------------------- schema problems


def test_several_errors_are_reported_at_once_sorted_by_line() -> None:
    path = INVALID / "several_errors.yaml"
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert str(info.value).splitlines()[0] == f"{path}: 7 problems"
    assert info.value.problems == [
        f"{path}:5: build.steps[0].argv: use a list of arguments, not a shell string: [make, -j4]",
        f"{path}:6: build.steps[1].argv[1]: unknown variable ${{FOO}}; known: ${{PERFD_WORKTREE}}, "
        "${PERFD_BUILD_DIR}, ${PERFD_HARNESS}, ${PERFD_SUITE_DIR}, ${PERFD_COMMIT}, ${PERFD_JOBS}",
        f"{path}:10: defaults.warmpu: unknown key 'warmpu' (did you mean 'warmup'?)",
        f"{path}:11: defaults.samples: must be >= 1 (got 0)",
        f"{path}:15: benchmarks[1].warmup: must be >= 0 (got -1)",
        f"{path}:17: benchmarks[2].repetitions: expected an integer, got 'abc'",
        f"{path}:18: benchmarks[3].name: duplicate benchmark name 'a' (first at line 13)",
    ]


def test_negative_warmup_format(tmp_path: Path) -> None:
    text = suite_text("neg") + "  - name: b\n    warmup: -1\n"
    path = write(tmp_path, "neg.yaml", text)
    assert problems(load_suite, path) == [f"{path}:11: benchmarks[1].warmup: must be >= 0 (got -1)"]


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", suite_text("x") + "    zzz: 1\n")
    assert problems(load_suite, path) == [
        f"{path}:10: benchmarks[0].zzz: unknown key 'zzz' (known keys: name, description, warmup, "
        "samples, min_time_s, repetitions, cpus, timeout_s, counters, threshold_pct, metrics)"
    ]


def test_missing_fields_point_at_the_parent(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """\
        # leading comment
        name: x
        build:
          timeout_s: 10
        benchmarks:
          - description: no name
        """,
    )
    assert problems(load_suite, path) == [
        f"{path}:2: harness: field required",
        f"{path}:2: repository: field required",
        f"{path}:3: build.steps: field required",
        f"{path}:6: benchmarks[0].name: field required",
    ]


def test_wrong_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """\
        name: Types
        repository: ftp://example.com/x.git
        branches: main
        build:
          env: {JOBS: 4, OK: "1"}
          steps:
            - argv: [make]
              timeout_s: .inf
        harness:
          binary: bench
          args: --fast
        defaults:
          counters: maybe
          min_time_s: true
          cpus: [0, 0]
          metrics: []
        tiers: [hourly]
        benchmarks: {name: a}
        """,
    )
    assert problems(load_suite, path) == [
        f"{path}:1: name: must match [a-z0-9][a-z0-9_.-]* (got 'Types')",
        f"{path}:2: repository: unsupported URL scheme 'ftp' (use https://, http://, ssh://, "
        "git://, file://, user@host:path or a local path)",
        f"{path}:3: branches: expected a list, got 'main'",
        f"{path}:5: build.env.JOBS: expected a string, got 4 "
        '(write "4" in quotes to mean the text)',
        f"{path}:8: build.steps[0].timeout_s: must be a finite number, got inf",
        f"{path}:11: harness.args: use a list of arguments, not a shell string: [--fast]",
        f"{path}:13: defaults.counters: expected true or false, got 'maybe'",
        f"{path}:14: defaults.min_time_s: expected a number, got true",
        f"{path}:15: defaults.cpus: cpu 0 is listed twice",
        f"{path}:16: defaults.metrics: needs at least one item",
        f"{path}:17: tiers[0]: must be one of 'commit', 'nightly' or 'weekly' (got 'hourly')",
        f"{path}:18: benchmarks: expected a list, got a mapping",
    ]


def test_metric_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        suite_text(
            "metrics",
            """\
            metrics:
              - time
              - {name: throughput, direction: lower_is_better}
              - {name: latency_p99, unit: ns}
              - {name: custom, unit: B, direction: sideways}
              - {name: time}
              - 42
        """,
            indent=4,
        ),
    )
    assert problems(load_suite, path) == [
        f"{path}:12: benchmarks[0].metrics[1]: metric 'throughput' is higher_is_better, "
        "not lower_is_better (leave direction out)",
        f"{path}:13: benchmarks[0].metrics[2]: metric 'latency_p99' is not one perfd derives; a "
        "custom metric needs both unit and direction (known metrics: time, throughput, "
        "instructions, cycles, cache_misses, branch_misses)",
        f"{path}:14: benchmarks[0].metrics[3].direction: must be one of 'lower_is_better' or "
        "'higher_is_better' (got 'sideways')",
        f"{path}:15: benchmarks[0].metrics[4]: duplicate metric 'time' (first at line 11)",
        f"{path}:16: benchmarks[0].metrics[5]: expected a metric name or a mapping "
        "{name, unit, direction}, got 42",
    ]


def test_escaped_variable_and_unterminated_reference(tmp_path: Path) -> None:
    text = suite_text("vars").replace(
        "argv: [make]", 'argv: [make, "$${LITERAL}", "${PERFD_WORKTREE"]'
    )
    path = write(tmp_path, "s.yaml", text)
    assert problems(load_suite, path) == [
        f"{path}:5: build.steps[0].argv[2]: unterminated ${{ (write ${{NAME}}, or $${{ for a "
        "literal ${)"
    ]


# --------------------------------------------------------------------------- budgets


def test_budget_references_are_checked(suites: dict[str, SuiteConfig]) -> None:
    path = INVALID / "budgets_refs.yaml"
    assert problems(load_budgets, path, suites) == [
        f"{path}:3: budgets[0].suite: unknown suite 'exampel' (did you mean 'example'?); "
        "known suites: example, storage",
        f"{path}:8: budgets[1].benchmark: 'nothing/*' matches no benchmark of suite 'example' "
        "(it has: compute/crc32, request/parse, request/route)",
        f"{path}:13: budgets[2].metric: no benchmark of suite 'example' matching 'request/*' "
        "records metric 'cycles' (they record: time, instructions)",
        f"{path}:18: budgets[3].confidence: must be one of 'low', 'medium' or 'high' "
        "(got 'certain')",
    ]


def test_budgets_version_2_is_refused(suites: dict[str, SuiteConfig]) -> None:
    path = INVALID / "budgets_v2.yaml"
    assert problems(load_budgets, path, suites) == [
        f"{path}:1: version: unsupported budgets version 2: this perfd reads version 1"
    ]


def test_budget_needs_a_limit_and_a_version(tmp_path: Path, suites: dict[str, SuiteConfig]) -> None:
    path = write(
        tmp_path,
        "budgets.yaml",
        """\
        budgets:
          - suite: example
            benchmark: "*"
            metric: time
            max_regression_pct: 0
          - suite: example
            benchmark: "*"
            metric: time
        """,
    )
    assert problems(load_budgets, path, suites) == [
        f"{path}:1: version: field required",
        f"{path}:5: budgets[0].max_regression_pct: must be > 0 (got 0)",
        f"{path}:6: budgets[1]: a budget needs max_regression_pct, max_value or both",
    ]


# --------------------------------------------------------------------------- several suites


def test_load_suites_from_a_directory_reads_yaml_and_yml(suites: dict[str, SuiteConfig]) -> None:
    assert sorted(suites) == ["example", "storage"]


def test_duplicate_suite_names_across_files_name_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", suite_text("same"))
    second = write(tmp_path, "b.yml", suite_text("same"))
    (tmp_path / "notes.txt").write_text("not a suite")
    with pytest.raises(ConfigError) as info:
        load_suites(tmp_path)
    assert str(info.value).splitlines()[0] == f"{tmp_path}: 1 problem"
    assert info.value.problems == [
        f"{second}:1: name: duplicate suite name 'same' (also defined in {first})"
    ]


def test_load_suites_reports_problems_of_every_file(tmp_path: Path) -> None:
    bad1 = write(tmp_path, "a.yaml", suite_text("a") + "    warmup: -2\n")
    bad2 = write(tmp_path, "b.yaml", suite_text("B"))
    assert problems(load_suites, [bad1, bad2, tmp_path / "missing.yaml"]) == [
        f"{tmp_path / 'missing.yaml'}: no such file or directory",
        f"{bad1}:10: benchmarks[0].warmup: must be >= 0 (got -2)",
        f"{bad2}:1: name: must match [a-z0-9][a-z0-9_.-]* (got 'B')",
    ]


def test_find_suite_by_path_by_file_name_and_by_declared_name(tmp_path: Path) -> None:
    write(tmp_path, "core.yaml", suite_text("core"))
    write(tmp_path, "misc-file.yml", suite_text("misc"))
    assert find_suite("core", tmp_path).name == "core"
    assert find_suite("misc", tmp_path).name == "misc"
    assert find_suite(str(tmp_path / "core.yaml"), None).name == "core"
    assert find_suite(VALID / "suites" / "storage.yml", tmp_path).name == "storage"
    with pytest.raises(ConfigError) as info:
        find_suite("cor", tmp_path)
    assert (
        str(info.value)
        == f"unknown suite 'cor' (did you mean 'core'?); suites in {tmp_path}: core, misc"
    )
    with pytest.raises(ConfigError, match="no suites directory"):
        find_suite("core", None)


def test_unknown_yaml_tag_is_reported_once(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.yaml", suite_text("tags").replace('bench"', 'bench"\n  args: !custom x')
    )
    assert problems(load_suite, path) == [
        f"{path}:8: harness.args: YAML error: could not determine a constructor for the tag "
        "'!custom'"
    ]


def test_a_file_of_another_kind_is_named(suites: dict[str, SuiteConfig]) -> None:
    budgets = VALID / "budgets.yaml"
    assert problems(load_suite, budgets) == [
        f"{budgets}:1: this looks like a budgets file, not a suite"
    ]
    daemon = VALID / "perfd.yaml"
    assert problems(load_budgets, daemon, suites) == [
        f"{daemon}:1: this looks like a daemon file, not a budgets file"
    ]
