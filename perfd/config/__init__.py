"""perfd's YAML configuration: suites, budgets and the daemon file.

Load with ``load_suite`` / ``load_suites`` / ``load_budgets`` / ``load_daemon``; every
problem of a file is reported at once in a ``ConfigError`` as ``file:line: path: message``.
"""

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
    BudgetConfidence,
    BudgetsConfig,
    BuildConfig,
    BuildStep,
    DaemonConfig,
    HarnessConfig,
    MeasurementDefaults,
    MetricSpec,
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
    "BudgetConfidence",
    "BudgetsConfig",
    "BuildConfig",
    "BuildStep",
    "DaemonConfig",
    "HarnessConfig",
    "MeasurementDefaults",
    "MetricSpec",
    "SuiteConfig",
    "Tier",
    "check_paths",
    "detect_kind",
    "expand",
    "find_suite",
    "json_schema",
    "load_budgets",
    "load_daemon",
    "load_suite",
    "load_suites",
]
