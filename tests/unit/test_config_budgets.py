"""Budgets as they will be evaluated: statistic, action, max_value with units, the old form."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from perfd.config import (
    Budget,
    BudgetAction,
    BudgetStatistic,
    SuiteConfig,
    check_paths,
    detect_kind,
    load_budgets,
    load_suite,
    load_suites,
)
from perfd.errors import EXIT_CONFIG, ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "config"
VALID = FIXTURES / "valid"
BUDGETS = FIXTURES / "budgets"


@pytest.fixture
def suites() -> dict[str, SuiteConfig]:
    return load_suites(VALID / "suites")


def budget(metric: str, max_value: Any, context: dict[str, Any] | None = None) -> Budget:
    data = {"suite": "s", "benchmark": "*", "metric": metric, "max_value": max_value}
    return Budget.model_validate(data, context=context)


def problems_of(text: str, tmp_path: Path, suites: dict[str, SuiteConfig]) -> tuple[Path, list[str]]:
    path = tmp_path / "budgets.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_budgets(path, suites)
    assert info.value.exit_code == EXIT_CONFIG
    return path, info.value.problems


# --------------------------------------------------------------------------- defaults


def test_statistic_defaults_to_median_and_action_to_block() -> None:
    b = budget("time", 10)
    assert b.statistic is BudgetStatistic.MEDIAN
    assert b.action is BudgetAction.BLOCK
    assert b.blocking
    assert [s.value for s in BudgetStatistic] == ["median", "mean", "p95", "p99"]
    assert [a.value for a in BudgetAction] == ["block", "warn"]


def test_existing_budgets_file_gets_the_defaults(suites: dict[str, SuiteConfig]) -> None:
    budgets = load_budgets(VALID / "budgets.yaml", suites)
    assert {b.statistic for b in budgets.budgets} == {BudgetStatistic.MEDIAN}
    assert {b.action for b in budgets.budgets} == {BudgetAction.BLOCK}
    assert [b.max_value for b in budgets.budgets] == [2500.0, 1000000.0, None]


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("metric", "written", "expected"),
    [
        ("time", 2500, 2500.0),
        ("time", 2.5, 2.5),
        ("time", "2500", 2500.0),
        ("time", "750ns", 750.0),
        ("time", "2.5us", 2500.0),
        ("time", "2.5µs", 2500.0),  # MICRO SIGN
        ("time", "2.5μs", 2500.0),  # GREEK SMALL LETTER MU
        ("time", "100ms", 1e8),
        ("time", "3 ms", 3e6),
        ("time", "1s", 1e9),
        ("time", "0.5s", 5e8),
        ("time", "1e3us", 1e6),
        ("throughput", 400000, 400000.0),
        ("throughput", "10000/s", 10000.0),
        ("throughput", "400k/s", 400000.0),
        ("throughput", "1.5M/s", 1500000.0),
        ("instructions", "1500", 1500.0),
        ("instructions", "12k", 12000.0),
        ("cycles", "3M", 3000000.0),
    ],
)
def test_max_value_is_converted_to_the_metrics_unit(
    metric: str, written: Any, expected: float
) -> None:
    assert budget(metric, written).max_value == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("512B", 512.0),
        ("2kB", 2000.0),
        ("140MB", 140000000.0),
        ("1GB", 1000000000.0),
        ("4KiB", 4096.0),
        ("2MiB", 2097152.0),
        ("1GiB", 1073741824.0),
        (300, 300.0),
    ],
)
def test_a_byte_metric_takes_sizes(written: Any, expected: float) -> None:
    # No metric perfd derives is in bytes; a suite's custom metric can be.
    context = {"metric_units": {"s": {"rss": "bytes", "bytes_per_op": "B"}}}
    assert budget("rss", written, context).max_value == expected
    assert budget("bytes_per_op", written, context).max_value == expected


def test_a_custom_metric_in_a_convertible_unit_converts_into_that_unit() -> None:
    context = {"metric_units": {"s": {"latency_ms": "ms"}}}
    assert budget("latency_ms", "250us", context).max_value == 0.25
    assert budget("latency_ms", "2s", context).max_value == 2000.0


def test_the_written_text_is_kept_for_display() -> None:
    assert budget("time", "2.5us").max_value_display() == "2.5us"
    assert budget("time", " 3 ms ").max_value_display() == "3 ms"
    assert budget("throughput", "400k/s").max_value_display() == "400k/s"
    assert budget("time", 2500).max_value_display() == "2500 ns"
    assert budget("time", 2.5).max_value_display() == "2.5 ns"
    assert budget("throughput", 400000).max_value_display() == "400000 ops/s"
    assert budget("cycles", 10).max_value_display() == "10"
    no_limit = Budget(suite="s", benchmark="*", metric="time", max_regression_pct=5)
    assert no_limit.max_value_display() is None


def test_units_in_a_budgets_file(suites: dict[str, SuiteConfig]) -> None:
    loaded = load_budgets(BUDGETS / "units.yaml", suites).budgets
    assert [b.max_value for b in loaded] == [2500.0, 400000.0, 12000.0, 4096.0, 2500.0]
    assert [b.max_value_display() for b in loaded] == ["2.5us", "400k/s", "12k", "4KiB", "2500 ns"]
    assert [b.statistic.value for b in loaded] == ["p99", "median", "mean", "median", "median"]
    assert [b.action.value for b in loaded] == ["warn", "block", "block", "block", "block"]
    assert [b.blocking for b in loaded] == [False, True, True, True, True]


# --------------------------------------------------------------------------- errors


def test_wrong_units_and_garbage_are_reported_at_their_lines(
    tmp_path: Path, suites: dict[str, SuiteConfig]
) -> None:
    path, found = problems_of(
        """\
        version: 1
        budgets:
          - suite: example
            benchmark: "request/*"
            metric: time
            max_value: 140MB
          - suite: example
            benchmark: compute/crc32
            metric: throughput
            max_value: 2.5us
          - suite: example
            benchmark: request/parse
            metric: instructions
            max_value: 10k/s
          - suite: example
            benchmark: compute/crc32
            metric: bytes_per_op
            max_value: 2.5us
          - suite: example
            benchmark: "*"
            metric: time
            max_value: fast
          - suite: example
            benchmark: "*"
            metric: time
            max_value: 5 parsecs
          - suite: example
            benchmark: "*"
            metric: time
            max_value: 5MS
          - suite: example
            benchmark: "*"
            metric: time
            max_value: -5us
          - suite: example
            benchmark: compute/crc32
            metric: throughput
            max_value: 400k
          - suite: example
            benchmark: request/parse
            metric: instructions
            max_value: lots
        """,
        tmp_path,
        suites,
    )
    assert found == [
        f"{path}:6: budgets[0].max_value: '140MB' is a size, but metric 'time' is measured "
        "in ns: use ns, us, ms or s",
        f"{path}:10: budgets[1].max_value: '2.5us' is a time, but metric 'throughput' is "
        "measured in ops/s: use /s, k/s or M/s",
        f"{path}:14: budgets[2].max_value: '10k/s' is a rate, but metric 'instructions' is "
        "a count: use a bare number, or one with k or M",
        f"{path}:18: budgets[3].max_value: '2.5us' is a time, but metric 'bytes_per_op' is "
        "measured in B: use B, kB, MB, GB, KiB, MiB or GiB",
        f"{path}:22: budgets[4].max_value: expected a number in ns, or one with a unit "
        "(ns, us, ms or s) such as '2.5us'; got 'fast'",
        f"{path}:26: budgets[5].max_value: unknown unit 'parsecs' in '5 parsecs'; metric "
        "'time' is measured in ns: use ns, us, ms or s",
        f"{path}:30: budgets[6].max_value: unknown unit 'MS' in '5MS' (did you mean 'ms'?); "
        "metric 'time' is measured in ns: use ns, us, ms or s",
        f"{path}:34: budgets[7].max_value: must be >= 0 (got '-5us')",
        f"{path}:38: budgets[8].max_value: '400k' is a count, but metric 'throughput' is "
        "measured in ops/s: use /s, k/s or M/s",
        f"{path}:42: budgets[9].max_value: expected a number, or one with k or M "
        "such as '12k'; got 'lots'",
    ]


def test_bad_statistic_and_action(tmp_path: Path, suites: dict[str, SuiteConfig]) -> None:
    path, found = problems_of(
        """\
        version: 1
        budgets:
          - suite: example
            benchmark: "*"
            metric: time
            statistic: p50
            max_value: 1ms
            action: fail
          - suite: example
            benchmark: "*"
            metric: time
            max_value: 1ms
            action: block_deploy
          - suite: example
            benchmark: "*"
            metric: time
            max_value: 1ms
            action: notify
        """,
        tmp_path,
        suites,
    )
    assert found == [
        f"{path}:6: budgets[0].statistic: must be one of 'median', 'mean', 'p95' or 'p99' "
        "(got 'p50')",
        f"{path}:8: budgets[0].action: must be one of 'block' or 'warn' (got 'fail')",
        f"{path}:13: budgets[1].action: 'block_deploy' is an action of the old budgets form; "
        "write 'block'",
        f"{path}:18: budgets[2].action: 'notify' is an action of the old budgets form; "
        "write 'warn'",
    ]


def test_a_unit_on_a_metric_nothing_records_is_left_to_the_reference_check(
    tmp_path: Path, suites: dict[str, SuiteConfig]
) -> None:
    path, found = problems_of(
        """\
        version: 1
        budgets:
          - suite: example
            benchmark: "*"
            metric: rss
            max_value: 140MB
        """,
        tmp_path,
        suites,
    )
    assert found == [
        f"{path}:5: budgets[0].metric: no benchmark of suite 'example' matching '*' records "
        "metric 'rss' (they record: time, throughput, bytes_per_op, instructions)"
    ]


def test_in_memory_budget_on_a_custom_metric_needs_a_bare_number() -> None:
    with pytest.raises(ValidationError) as info:
        budget("rss", "140MB")
    assert (
        "metric 'rss' is not one perfd derives and no suite 's' loaded with this budget "
        "records it, so '140MB' cannot be converted: write a bare number in the metric's unit"
    ) in str(info.value)
    assert budget("rss", 140).max_value == 140.0
    assert budget("rss", 140).max_value_display() == "140"


def test_a_custom_metric_in_a_unit_perfd_cannot_convert() -> None:
    context = {"metric_units": {"s": {"widgets": "widgets"}}}
    assert budget("widgets", 3, context).max_value == 3.0
    assert budget("widgets", "3", context).max_value == 3.0
    assert budget("widgets", "3 widgets", context).max_value == 3.0
    with pytest.raises(ValidationError) as info:
        budget("widgets", "3k", context)
    assert (
        "metric 'widgets' is measured in widgets, which perfd cannot convert to: "
        "write max_value as a bare number in widgets"
    ) in str(info.value)


def test_zero_is_still_a_valid_limit_and_negative_numbers_are_not(
    tmp_path: Path, suites: dict[str, SuiteConfig]
) -> None:
    # max_value keeps NonNegFloat's rule (>= 0), written bare or with a unit.
    assert budget("time", 0).max_value == 0.0
    assert budget("time", "0us").max_value == 0.0
    path, found = problems_of(
        """\
        version: 1
        budgets:
          - {suite: example, benchmark: "*", metric: time, max_value: -1}
          - {suite: example, benchmark: "*", metric: time, max_value: true}
        """,
        tmp_path,
        suites,
    )
    assert found == [
        f"{path}:3: budgets[0].max_value: must be >= 0 (got -1)",
        f"{path}:4: budgets[1].max_value: expected a number, got true",
    ]


# --------------------------------------------------------------------------- old form


OLD_FORM_YAML = """\
    version: 1
    budgets:
      # api_latency_p99 (line 2)
      - suite: <suite>
        benchmark: <benchmark glob>
        metric: time
        statistic: p99
        max_value: 100ms
        action: block
      # ingest_rate (line 5)
      - suite: <suite>
        benchmark: <benchmark glob>
        metric: throughput
        statistic: median
        max_value: 400k/s
        action: warn
      # parse_regression (line 8)
      - suite: <suite>
        benchmark: <benchmark glob>
        metric: <metric>
        statistic: median
        max_regression_pct: 5
        action: block
      # startup_p95 (line 10)
      - suite: <suite>
        benchmark: <benchmark glob>
        metric: time
        statistic: p95
        max_value: 2s
        action: <block or warn>
        owner: team-core"""


def old_form_message(path: Path) -> str:
    return (
        f"{path}:2: this is the old budgets form (names mapped to {{threshold, action}}), "
        "which perfd no longer reads; rewrite it as a version 1 budgets file. The same "
        "budgets, with <...> where the old form does not say:\n" + OLD_FORM_YAML
    )


def test_old_form_is_refused_with_the_new_form_to_write(suites: dict[str, SuiteConfig]) -> None:
    path = BUDGETS / "old_form.yaml"
    with pytest.raises(ConfigError) as info:
        load_budgets(path, suites)
    assert info.value.problems == [old_form_message(path)]
    assert str(info.value).startswith(f"{path}: 1 problem\n  {path}:2: this is the old")


def test_old_form_is_recognised_as_a_budgets_file() -> None:
    path = BUDGETS / "old_form.yaml"
    assert detect_kind({"api_latency_p99": {"threshold": "100ms", "action": "block"}}) == (
        "budgets"
    )
    assert detect_kind({"x": {"threshold": 5}, "y": "z"}) == "budgets"
    assert detect_kind({"x": {"limit": 5}}) is None
    assert check_paths([path], VALID / "suites") == [old_form_message(path)]
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert info.value.problems == [f"{path}:2: this looks like a budgets file, not a suite"]


def test_the_printed_new_form_loads_once_the_placeholders_are_filled(
    tmp_path: Path, suites: dict[str, SuiteConfig]
) -> None:
    text = textwrap.dedent(OLD_FORM_YAML)
    for placeholder, value in {
        "<suite>": "example",
        "<benchmark glob>": '"*"',
        "<metric>": "time",
        "<block or warn>": "warn",
    }.items():
        text = text.replace(placeholder, value)
    path = tmp_path / "budgets.yaml"
    path.write_text(text + "\n")
    loaded = load_budgets(path, suites).budgets
    assert [(b.metric, b.statistic.value, b.action.value) for b in loaded] == [
        ("time", "p99", "block"),
        ("throughput", "median", "warn"),
        ("time", "median", "block"),
        ("time", "p95", "warn"),
    ]
    assert [b.max_value for b in loaded] == [1e8, 400000.0, None, 2e9]
    assert loaded[2].max_regression_pct == 5.0


@pytest.mark.parametrize(
    ("entry", "expected_lines"),
    [
        ({"threshold": 140}, ["metric: <metric>", "max_value: 140", "action: block"]),
        ({"threshold": "140MB"}, ["metric: <metric>", "max_value: 140MB"]),
        ({"threshold": "12k", "action": "warn"}, ["metric: <metric>", "max_value: 12k"]),
        ({"threshold": "fast"}, ["metric: <metric>", "max_value: <limit>  # was 'fast'"]),
        ({"threshold": "2.5us", "action": "block"}, ["metric: time", "max_value: 2.5us"]),
    ],
)
def test_old_form_inference(tmp_path: Path, entry: dict[str, Any], expected_lines: list[str]) -> None:
    import yaml

    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"request_time": entry}))
    (problem,) = check_paths([path], None)
    assert problem.startswith(f"{path}:1: this is the old budgets form")
    shown = [line.strip() for line in problem.splitlines()[1:]]
    assert shown[:3] == ["version: 1", "budgets:", "# request_time (line 1)"]
    assert "statistic: median" in shown
    for line in expected_lines:
        assert line in shown


def test_the_repository_example_shows_statistic_units_and_warn() -> None:
    repo = Path(__file__).resolve().parents[2]
    loaded = load_budgets(repo / "budgets.yaml", load_suites(repo / "suites")).budgets
    assert (loaded[0].max_value, loaded[0].max_value_display()) == (2500.0, "2.5us")
    assert {b.statistic.value for b in loaded} >= {"median", "p99"}
    assert [b.action.value for b in loaded].count("warn") == 1
