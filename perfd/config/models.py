"""Pydantic models of perfd's three YAML files: suites, budgets and the daemon file.

Every model forbids unknown keys and is frozen. The models check one value at a time;
cross-references (a budget naming a suite, duplicate names found line by line) are checked
again by ``perfd.config.loader``, which knows the line of every value.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import shlex
import socket
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    TypeAdapter,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from perfd.errors import ConfigError
from perfd.model import KNOWN_METRICS, Direction, Metric, RunTier

# Version of the budgets file format. History, newest last:
#   1 - first format: version + list of budgets (suite, benchmark glob, metric, limits);
#       later gained optional statistic, action and max_value with a unit (old files unchanged).
BUDGETS_VERSION = 1

# Names that may appear as ${NAME} in build commands, environment values and harness paths.
KNOWN_VARIABLES: tuple[str, ...] = (
    "PERFD_WORKTREE",  # checkout of the commit under test
    "PERFD_BUILD_DIR",  # where the build puts its output
    "PERFD_HARNESS",  # directory holding perfd_harness.h / perfd_harness.c
    "PERFD_SUITE_DIR",  # directory of the suite file
    "PERFD_COMMIT",  # full sha of the commit under test
    "PERFD_JOBS",  # parallel build jobs perfd allows
)

# Error types raised by the models' own cross-checks; the loader reports the same problems
# with exact lines from its logical pass, so it drops these (see loader._GUARD_ERROR_PREFIX).
GUARD_ERROR_PREFIX = "perfd_guard_"

_FROZEN = ConfigDict(extra="forbid", frozen=True)

SUITE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
MACHINE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# $${NAME} is a literal "${NAME}"; ${NAME} is a variable reference.
_VARIABLE_RE = re.compile(r"\$(\$?)\{([^}]*)\}")
_URL_SCHEMES = ("https", "http", "ssh", "git", "file")
_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")
_STORAGE_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+._-]*://")


def _fail(kind: str, message: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``message`` (braces are not templates)."""
    return PydanticCustomError(kind, "{message}", {"message": message})


