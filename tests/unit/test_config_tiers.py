"""Suite tiers: the list form, the mapping form with per-tier sizes, and their precedence."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from perfd.config import SuiteConfig, Tier, json_schema, load_suite
from perfd.config.models import TierSizes
from perfd.errors import EXIT_CONFIG, ConfigError
from perfd.model import RunTier

TIERS = Path(__file__).parent / "fixtures" / "config" / "tiers"

MINIMAL_SUITE = """\
name: tiny
repository: ../repo
build:
  steps:
    - argv: [make]
harness:
  binary: "${PERFD_BUILD_DIR}/bench"
benchmarks:
  - name: a
"""


def write_suite(tmp_path: Path, tiers_yaml: str) -> Path:
    """MINIMAL_SUITE with ``tiers_yaml`` (dedented) appended, at line 10 onwards."""
    path = tmp_path / "s.yaml"
    path.write_text(MINIMAL_SUITE + textwrap.dedent(tiers_yaml))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert info.value.exit_code == EXIT_CONFIG
    return info.value.problems


def sizes(suite: SuiteConfig, name: str, tier: str | None = None) -> tuple[int, int, float, int]:
    s = suite.settings_for(name, tier)
    return (s.warmup, s.samples, s.min_time_s, s.repetitions)


def in_memory(**tiers: object) -> SuiteConfig:
    """A suite built without the loader; ``tiers=...`` sets its tiers."""
    return SuiteConfig.model_validate(
        {
            "name": "mem",
            "repository": "repo",
            "build": {"steps": [{"argv": ["make"]}]},
            "harness": {"binary": "bench"},
            "defaults": {"samples": 20},
            "benchmarks": [{"name": "a", "samples": 30}],
            **tiers,
        }
    )


# --------------------------------------------------------------------------- both forms


def test_list_form_keeps_its_meaning(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, "tiers: [commit, nightly]\n"))
    assert [t.value for t in suite.tiers] == ["commit", "nightly"]
    assert suite.tier_names() == (Tier.COMMIT, Tier.NIGHTLY)
    assert Tier.COMMIT in suite.tiers and "nightly" in suite.tiers
    assert Tier.WEEKLY not in suite.tiers
    assert suite.tiers[Tier.COMMIT] == TierSizes()
    # no tier of the list form changes a size
    assert suite.settings_for("a", "commit") == suite.settings_for("a")
    assert suite.all_settings("nightly") == suite.all_settings()


def test_mapping_form_loads_in_file_order() -> None:
    suite = load_suite(TIERS / "sized.yaml")
    assert suite.tier_names() == (Tier.COMMIT, Tier.NIGHTLY, Tier.WEEKLY)
    assert list(suite.tiers) == ["commit", "nightly", "weekly"]
    assert suite.tiers[Tier.COMMIT] == TierSizes(warmup=0, samples=10, repetitions=3)
    assert suite.tiers[Tier.NIGHTLY] == TierSizes()
    assert suite.tiers[Tier.WEEKLY] == TierSizes(samples=50, repetitions=15, min_time_s=0.05)


def test_default_is_every_tier_without_overrides() -> None:
    default = in_memory()
    assert default.tier_names() == (Tier.COMMIT, Tier.NIGHTLY, Tier.WEEKLY)
    assert all(s == TierSizes() for s in default.tiers.values())


@pytest.mark.parametrize("empty", ["tiers: []\n", "tiers: {}\n"])
def test_empty_tiers_mean_no_daemon_tier(tmp_path: Path, empty: str) -> None:
    suite = load_suite(write_suite(tmp_path, empty))
    assert suite.tier_names() == ()
    assert Tier.COMMIT not in suite.tiers
    assert sizes(suite, "a", "manual") == (1, 10, 0.01, 5)
    with pytest.raises(ConfigError, match="suite 'tiny' does not run in tier 'commit'"):
        suite.settings_for("a", "commit")


def test_in_memory_suites_take_both_forms() -> None:
    assert in_memory(tiers=(Tier.WEEKLY,)).tier_names() == (Tier.WEEKLY,)
    mapped = in_memory(tiers={"weekly": {"samples": 2}, Tier.COMMIT: TierSizes(samples=1)})
    assert mapped.tier_names() == (Tier.WEEKLY, Tier.COMMIT)
    assert (mapped.settings_for("a", "weekly").samples, mapped.settings_for("a").samples) == (2, 30)
    with pytest.raises(ValidationError, match="tier 'commit' is listed twice"):
        in_memory(tiers=["commit", "commit"])
    with pytest.raises(ValidationError, match="Extra inputs"):
        in_memory(tiers={"commit": {"timeout_s": 5}})


# --------------------------------------------------------------------------- precedence


def test_tier_beats_benchmark_beats_defaults() -> None:
    suite = load_suite(TIERS / "sized.yaml")
    # (warmup, samples, min_time_s, repetitions); defaults are (1, 20, 0.01, 5)
    assert sizes(suite, "plain") == (1, 20, 0.01, 5)
    assert sizes(suite, "plain", "commit") == (0, 10, 0.01, 3)
    assert sizes(suite, "plain", "nightly") == (1, 20, 0.01, 5)
    assert sizes(suite, "plain", "weekly") == (1, 50, 0.05, 15)
    # tuned sets (4, 30, 0.02, 8) itself: the tier still wins where it sets a size
    assert sizes(suite, "tuned") == (4, 30, 0.02, 8)
    assert sizes(suite, "tuned", "commit") == (0, 10, 0.02, 3)
    assert sizes(suite, "tuned", "nightly") == (4, 30, 0.02, 8)
    assert sizes(suite, "tuned", "weekly") == (4, 50, 0.05, 15)


def test_only_sizes_change_with_the_tier() -> None:
    suite = load_suite(TIERS / "sized.yaml")
    weekly = suite.settings_for("tuned", Tier.WEEKLY)
    assert weekly.timeout_s == 120
    assert weekly.name == "tuned"
    assert (weekly.metrics, weekly.cpus) == (
        suite.settings_for("tuned").metrics,
        suite.settings_for("tuned").cpus,
    )


@pytest.mark.parametrize("tier", [None, "manual", "compare", RunTier.MANUAL, RunTier.COMPARE])
def test_manual_and_compare_runs_use_no_tier_sizes(tier: str | None) -> None:
    suite = load_suite(TIERS / "sized.yaml")
    assert sizes(suite, "tuned", tier) == (4, 30, 0.02, 8)
    assert [s.samples for s in suite.all_settings(tier)] == [20, 30]


def test_run_tiers_of_the_daemon_select_the_sizes() -> None:
    suite = load_suite(TIERS / "sized.yaml")
    assert sizes(suite, "plain", RunTier.WEEKLY) == (1, 50, 0.05, 15)
    assert [s.repetitions for s in suite.all_settings(RunTier.COMMIT)] == [3, 3]


def test_unknown_tier_name_is_an_error_naming_the_valid_ones() -> None:
    suite = load_suite(TIERS / "sized.yaml")
    with pytest.raises(ConfigError) as info:
        suite.settings_for("plain", "nigthly")
    assert str(info.value) == (
        "unknown tier 'nigthly' (did you mean 'nightly'?); "
        "tiers: commit, nightly, weekly (manual, compare: no tier sizes)"
    )
    with pytest.raises(ConfigError, match="suite 'tiered' has no benchmark 'x'"):
        suite.settings_for("x", "commit")


# --------------------------------------------------------------------------- problems


def test_mistakes_in_tier_sizes_are_reported_with_file_line_and_path() -> None:
    path = TIERS / "bad_sizes.yaml"
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert str(info.value).splitlines()[0] == f"{path}: 7 problems"
    assert info.value.problems == [
        f"{path}:10: tiers.commit.sampels: unknown key 'sampels' (did you mean 'samples'?)",
        f"{path}:12: tiers.nightly.samples: must be >= 1 (got 0)",
        f"{path}:13: tiers.nightly.min_time_s: must be > 0 (got -1)",
        f"{path}:14: tiers.nightly.warmup: expected a number, got true",
        f"{path}:15: tiers.nightly.timeout_s: unknown key 'timeout_s': a tier sets only "
        "warmup, samples, min_time_s, repetitions (set timeout_s in defaults or in a benchmark)",
        f"{path}:16: tiers.hourly: bad key: must be one of 'commit', 'nightly' or 'weekly' "
        "(got 'hourly')",
        f"{path}:17: tiers.weekly: expected a mapping of sizes (warmup, samples, min_time_s, "
        "repetitions; {} for the suite's own), got null",
    ]


def test_a_key_that_is_no_setting_lists_the_tier_keys(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "tiers:\n  weekly: {zzz: 1}\n")
    assert problems(path) == [
        f"{path}:11: tiers.weekly.zzz: unknown key 'zzz' "
        "(known keys: warmup, samples, min_time_s, repetitions)"
    ]


def test_unknown_tier_in_the_list_form(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "tiers: [commit, hourly]\n")
    assert problems(path) == [
        f"{path}:10: tiers[1]: must be one of 'commit', 'nightly' or 'weekly' (got 'hourly')"
    ]


def test_tiers_must_be_a_list_or_a_mapping(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "tiers: commit\n")
    assert problems(path) == [
        f"{path}:10: tiers: expected a list of tier names or a mapping from tier name to "
        "sizes, got 'commit'"
    ]


def test_a_tier_listed_twice(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "tiers: [weekly, weekly]\n")
    assert problems(path) == [f"{path}:10: tiers: tier 'weekly' is listed twice"]
    path = write_suite(tmp_path, "tiers:\n  weekly: {}\n  weekly: {samples: 3}\n")
    assert problems(path) == [f"{path}:12: tiers: duplicate key 'weekly' (first at line 11)"]


# --------------------------------------------------------------------------- schema


def test_schema_describes_both_forms() -> None:
    schema = json_schema("suite")
    tiers = schema["properties"]["tiers"]
    assert "the tier's size > the benchmark's own > defaults" in tiers["description"]
    assert tiers["default"] == ["commit", "nightly", "weekly"]
    listing, mapping = tiers["anyOf"]
    assert listing["type"] == "array" and listing["uniqueItems"] is True
    assert listing["items"] == {"$ref": "#/$defs/Tier"}
    assert mapping["type"] == "object" and mapping["additionalProperties"] is False
    assert set(mapping["properties"]) == {"commit", "nightly", "weekly"}
    sizes_def = schema["$defs"]["TierSizes"]
    assert sizes_def["additionalProperties"] is False
    assert list(sizes_def["properties"]) == ["warmup", "samples", "min_time_s", "repetitions"]
    assert sizes_def["properties"]["samples"]["anyOf"][0]["minimum"] == 1
    assert sizes_def["properties"]["warmup"]["anyOf"][0]["minimum"] == 0
    assert sizes_def["properties"]["min_time_s"]["anyOf"][0]["exclusiveMinimum"] == 0
