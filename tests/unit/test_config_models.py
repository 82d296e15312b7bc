"""The config models used directly: variables, metrics, budgets, in-memory suites."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from perfd.config import Budget, BudgetsConfig, MetricSpec, SuiteConfig, expand
from perfd.config.models import machine_id_from_hostname, variable_problems
from perfd.errors import ConfigError
from perfd.model import Direction, Metric


def suite(**overrides: object) -> SuiteConfig:
    data: dict[str, object] = {
        "name": "mem",
        "repository": "repo",
        "build": {"steps": [{"argv": ["make"]}]},
        "harness": {"binary": "${PERFD_BUILD_DIR}/bench"},
        "benchmarks": [{"name": "a"}, {"name": "b", "samples": 3, "metrics": ["cycles"]}],
    }
    data.update(overrides)
    return SuiteConfig.model_validate(data)


def test_expand_replaces_known_variables_and_keeps_escapes() -> None:
    variables = {"PERFD_WORKTREE": "/w", "PERFD_JOBS": "8"}
    assert expand("-C ${PERFD_WORKTREE} -j${PERFD_JOBS}", variables) == "-C /w -j8"
    assert expand("$${PERFD_WORKTREE} and $$HOME", variables) == "${PERFD_WORKTREE} and $$HOME"
    with pytest.raises(ConfigError, match=r"variable \$\{PERFD_COMMIT\} has no value here"):
        expand("${PERFD_COMMIT}", variables)


def test_variable_problems() -> None:
    assert variable_problems("${PERFD_SUITE_DIR}/x $${ANYTHING}") == []
    assert variable_problems("${HOME}")[0].startswith("unknown variable ${HOME}; known: ")
    assert variable_problems("${PERFD_COMIT}")[0].endswith("(did you mean ${PERFD_COMMIT}?)")
    assert variable_problems("${PERFD_COMMIT")[0].startswith("unterminated ${")


def test_models_are_frozen_and_forbid_extra_keys() -> None:
    s = suite()
    with pytest.raises(ValidationError):
        s.name = "other"
    with pytest.raises(ValidationError, match="Extra inputs"):
        suite(extra=1)


def test_in_memory_suite_defaults_and_settings() -> None:
    s = suite()
    assert s.source_path is None
    assert s.suite_dir == Path.cwd()
    assert s.repository_location() == str((Path.cwd() / "repo").resolve())
    assert [t.value for t in s.tiers] == ["commit", "nightly", "weekly"]
    assert s.branches == ("main",)
    a, b = s.all_settings()
    assert (a.warmup, a.samples, a.min_time_s, a.repetitions) == (1, 10, 0.01, 5)
    assert (a.cpus, a.timeout_s, a.counters, a.threshold_pct) == ((), 60.0, False, 5.0)
    assert a.metrics == (Metric("time", "ns", Direction.LOWER),)
    assert b.samples == 3
    assert b.metric("cycles") == Metric("cycles", "count", Direction.LOWER)
    assert b.metric("time") is None


def test_with_source_sets_the_suite_dir(tmp_path: Path) -> None:
    s = suite().with_source(tmp_path / "suites" / "mem.yaml")
    assert s.suite_dir == tmp_path / "suites"
    assert s.repository_location() == str((tmp_path / "suites" / "repo").resolve())


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo.git",
        "ssh://git@host/repo.git",
        "git@github.com:org/repo.git",
        "file:///srv/git/repo",
    ],
)
def test_urls_are_not_resolved(url: str) -> None:
    s = suite(repository=url)
    assert not s.repository_is_local()
    assert s.repository_location() == url


def test_duplicate_names_are_refused_without_the_loader_too() -> None:
    with pytest.raises(ValidationError, match="duplicate benchmark 'a'"):
        suite(benchmarks=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValidationError, match="duplicate metric 'time'"):
        suite(defaults={"metrics": ["time", {"name": "time"}]})


def test_metric_spec_short_and_long_forms() -> None:
    assert MetricSpec.model_validate("throughput").resolve() == Metric(
        "throughput", "ops/s", Direction.HIGHER
    )
    custom = MetricSpec.model_validate(
        {"name": "rss", "unit": "bytes", "direction": "lower_is_better"}
    )
    assert custom.resolve() == Metric("rss", "bytes", Direction.LOWER)
    with pytest.raises(ValidationError, match="needs both unit and direction"):
        MetricSpec.model_validate({"name": "rss", "unit": "bytes"})


def test_budget_matching_uses_fnmatch_case_sensitively() -> None:
    budget = Budget(suite="s", benchmark="request/*", metric="time", max_value=10)
    assert budget.matches("s", "request/parse")
    assert budget.matches("s", "request/parse", "time")
    assert not budget.matches("s", "request/parse", "throughput")
    assert not budget.matches("s", "Request/parse")
    assert not budget.matches("other", "request/parse")
    config = BudgetsConfig(version=1, budgets=(budget,))
    assert config.for_benchmark("s", "request/x", "time") == (budget,)


def test_machine_id_from_hostname() -> None:
    assert machine_id_from_hostname("bench-01.lab") == "bench-01.lab"
    assert machine_id_from_hostname("my box (2)") == "my-box--2"
    assert machine_id_from_hostname("---") == "localhost"
    assert machine_id_from_hostname() != ""
