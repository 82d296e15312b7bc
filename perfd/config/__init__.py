"""perfd's YAML configuration: suites, budgets and the daemon file.

Load everything at once with ``load_config_set`` (an immutable, fully validated
``ConfigSet``), or one file with ``load_suite`` / ``load_suites`` / ``load_budgets`` /
``load_daemon``; every problem is reported at once in a ``ConfigError`` as
``file:line: path: message``.
"""

from perfd.config.configset import ConfigSet, SourceFile, load_config_set
from perfd.config.loader import (
    check_paths,
    detect_kind,
    find_suite,
    load_budgets,
    load_daemon,
    load_suite,
    load_suites,
)
from perfd.config.models import (
    BUDGETS_VERSION,
    KNOWN_VARIABLES,
    BenchmarkConfig,
    BenchmarkSettings,
    Budget,
    BudgetAction,
    BudgetAgainst,
    BudgetConfidence,
    BudgetsConfig,
    BudgetStatistic,
    BuildConfig,
    BuildStep,
    DaemonConfig,
    HarnessConfig,
    HttpConfig,
    JobsConfig,
    MeasurementDefaults,
    MetricSpec,
    PollConfig,
    ScheduleConfig,
    SuiteConfig,
    Tier,
    expand,
)
from perfd.config.schema import json_schema

__all__ = [
    "BUDGETS_VERSION",
    "KNOWN_VARIABLES",
    "BenchmarkConfig",
    "BenchmarkSettings",
    "Budget",
    "BudgetAction",
    "BudgetConfidence",
    "BudgetAgainst",
    "BudgetStatistic",
    "BudgetsConfig",
    "BuildConfig",
    "BuildStep",
    "ConfigSet",
    "DaemonConfig",
    "HttpConfig",
    "JobsConfig",
    "PollConfig",
    "ScheduleConfig",
    "HarnessConfig",
    "MeasurementDefaults",
    "MetricSpec",
    "SourceFile",
    "SuiteConfig",
    "Tier",
    "check_paths",
    "detect_kind",
    "expand",
    "find_suite",
    "json_schema",
    "load_budgets",
    "load_config_set",
    "load_daemon",
    "load_suite",
    "load_suites",
]