def describe_value(value: Any) -> str:
    """Short human rendering of a YAML value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    return str(value)


# --------------------------------------------------------------------------- variables


def variable_problems(text: str) -> list[str]:
    """Problems with the ``${NAME}`` references in ``text`` (empty when all are known)."""
    problems = []
    known = ", ".join(f"${{{n}}}" for n in KNOWN_VARIABLES)
    for match in _VARIABLE_RE.finditer(text):
        escaped, name = match.group(1), match.group(2)
        if not escaped and name not in KNOWN_VARIABLES:
            hint = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1)
            did_you_mean = f" (did you mean ${{{hint[0]}}}?)" if hint else ""
            problems.append(f"unknown variable ${{{name}}}; known: {known}{did_you_mean}")
    if "${" in _VARIABLE_RE.sub("", text):
        problems.append("unterminated ${ (write ${NAME}, or $${ for a literal ${)")
    return problems


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Replace every ``${NAME}`` in ``text`` by ``variables[NAME]`` (``$${`` is a literal ``${``).

    Raises ConfigError when a referenced variable has no value in ``variables``.
    """

    def substitute(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        try:
            return variables[name]
        except KeyError:
            raise ConfigError(
                f"variable ${{{name}}} has no value here (in {text!r}); "
                f"available: {', '.join(sorted(variables)) or 'none'}"
            ) from None

    return _VARIABLE_RE.sub(substitute, text)


def _check_variables(text: str) -> str:
    problems = variable_problems(text)
    if problems:
        raise _fail("unknown_variable", problems[0])
    return text


def _reject_bool(value: Any) -> Any:
    # pydantic's lax mode reads true as 1; in a config file that is always a mistake.
    if isinstance(value, bool):
        raise _fail("number_type", f"expected a number, got {describe_value(value)}")
    return value


def _reject_shell_string(value: Any) -> Any:
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError:
            words = []
        example = f": [{', '.join(_flow_scalar(w) for w in words)}]" if words else ""
        raise _fail(
            "shell_string",
            f"use a list of arguments, not a shell string{example}",
        )
    return value


def _flow_scalar(word: str) -> str:
    # Quote a word for a YAML flow sequence when it would not read back as the same string.
    if re.fullmatch(r"[A-Za-z0-9_./=+-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Strings that may contain ${NAME} references.
Templated = Annotated[str, AfterValidator(_check_variables)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
# Constraints come before the validator so that they reach the JSON Schema (minimum, ...).
NonNegInt = Annotated[int, Field(ge=0), BeforeValidator(_reject_bool)]
PosInt = Annotated[int, Field(ge=1), BeforeValidator(_reject_bool)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False), BeforeValidator(_reject_bool)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False), BeforeValidator(_reject_bool)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
Argv = Annotated[tuple[Templated, ...], BeforeValidator(_reject_shell_string)]


def _unique_cpus(cpus: tuple[int, ...]) -> tuple[int, ...]:
    seen: set[int] = set()
    for cpu in cpus:
        if cpu in seen:
            raise _fail("duplicate_cpu", f"cpu {cpu} is listed twice")
        seen.add(cpu)
    return cpus


CpuList = Annotated[tuple[NonNegInt, ...], AfterValidator(_unique_cpus)]


# --------------------------------------------------------------------------- metrics


class MetricSpec(BaseModel):
    """A metric to record: one perfd derives, or a custom one with unit and direction.

    Written either as a bare name (time) or as a mapping {name, unit, direction}.
    """

    model_config = _FROZEN

    name: NonEmptyStr = Field(
        description="Metric name; perfd derives: " + ", ".join(KNOWN_METRICS) + "."
    )
    unit: NonEmptyStr | None = Field(
        default=None, description="Unit of the metric; required for metrics perfd does not know."
    )
    direction: Direction | None = Field(
        default=None,
        description="Which way is better; required for metrics perfd does not know.",
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if not isinstance(data, Mapping):
            raise _fail(
                "metric_type",
                "expected a metric name or a mapping {name, unit, direction}, "
                f"got {describe_value(data)}",
            )
        return data

    @model_validator(mode="after")
    def _complete(self) -> MetricSpec:
        known = KNOWN_METRICS.get(self.name)
        if known is None:
            missing = [f for f in ("unit", "direction") if getattr(self, f) is None]
            if missing:
                close = difflib.get_close_matches(self.name, list(KNOWN_METRICS), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise _fail(
                    "unknown_metric",
                    f"metric '{self.name}' is not one perfd derives{hint}; a custom metric "
                    f"needs both unit and direction (known metrics: {', '.join(KNOWN_METRICS)})",
                )
            return self
        unit, direction = known
        if self.unit is not None and self.unit != unit:
            raise _fail(
                "metric_unit",
                f"metric '{self.name}' is measured in {unit}, not {self.unit!r} (leave unit out)",
            )
        if self.direction is not None and self.direction is not direction:
            raise _fail(
                "metric_direction",
                f"metric '{self.name}' is {direction.value}, not {self.direction.value} "
                "(leave direction out)",
            )
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The YAML short form (a bare name) is accepted by _short_form; tell editors too.
        schema = handler.resolve_ref_schema(handler(core_schema))
        short = {
            "type": "string",
            "minLength": 1,
            "description": "A metric perfd derives: " + ", ".join(KNOWN_METRICS) + ".",
            "examples": list(KNOWN_METRICS),
        }
        return {"anyOf": [short, schema]}

    def resolve(self) -> Metric:
        """The metric with unit and direction filled in from KNOWN_METRICS."""
        known = KNOWN_METRICS.get(self.name)
        unit = self.unit if self.unit is not None else known[0] if known else ""
        direction = self.direction or (known[1] if known else Direction.LOWER)
        return Metric(name=self.name, unit=unit, direction=direction)


def _unique_metrics(metrics: tuple[MetricSpec, ...]) -> tuple[MetricSpec, ...]:
    names = [m.name for m in metrics]
    for name in names:
        if names.count(name) > 1:
            raise _fail(GUARD_ERROR_PREFIX + "duplicate_metric", f"duplicate metric '{name}'")
    return metrics


MetricList = Annotated[tuple[MetricSpec, ...], Field(min_length=1), AfterValidator(_unique_metrics)]


# --------------------------------------------------------------------------- suites


class Tier(StrEnum):
    """When a suite runs in the daemon."""

    COMMIT = "commit"
    NIGHTLY = "nightly"
    WEEKLY = "weekly"


class BuildStep(BaseModel):
    """One build command, run without a shell."""

    model_config = _FROZEN

    argv: Argv = Field(
        min_length=1,
        description="Program and arguments as a list (never a shell string); may use ${PERFD_*}.",
    )
    cwd: Templated | None = Field(
        default=None, description="Working directory; default the worktree. May use ${PERFD_*}."
    )
    env: dict[EnvName, Templated] = Field(
        default_factory=dict, description="Environment variables merged over build.env."
    )
    timeout_s: PosFloat | None = Field(
        default=None, description="Seconds before the step is killed; default build.timeout_s."
    )


class BuildConfig(BaseModel):
    """How to build the benchmark binary from a checkout."""

    model_config = _FROZEN

    timeout_s: PosFloat = Field(
        default=900.0, description="Default timeout of each step, in seconds."
    )
    env: dict[EnvName, Templated] = Field(
        default_factory=dict, description="Environment variables for every step."
    )
    steps: tuple[BuildStep, ...] = Field(min_length=1, description="Commands run in order.")

    def env_for(self, step: BuildStep) -> dict[str, str]:
        """build.env with the step's env merged over it (values not yet expanded)."""
        return {**self.env, **step.env}

    def timeout_for(self, step: BuildStep) -> float:
        """The step's timeout in seconds, falling back to build.timeout_s."""
        return step.timeout_s if step.timeout_s is not None else self.timeout_s


class HarnessConfig(BaseModel):
    """The benchmark binary the build produces."""

    model_config = _FROZEN

    binary: Annotated[Templated, Field(min_length=1)] = Field(
        description="Path of the built benchmark binary, e.g. ${PERFD_BUILD_DIR}/bench."
    )
    args: Argv = Field(default=(), description="Extra arguments passed to every harness process.")


class MeasurementDefaults(BaseModel):
    """Measurement settings every benchmark inherits (and may override one by one)."""

    model_config = _FROZEN

    warmup: NonNegInt = Field(default=1, description="Warmup samples discarded before measuring.")
    samples: PosInt = Field(default=10, description="Samples recorded per process.")
    min_time_s: PosFloat = Field(
        default=0.01, description="Minimum duration of one sample, seconds."
    )
    repetitions: PosInt = Field(
        default=5,
        description="Separate processes per benchmark (the unit of statistical analysis).",
    )
    cpus: CpuList = Field(
        default=(), description="CPUs to pin to; processes rotate over them. Empty: not pinned."
    )
    timeout_s: PosFloat = Field(
        default=60.0, description="Timeout of one harness process, seconds."
    )
    counters: bool = Field(default=False, description="Ask the harness for hardware counters.")
    threshold_pct: PosFloat = Field(
        default=5.0, description="Change (percent) that counts as a regression."
    )
    metrics: MetricList = Field(
        default=(MetricSpec(name="time", unit=None, direction=None),),
        description="Metrics recorded for each benchmark.",
        json_schema_extra={"default": ["time"]},
    )


class BenchmarkConfig(BaseModel):
    """One benchmark of the harness, with optional overrides of the suite defaults."""

    model_config = _FROZEN

    name: NonEmptyStr = Field(description="The harness's benchmark name; unique in the suite.")
    description: str | None = Field(default=None, description="Free text.")
    warmup: NonNegInt | None = Field(default=None, description="Overrides defaults.warmup.")
    samples: PosInt | None = Field(default=None, description="Overrides defaults.samples.")
    min_time_s: PosFloat | None = Field(default=None, description="Overrides defaults.min_time_s.")
    repetitions: PosInt | None = Field(default=None, description="Overrides defaults.repetitions.")
    cpus: CpuList | None = Field(default=None, description="Overrides defaults.cpus.")
    timeout_s: PosFloat | None = Field(default=None, description="Overrides defaults.timeout_s.")
    counters: bool | None = Field(default=None, description="Overrides defaults.counters.")
    threshold_pct: PosFloat | None = Field(
        default=None, description="Overrides defaults.threshold_pct."
    )
    metrics: MetricList | None = Field(default=None, description="Replaces defaults.metrics.")


_OVERRIDABLE = tuple(MeasurementDefaults.model_fields)


class TierSizes(BaseModel):
    """How long a suite measures in one daemon tier; a size left out keeps the usual one."""

    model_config = _FROZEN

    warmup: NonNegInt | None = Field(default=None, description="Warmup samples in this tier.")
    samples: PosInt | None = Field(default=None, description="Samples per process in this tier.")
    min_time_s: PosFloat | None = Field(
        default=None, description="Minimum duration of one sample in this tier, seconds."
    )
    repetitions: PosInt | None = Field(
        default=None, description="Processes per benchmark in this tier."
    )

    @model_validator(mode="before")
    @classmethod
    def _mapping_only(cls, data: Any) -> Any:
        if not isinstance(data, Mapping | TierSizes):
            raise _fail(
                "tier_sizes_type",
                f"expected a mapping of sizes ({', '.join(TIER_SIZES)}; {{}} for the suite's "
                f"own), got {describe_value(data)}",
            )
        return data

    @classmethod
    def misplaced_key_message(cls, key: str) -> str | None:
        """Why ``key``, a measurement setting but not a size, is refused in a tier (else None)."""
        if key in _OVERRIDABLE and key not in cls.model_fields:
            return (
                f"a tier sets only {', '.join(cls.model_fields)} "
                f"(set {key} in defaults or in a benchmark)"
            )
        return None


# The measurement settings a tier may override, in MeasurementDefaults' order.
TIER_SIZES: tuple[str, ...] = tuple(TierSizes.model_fields)
assert set(TIER_SIZES) <= set(_OVERRIDABLE)

# Run tiers that are not daemon tiers: they measure with the suite's own sizes.
_UNTIERED_RUNS = frozenset({RunTier.MANUAL.value, RunTier.COMPARE.value})


def _unique_tiers(tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
    if len(set(tiers)) != len(tiers):
        dup = next(t for t in tiers if tiers.count(t) > 1)
        raise _fail("duplicate_tier", f"tier '{dup.value}' is listed twice")
    return tiers


_TIER_LIST: TypeAdapter[tuple[Tier, ...]] = TypeAdapter(
    Annotated[tuple[Tier, ...], AfterValidator(_unique_tiers)]
)


def _tiers_either_form(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # The list form [commit, nightly] is the mapping form with no overrides. It is validated
    # as a list so that its errors keep their item positions (tiers[1]); the ValidationError
    # of _TIER_LIST passes through the wrap validator with those locations.
    if isinstance(value, list | tuple):
        return {tier: TierSizes() for tier in _TIER_LIST.validate_python(value)}
    if isinstance(value, Mapping):
        return handler(value)
    raise _fail(
        "tiers_type",
        "expected a list of tier names or a mapping from tier name to sizes, "
        f"got {describe_value(value)}",
    )


class _TiersJsonSchema:
    """Tells editors about both forms of ``tiers``: a list of names, or name -> TierSizes."""

    @staticmethod
    def __get_pydantic_json_schema__(
        core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        mapping = handler(core_schema)  # {additionalProperties: TierSizes, propertyNames: Tier}
        listing = {"type": "array", "items": mapping["propertyNames"], "uniqueItems": True}
        by_name = {
            "type": "object",
            "properties": {tier.value: mapping["additionalProperties"] for tier in Tier},
            "additionalProperties": False,
        }
        return {"anyOf": [listing, by_name]}


# In file order; the list form maps every tier to TierSizes() (no overrides).
Tiers = Annotated[dict[Tier, TierSizes], WrapValidator(_tiers_either_form), _TiersJsonSchema()]


def _every_tier() -> dict[Tier, TierSizes]:
    return {tier: TierSizes() for tier in Tier}


@dataclass(frozen=True, slots=True)
class BenchmarkSettings:
    """A benchmark's effective measurement settings: suite defaults merged with overrides."""

    name: str
    description: str | None
    warmup: int
    samples: int
    min_time_s: float
    repetitions: int
    cpus: tuple[int, ...]
    timeout_s: float
    counters: bool
    threshold_pct: float
    metrics: tuple[Metric, ...]

    def metric(self, name: str) -> Metric | None:
        """The metric called ``name``, or None when this benchmark does not record it."""
        return next((m for m in self.metrics if m.name == name), None)


def _validate_repository(value: str) -> str:
    scheme = _URL_RE.match(value)
    if scheme and scheme.group(1).lower() not in _URL_SCHEMES:
        raise _fail(
            "repository_scheme",
            f"unsupported URL scheme '{scheme.group(1)}' "
            f"(use {', '.join(s + '://' for s in _URL_SCHEMES)}, user@host:path or a local path)",
        )
    return value


class SuiteConfig(BaseModel):
    """A suite: a repository, how to build its benchmark binary, and what to measure."""

    model_config = _FROZEN

    name: str = Field(
        pattern=SUITE_NAME_PATTERN, description="Suite name, unique across all suites."
    )
    description: str | None = Field(default=None, description="Free text.")
    repository: Annotated[NonEmptyStr, AfterValidator(_validate_repository)] = Field(
        description="Local path (relative to this file) or URL (https://, ssh://, "
        "user@host:path, file://) of the git repository."
    )
    branches: tuple[NonEmptyStr, ...] = Field(
        default=("main",), min_length=1, description="Branches the daemon tracks."
    )
    build: BuildConfig = Field(description="How to build the benchmark binary.")
    harness: HarnessConfig = Field(description="The benchmark binary and its arguments.")
    defaults: MeasurementDefaults = Field(
        default_factory=MeasurementDefaults,
        description="Measurement settings every benchmark inherits.",
    )
    tiers: Tiers = Field(
        default_factory=_every_tier,
        description="Daemon tiers this suite runs in: a list of names, or a mapping from name "
        "to the sizes (" + ", ".join(TIER_SIZES) + ") measured in that tier, so that a "
        "commit run is short and a weekly one long. Precedence for a size in a tier: the "
        "tier's size > the benchmark's own > defaults; a size the tier leaves out (and every "
        "size in the list form or in {}) keeps the benchmark's or the default. A tier's size "
        "applies to every benchmark of the suite; timeout_s is not a size, so it must fit the "
        "longest tier's process. [] or {}: the suite runs in no daemon tier.",
        json_schema_extra={"default": [tier.value for tier in Tier]},
    )
    benchmarks: tuple[BenchmarkConfig, ...] = Field(
        min_length=1, description="Benchmarks to run, by harness name."
    )

    _source_path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _guard_and_attach(self, info: ValidationInfo) -> SuiteConfig:
        names = [b.name for b in self.benchmarks]
        for name in names:
            if names.count(name) > 1:
                raise _fail(
                    GUARD_ERROR_PREFIX + "duplicate_benchmark", f"duplicate benchmark '{name}'"
                )
        source = (info.context or {}).get("source_path")
        if source is not None:
            self._source_path = Path(source).absolute()
        return self

    def with_source(self, path: Path) -> SuiteConfig:
        """A copy that knows it was read from ``path`` (relative repositories resolve there)."""
        copy = self.model_copy()
        copy._source_path = Path(path).absolute()
        return copy

    @property
    def source_path(self) -> Path | None:
        """Absolute path of the file this suite was loaded from (None when built in memory)."""
        return self._source_path

    @property
    def suite_dir(self) -> Path:
        """Directory of the suite file; the current directory for a suite built in memory."""
        return self._source_path.parent if self._source_path else Path.cwd()

    def repository_is_local(self) -> bool:
        """True when ``repository`` is a filesystem path rather than a URL."""
        return not (_URL_RE.match(self.repository) or _SCP_RE.match(self.repository))

    def repository_location(self) -> str:
        """Absolute path of a local repository (resolved against suite_dir); URLs unchanged."""
        if not self.repository_is_local():
            return self.repository
        path = Path(self.repository).expanduser()
        return str(path if path.is_absolute() else (self.suite_dir / path).resolve())

    def benchmark_names(self) -> tuple[str, ...]:
        """Benchmark names in file order."""
        return tuple(b.name for b in self.benchmarks)

    def tier_names(self) -> tuple[Tier, ...]:
        """Daemon tiers this suite runs in, in file order (empty: none)."""
        return tuple(self.tiers)

    def settings_for(self, benchmark_name: str, tier: str | None = None) -> BenchmarkSettings:
        """Effective settings of one benchmark measured in ``tier`` (None, manual, compare: the
        suite's own sizes); raises ConfigError for an unknown benchmark or tier, or a daemon
        tier the suite does not run in."""
        sizes = self._tier_sizes(tier)
        for bench in self.benchmarks:
            if bench.name == benchmark_name:
                return self._merge(bench, sizes)
        close = difflib.get_close_matches(benchmark_name, self.benchmark_names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"suite '{self.name}' has no benchmark '{benchmark_name}'{hint}; "
            f"it has: {', '.join(self.benchmark_names())}"
        )

    def all_settings(self, tier: str | None = None) -> tuple[BenchmarkSettings, ...]:
        """Effective settings of every benchmark in ``tier`` (as settings_for), in file order."""
        sizes = self._tier_sizes(tier)
        return tuple(self._merge(b, sizes) for b in self.benchmarks)

    def _tier_sizes(self, tier: str | None) -> TierSizes | None:
        if tier is None or tier in _UNTIERED_RUNS:
            return None
        names = [t.value for t in Tier]
        if tier not in names:
            close = difflib.get_close_matches(tier, names + sorted(_UNTIERED_RUNS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"unknown tier '{tier}'{hint}; tiers: {', '.join(names)} "
                f"({', '.join(r.value for r in RunTier if r in _UNTIERED_RUNS)}: no tier sizes)"
            )
        sizes = self.tiers.get(Tier(tier))
        if sizes is None:
            runs_in = ", ".join(t.value for t in self.tiers) or "none"
            raise ConfigError(
                f"suite '{self.name}' does not run in tier '{Tier(tier).value}' "
                f"(its tiers: {runs_in})"
            )
        return sizes

    def _merge(self, bench: BenchmarkConfig, sizes: TierSizes | None) -> BenchmarkSettings:
        # Precedence: the tier's size > the benchmark's own setting > the suite defaults.
        values: dict[str, Any] = {}
        for field in _OVERRIDABLE:
            chosen = getattr(sizes, field, None)  # None: no tier, or not a size it sets
            if chosen is None:
                chosen = getattr(bench, field)
            values[field] = chosen if chosen is not None else getattr(self.defaults, field)
        values["metrics"] = tuple(m.resolve() for m in values["metrics"])
        return BenchmarkSettings(name=bench.name, description=bench.description, **values)


# --------------------------------------------------------------------------- budgets


class BudgetConfidence(StrEnum):
    """Least confidence a regression needs before it breaks the budget."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class BudgetAgainst(StrEnum):
    """What a relative budget limit (max_regression_pct) is measured against."""

    BASELINE = "baseline"  # the series' previous history run
    REFERENCE = "reference"  # the reference build the run was paired with (perfd reference)


class BudgetStatistic(StrEnum):
    """Which statistic of a run a budget holds to its limits."""

    MEDIAN = "median"  # of the run's per-process values
    MEAN = "mean"  # of the run's per-process values
    P95 = "p95"  # of the run's iteration samples
    P99 = "p99"  # of the run's iteration samples


class BudgetAction(StrEnum):
    """What a broken budget does."""

    BLOCK = "block"  # fails the check: CI and gates exit 1
    WARN = "warn"  # shown, but the check passes


# Actions of the seed's old budgets form ({name: {threshold, action}}) and their new names.
OLD_BUDGET_ACTIONS: Mapping[str, BudgetAction] = {
    "block_deploy": BudgetAction.BLOCK,
    "block": BudgetAction.BLOCK,
    "warn": BudgetAction.WARN,
    "notify": BudgetAction.WARN,
}


def _refuse_old_action(value: Any) -> Any:
    if isinstance(value, str) and value not in tuple(BudgetAction) and value in OLD_BUDGET_ACTIONS:
        raise _fail(
            "old_budget_action",
            f"'{value}' is an action of the old budgets form; "
            f"write '{OLD_BUDGET_ACTIONS[value].value}'",
        )
    return value


@dataclass(frozen=True, slots=True)
class UnitDimension:
    """One kind of quantity a limit can be written in, and the size of each of its units."""

    name: str
    noun: str  # how a message names a value of this kind: "a time"
    factors: Mapping[str, float]  # unit suffix -> its size in the dimension's base unit
    advice: str  # what to write instead of a unit of another kind
    choices: str  # completes "or one with ..." in the message for an unreadable limit
    example: str


TIME_UNITS = UnitDimension(
    "time",
    "a time",
    # us, and both micro signs people type: U+00B5 (keyboards) and U+03BC (Greek mu).
    {"ns": 1.0, "us": 1e3, "\u00b5s": 1e3, "\u03bcs": 1e3, "ms": 1e6, "s": 1e9},
    "use ns, us, ms or s",
    "a unit (ns, us, ms or s)",
    "2.5us",
)
RATE_UNITS = UnitDimension(
    "rate",
    "a rate",
    {"/s": 1.0, "k/s": 1e3, "M/s": 1e6},
    "use /s, k/s or M/s",
    "a unit (/s, k/s or M/s)",
    "400k/s",
)
COUNT_UNITS = UnitDimension(
    "count",
    "a count",
    {"": 1.0, "k": 1e3, "M": 1e6},
    "use a bare number, or one with k or M",
    "k or M",
    "12k",
)
SIZE_UNITS = UnitDimension(
    "size",
    "a size",
    {
        "B": 1.0,
        "kB": 1e3,
        "MB": 1e6,
        "GB": 1e9,
        "KiB": 1024.0,
        "MiB": 1024.0**2,
        "GiB": 1024.0**3,
    },
    "use B, kB, MB, GB, KiB, MiB or GiB",
    "a unit (B, kB, MB, GB, KiB, MiB or GiB)",
    "140MB",
)
UNIT_DIMENSIONS: tuple[UnitDimension, ...] = (TIME_UNITS, RATE_UNITS, COUNT_UNITS, SIZE_UNITS)
# Metric units (KNOWN_METRICS, a suite's custom metrics) that are not spelled as a suffix.
_METRIC_UNIT_SUFFIX = {"ops/s": "/s", "count": "", "bytes": "B"}

_QUANTITY_RE = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(.*)")
_LIMIT_SUFFIXES = tuple(dict.fromkeys(s for d in UNIT_DIMENSIONS for s in d.factors if s))
# The same grammar for editors (JSON Schema): a number >= 0 and an optional unit.
LIMIT_TEXT_PATTERN = (
    r"^\s*\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*("
    + "|".join(re.escape(s) for s in _LIMIT_SUFFIXES)
    + r")?\s*$"
)


def split_quantity(text: str) -> tuple[float, str] | None:
    """'2.5 us' -> (2.5, 'us'), '12' -> (12.0, ''); None when ``text`` is not a number."""
    match = _QUANTITY_RE.fullmatch(text.strip())
    return (float(match.group(1)), match.group(2).strip()) if match else None


def dimension_of(suffix: str) -> UnitDimension | None:
    """The dimension of a unit suffix ('us', 'k/s', 'MiB'; '' is a count); None if unknown."""
    return next((d for d in UNIT_DIMENSIONS if suffix in d.factors), None)


def _metric_scale(unit: str) -> tuple[UnitDimension, float] | None:
    # A metric's unit as (its dimension, its size there), e.g. ms -> (time, 1e6).
    suffix = _METRIC_UNIT_SUFFIX.get(unit, unit)
    dimension = dimension_of(suffix) if suffix or unit == "count" else None
    return (dimension, dimension.factors[suffix]) if dimension else None


def _measured_in(metric: str, unit: str) -> str:
    if unit == "count":
        return f"metric '{metric}' is a count"
    return f"metric '{metric}' is measured in {unit}"


def limit_in_unit(text: str, metric: str, unit: str | None, suite: str | None = None) -> float:
    """A limit written as text ('2.5us', '400k/s', '12k', '4KiB', '2500') in ``unit``, the unit
    of ``metric`` (None: not known); raises PydanticCustomError naming both units."""
    scale = _metric_scale(unit) if unit is not None else None
    quantity = split_quantity(text)
    if quantity is None:
        if unit is None:
            expected = "expected a number in the metric's unit"
        elif scale is None:
            expected = f"expected a number in {unit}"
        else:
            noun = "a number" if unit == "count" else f"a number in {unit}"
            dimension = scale[0]
            expected = (
                f"expected {noun}, or one with {dimension.choices} such as '{dimension.example}'"
            )
        raise _fail("limit_parsing", f"{expected}; got {describe_value(text)}")
    number, suffix = quantity
    if number < 0:
        raise _fail("greater_than_equal", f"must be >= 0 (got {describe_value(text)})")
    if suffix == "" or suffix == unit:
        return number
    if unit is None:
        raise _fail(
            GUARD_ERROR_PREFIX + "limit_unit",
            f"metric '{metric}' is not one perfd derives and no suite '{suite}' loaded with this "
            f"budget records it, so {describe_value(text)} cannot be converted: write a bare "
            "number in the metric's unit",
        )
    if scale is None:
        raise _fail(
            "limit_unit",
            f"metric '{metric}' is measured in {unit}, which perfd cannot convert to: "
            f"write max_value as a bare number in {unit}",
        )
    dimension, size = scale
    if suffix in dimension.factors:
        return number * dimension.factors[suffix] / size
    measured = _measured_in(metric, unit)
    other = dimension_of(suffix)
    if other is not None:
        raise _fail(
            "limit_unit",
            f"{describe_value(text)} is {other.noun}, but {measured}: {dimension.advice}",
        )
    units = [s for s in dimension.factors if s]
    close = [s for s in units if s.lower() == suffix.lower()] or difflib.get_close_matches(
        suffix, units, n=1
    )
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise _fail(
        "limit_unit",
        f"unknown unit '{suffix}' in {describe_value(text)}{hint}; {measured}: {dimension.advice}",
    )


def _format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


def _budget_metric_unit(metric: Any, suite: Any, context: Any) -> str | None:
    # perfd's own metrics have fixed units; a custom metric's comes from the suites the
    # loader validates the budgets with (context "metric_units": {suite: {metric: unit}}).
    known = KNOWN_METRICS.get(metric) if isinstance(metric, str) else None
    if known is not None:
        return known[0]
    units = ((context or {}).get("metric_units") or {}).get(suite) or {}
    unit = units.get(metric)
    return unit if isinstance(unit, str) else None


BudgetLimit = Annotated[
    NonNegFloat | None,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {
                    "type": "string",
                    "pattern": LIMIT_TEXT_PATTERN,
                    "examples": ["2.5us", "100ms", "400k/s", "12k", "140MB"],
                },
                {"type": "null"},
            ]
        }
    ),
]
BudgetActionField = Annotated[BudgetAction, BeforeValidator(_refuse_old_action)]


class Budget(BaseModel):
    """An acceptable limit for a metric of the benchmarks a glob matches."""

    model_config = _FROZEN

    suite: NonEmptyStr = Field(description="Name of a suite.")
    benchmark: NonEmptyStr = Field(
        description="fnmatch glob over the suite's benchmark names, e.g. request/*."
    )
    metric: NonEmptyStr = Field(description="A metric the matched benchmarks record.")
    statistic: BudgetStatistic = Field(
        default=BudgetStatistic.MEDIAN,
        description="Statistic of a run held to the limits: median or mean of the run's "
        "per-process values, p95 or p99 of its samples.",
    )
    max_regression_pct: PosFloat | None = Field(
        default=None, description="Largest accepted regression, percent, against what "
        "`against` names."
    )
    against: BudgetAgainst = Field(
        default=BudgetAgainst.BASELINE,
        description="What max_regression_pct is measured against: baseline (the series' "
        "previous history run) or reference (the reference build the run took turns with, "
        "in its lock-step pairs; a run measured alone has no such value).",
    )
    max_value: BudgetLimit = Field(
        default=None,
        description="Absolute limit: a ceiling for lower_is_better metrics, a floor for "
        "higher_is_better ones. A bare number is in the metric's unit; a string may carry a "
        "unit converted to it: ns, us, ms, s (time); /s, k/s, M/s (throughput); k, M "
        "(counters); B, kB, MB, GB, KiB, MiB, GiB (bytes), e.g. '2.5us' or '400k/s'.",
    )
    confidence: BudgetConfidence = Field(
        default=BudgetConfidence.MEDIUM, description="Least confidence that breaks the budget."
    )
    action: BudgetActionField = Field(
        default=BudgetAction.BLOCK,
        description="What a broken budget does: block (the check fails: CI and gates exit 1) "
        "or warn (shown, the check passes).",
    )
    owner: str | None = Field(default=None, description="Who is responsible (free text).")

    # max_value as written when it had a unit ("2.5us"), and the unit max_value is in.
    _max_value_text: str | None = PrivateAttr(default=None)
    _unit: str | None = PrivateAttr(default=None)

    @field_validator("max_value", mode="before")
    @classmethod
    def _convert_units(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        metric = info.data.get("metric")
        if metric is None:
            # The metric is missing or invalid and reported there; without it no unit fits.
            raise _fail(GUARD_ERROR_PREFIX + "limit_unit", "needs a valid metric")
        suite = info.data.get("suite")
        unit = _budget_metric_unit(metric, suite, info.context)
        return limit_in_unit(value, metric, unit, suite)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_written_limit(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Budget:
        budget: Budget = handler(data)
        if not isinstance(data, Mapping):
            return budget  # already a Budget: keeps its own
        budget._unit = _budget_metric_unit(budget.metric, budget.suite, info.context)
        raw = data.get("max_value")
        quantity = split_quantity(raw) if isinstance(raw, str) else None
        if isinstance(raw, str) and quantity is not None and quantity[1]:
            budget._max_value_text = raw.strip()
        return budget

    @model_validator(mode="after")
    def _has_limit(self) -> Budget:
        if self.max_regression_pct is None and self.max_value is None:
            raise _fail("budget_limit", "a budget needs max_regression_pct, max_value or both")
        return self

    @property
    def unit(self) -> str | None:
        """The unit of max_value: the metric's ("ns" for time); None when it is not known."""
        return self._unit

    def max_value_display(self) -> str | None:
        """max_value for people: as written ("2.5us"), else number and unit ("2500 ns"); None
        without a max_value."""
        if self.max_value is None:
            return None
        if self._max_value_text is not None:
            return self._max_value_text
        number = _format_number(self.max_value)
        return f"{number} {self._unit}" if self._unit not in (None, "count") else number

    @property
    def blocking(self) -> bool:
        """True when breaking this budget fails the check (action block)."""
        return self.action is BudgetAction.BLOCK

    def matches(self, suite: str, benchmark: str, metric: str | None = None) -> bool:
        """True when this budget applies to ``benchmark`` of ``suite`` (and ``metric``)."""
        return (
            suite == self.suite
            and fnmatch.fnmatchcase(benchmark, self.benchmark)
            and (metric is None or metric == self.metric)
        )


def _check_budgets_version(version: int) -> int:
    if version != BUDGETS_VERSION:
        raise _fail(
            "unsupported_version",
            f"unsupported budgets version {version}: this perfd reads version {BUDGETS_VERSION}",
        )
    return version


BudgetsVersion = Annotated[
    int, BeforeValidator(_reject_bool), AfterValidator(_check_budgets_version)
]


class BudgetsConfig(BaseModel):
    """The budgets file: performance limits that gate CI and page owners."""

    model_config = _FROZEN

    version: BudgetsVersion = Field(
        description="Format version; must be 1.", json_schema_extra={"const": BUDGETS_VERSION}
    )
    budgets: tuple[Budget, ...] = Field(default=(), description="The budgets.")

    def for_benchmark(self, suite: str, benchmark: str, metric: str) -> tuple[Budget, ...]:
        """Budgets that apply to one benchmark x metric of a suite, in file order."""
        return tuple(b for b in self.budgets if b.matches(suite, benchmark, metric))


# --------------------------------------------------------------------------- daemon


def machine_id_from_hostname(hostname: str | None = None) -> str:
    """A valid machine id made from ``hostname`` (default: this host's name)."""
    name = hostname if hostname is not None else socket.gethostname()
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", name)
    name = re.sub(r"^[^A-Za-z0-9]+", "", name).rstrip("-_.")
    return name or "localhost"


def _default_storage_url(data: dict[str, Any]) -> str:
    return f"sqlite:///{data['data_dir']}/perfd.db"


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOST_PORT_RE = re.compile(r"^(?P<host>[^\s:]+|\[[0-9a-fA-F:]+\]):(?P<port>[0-9]{1,5})$")


class HttpConfig(BaseModel):
    """The daemon's one HTTP port: /metrics, /healthz, /readyz, /api/v1, webhooks."""

    model_config = _FROZEN

    listen: str = Field(
        default="127.0.0.1:8470",
        description="host:port to bind; loopback by default (0.0.0.0 exposes it to the "
        "network: put it behind a firewall or proxy).",
    )
    token_env: NonEmptyStr = Field(
        default="PERFD_API_TOKEN",
        description="Environment variable holding the bearer token that write endpoints "
        "(enqueue, alert state changes) require; unset: every write is refused.",
    )
    webhook_secret_env: NonEmptyStr = Field(
        default="PERFD_WEBHOOK_SECRET",
        description="Environment variable holding the GitHub webhook secret (HMAC-SHA256 "
        "signatures); unset: every webhook is refused.",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        match = _HOST_PORT_RE.match(value)
        if match is None or not 0 < int(match["port"]) < 65536:
            raise _fail("listen", f"expected host:port such as 127.0.0.1:8470, got "
                                  f"{describe_value(value)}")
        return value

    def address(self) -> tuple[str, int]:
        """(host, port) to bind."""
        match = _HOST_PORT_RE.match(self.listen)
        assert match is not None
        return match["host"].strip("[]"), int(match["port"])


class ScheduleConfig(BaseModel):
    """A cron tier: run every suite that declares ``tier`` at a wall-clock time."""

    model_config = _FROZEN

    tier: Literal["nightly", "weekly"] = Field(description="Which tier this schedule runs.")
    at: str = Field(description="Local time HH:MM in ``timezone``.",
                    pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    days: tuple[Day, ...] = Field(
        default=_DAYS,
        description="Day names (never numbers: cron's 0 is Sunday, APScheduler's Monday); "
        "default every day. A weekly schedule names its day, e.g. [sun].",
    )
    timezone: NonEmptyStr = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin.")
    misfire_grace_s: PosFloat = Field(
        default=3600.0,
        description="A run that could not start on time (the daemon busy or down) still "
        "starts up to this late; beyond it the start-up catch-up from perfd's records runs it.",
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise _fail("timezone", f"unknown time zone {describe_value(value)} (use an IANA "
                                    "name such as UTC or Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _weekly_names_its_days(self) -> ScheduleConfig:
        if not self.days:
            raise _fail("days", "needs at least one day name")
        if self.tier == "weekly" and len(self.days) == 7:
            raise _fail("days", "a weekly schedule names its day(s), e.g. days: [sun]")
        return self


class PollConfig(BaseModel):
    """Per-commit tier by polling: new commits on the suites' tracked branches."""

    model_config = _FROZEN

    interval_s: float = Field(
        default=60.0, ge=0, allow_inf_nan=False,
        description="Seconds between polls of each tracked repository; 0 turns polling off "
        "(webhooks and perfd enqueue still work).",
    )
    max_backoff_s: PosFloat = Field(
        default=900.0, description="Longest wait between retries of an unreachable remote."
    )


class JobsConfig(BaseModel):
    """The job queue: leases, retries and what a burst of pushes does."""

    model_config = _FROZEN

    lease_s: PosFloat = Field(
        default=300.0,
        description="A claimed job belongs to its worker this long; the worker's heartbeat "
        "extends it. A job whose worker died is claimed again once its lease expires.",
    )
    heartbeat_s: PosFloat = Field(default=30.0, description="How often a worker extends its lease.")
    max_attempts: int = Field(
        default=3, ge=1, description="A job that fails this many times stays FAILED with its error."
    )
    burst: Literal["newest", "all"] = Field(
        default="newest",
        description="A push of several commits: newest measures the newest commit of each "
        "suite x branch and marks the queued older ones SKIPPED (kept as unmeasured for "
        "bisection); all measures every one.",
    )
    bisect: bool = Field(
        default=True,
        description="When a confirmation opens an alert whose range spans commits nobody "
        "measured, queue a bisect job that finds the first bad commit in lock-step pairs "
        "and records it on the alert.",
    )
    bisect_max_steps: int = Field(
        default=12, ge=1,
        description="Most commits one automatic bisection measures (builds that fail do not "
        "count); it reports the smallest range proven when it runs out.",
    )


class DaemonConfig(BaseModel):
    """The daemon file: where perfd keeps its data and finds suites and budgets."""

    model_config = _FROZEN

    machine_id: str = Field(
        default_factory=machine_id_from_hostname,
        pattern=MACHINE_ID_PATTERN,
        description="Identifies this benchmark machine; default: the hostname.",
    )
    data_dir: Path = Field(
        default=Path(".perfd"),
        validate_default=True,
        description="Directory for the database, builds and evidence; relative to this file.",
    )
    storage_url: str = Field(
        default_factory=_default_storage_url,
        description="SQLAlchemy database URL; default sqlite:///<data_dir>/perfd.db.",
    )
    suites_dir: Path = Field(
        default=Path("suites"),
        validate_default=True,
        description="Directory of suite files; relative to this file.",
    )
    budgets: Path = Field(
        default=Path("budgets.yaml"),
        validate_default=True,
        description="Budgets file (may be absent); relative to this file.",
    )
    http: HttpConfig = Field(default_factory=HttpConfig, description="The daemon's HTTP port.")
    schedules: tuple[ScheduleConfig, ...] = Field(
        default=(), description="Cron tiers (nightly, weekly) of the daemon."
    )
    poll: PollConfig = Field(default_factory=PollConfig, description="Polling for new commits.")
    jobs: JobsConfig = Field(default_factory=JobsConfig, description="The job queue.")

    @model_validator(mode="before")
    @classmethod
    def _fill_machine_id(cls, data: Any, info: ValidationInfo) -> Any:
        hostname = (info.context or {}).get("hostname")
        if isinstance(data, Mapping) and "machine_id" not in data and hostname is not None:
            return {**data, "machine_id": machine_id_from_hostname(hostname)}
        return data

    @field_validator("data_dir", "suites_dir", "budgets", mode="after")
    @classmethod
    def _resolve_path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @field_validator("storage_url", mode="after")
    @classmethod
    def _check_url(cls, value: str, info: ValidationInfo) -> str:
        if not _STORAGE_URL_RE.match(value):
            raise _fail(
                "storage_url",
                f"expected an SQLAlchemy URL such as sqlite:////var/lib/perfd/perfd.db or "
                f"postgresql+psycopg://perfd@db/perfd, got {describe_value(value)}",
            )
        # A relative SQLite path would depend on the daemon's working directory; make it
        # relative to this file like every other path in it.
        prefix = "sqlite:///"
        rest = value[len(prefix) :] if value.startswith(prefix) else None
        if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
            return prefix + str(_resolve(Path(rest), info))
        return value

    # The fields already hold resolved values (absolute paths, a filled-in machine id and
    # database URL); these accessors exist for callers that ask for them explicitly.
    def machine_id_resolved(self) -> str:
        """The machine id (the sanitised hostname when the file does not set one)."""
        return self.machine_id

    def data_dir_resolved(self) -> Path:
        """The data directory (absolute when loaded from a file)."""
        return self.data_dir

    def storage_url_resolved(self) -> str:
        """The SQLAlchemy URL (sqlite:///<data_dir>/perfd.db when the file does not set one)."""
        return self.storage_url

    def suites_dir_resolved(self) -> Path:
        """The suites directory (absolute when loaded from a file)."""
        return self.suites_dir

    def budgets_resolved(self) -> Path:
        """The budgets file path (absolute when loaded from a file; it may not exist)."""
        return self.budgets

    @classmethod
    def default(cls, cwd: Path, hostname: str | None = None) -> DaemonConfig:
        """The configuration used when no daemon file is given: everything under ``cwd``."""
        return cls.model_validate({}, context={"base_dir": Path(cwd), "hostname": hostname})


def _resolve(value: Path, info: ValidationInfo) -> Path:
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if value.is_absolute() or base is None:
        return value
    return Path(base).absolute() / value
