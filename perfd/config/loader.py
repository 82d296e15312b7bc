"""Read perfd's YAML files and report every problem at once as ``file:line: path: message``.

Reading happens in three passes, each of which collects problems instead of stopping:

1. YAML: compose the node tree with PyYAML's SafeLoader, build plain Python data from it and
   remember the line of every mapping key and sequence item (duplicate keys, several
   documents, an empty file or a top level that is not a mapping are problems here);
2. schema: validate with the pydantic models and turn each pydantic error into a problem at
   the line of the deepest node of its location that exists;
3. logic: duplicate names and references between files (budgets -> suites -> benchmarks);
   ``check_set`` is the one pass across files that ``check_paths`` and ``load_config_set``
   both use.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, NoReturn, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from perfd.config.models import (
    GUARD_ERROR_PREFIX,
    OLD_BUDGET_ACTIONS,
    RATE_UNITS,
    TIME_UNITS,
    BudgetConfidence,
    BudgetsConfig,
    DaemonConfig,
    SuiteConfig,
    describe_value,
    dimension_of,
    expand,
    split_quantity,
)
from perfd.errors import ConfigError

__all__ = [
    "check_paths",
    "expand",
    "find_suite",
    "load_budgets",
    "load_daemon",
    "load_suite",
    "load_suites",
]

Loc = tuple[Any, ...]
Kind = Literal["suite", "budgets", "daemon"]

YAML_SUFFIXES = (".yaml", ".yml")
DAEMON_KEYS = frozenset(DaemonConfig.model_fields) - {"budgets"}

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_PLAIN_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one file; ``str()`` gives ``file:line: path: message``."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def format_path(loc: Loc) -> str:
    """``("benchmarks", 2, "warmup")`` -> ``benchmarks[2].warmup``."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY_RE.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, default=str)}]"
    return text


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """The problems of one file without repeats, by line then path."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.path))


def _plural(count: int) -> str:
    return f"{count} problem" if count == 1 else f"{count} problems"


def raise_problems(label: str, problems: Sequence[Problem]) -> NoReturn:
    """Raise one ConfigError headed ``label: N problems`` that lists ``problems``."""
    raise ConfigError(f"{label}: {_plural(len(problems))}", problems=[str(p) for p in problems])


# --------------------------------------------------------------------------- YAML pass


@dataclass
class Document:
    """A YAML file as plain data plus the line of every key and item in it."""

    file: str  # the name shown in messages, as the user gave it
    path: Path
    data: Any
    digest: str = ""  # SHA-256 (hex) of the bytes parsed, so a reload can tell an edit
    lines: dict[Loc, int] = field(default_factory=dict)
    # Source text of plain scalars that YAML did not read as strings (4, yes, 2024-01-01),
    # so that "expected a string" can show what to quote.
    plain_sources: dict[Loc, str] = field(default_factory=dict)
    # Values the YAML pass already reported (bad tag, cyclic alias); not validated again.
    unreadable: set[Loc] = field(default_factory=set)

    def line_of(self, loc: Loc) -> int:
        """Line of the deepest node on ``loc`` that exists in the file."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return 1

    def problem(self, loc: Loc, message: str) -> Problem:
        return Problem(self.file, self.line_of(loc), format_path(loc), message)


class _Builder:
    """Builds plain data from a composed node tree, recording lines and problems."""

    def __init__(self, loader: yaml.SafeLoader, doc: Document) -> None:
        self.loader = loader
        self.doc = doc
        self.problems: list[Problem] = []
        self._active: set[int] = set()  # nodes being built: an alias to one is a cycle

    def _problem(self, node: Node, loc: Loc, message: str, value_lost: bool = True) -> None:
        if value_lost:
            self.doc.unreadable.add(loc)
        self.problems.append(
            Problem(self.doc.file, node.start_mark.line + 1, format_path(loc), message)
        )

    def build(self, node: Node, loc: Loc) -> Any:
        if id(node) in self._active:
            self._problem(node, loc, "an alias refers to a node that contains it")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, SequenceNode):
                return self._sequence(node, loc)
            return self._scalar(node, loc)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: Node, loc: Loc) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self._problem(node, loc, f"YAML error: {getattr(exc, 'problem', None) or exc}")
            return None
        if isinstance(node, ScalarNode) and node.style is None and not isinstance(value, str):
            self.doc.plain_sources[loc] = node.value
        return value

    def _sequence(self, node: SequenceNode, loc: Loc) -> list[Any] | None:
        if node.tag != _SEQ_TAG:
            self._problem(node, loc, f"unsupported YAML tag {node.tag}")
            return None
        items = []
        for index, item in enumerate(node.value):
            self.doc.lines[(*loc, index)] = item.start_mark.line + 1
            items.append(self.build(item, (*loc, index)))
        return items

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[Any, Any] | None:
        if node.tag != _MAP_TAG:
            self._problem(node, loc, f"unsupported YAML tag {node.tag}")
            return None
        result: dict[Any, Any] = {}
        key_lines: dict[Any, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(
                    key_node, loc, "a mapping key must be a plain value", value_lost=False
                )
                continue
            key = self._scalar(key_node, loc)
            line = key_node.start_mark.line + 1
            if key in key_lines:
                self.problems.append(
                    Problem(
                        self.doc.file,
                        line,
                        format_path(loc),
                        f"duplicate key '{key}' (first at line {key_lines[key]})",
                    )
                )
                continue
            key_lines[key] = line
            self.doc.lines[(*loc, key)] = line
            result[key] = self.build(value_node, (*loc, key))
        for merge in merges:
            self._merge(merge, loc, result)
        return result

    def _merge(self, node: Node, loc: Loc, result: dict[Any, Any]) -> None:
        # "<<: *base" copies the keys the mapping does not set itself; the first source wins.
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                message = "'<<' must merge a mapping or a list of mappings"
                self._problem(source, loc, message, value_lost=False)
                continue
            saved_lines, saved_plain = self.doc.lines, self.doc.plain_sources
            self.doc.lines, self.doc.plain_sources = {}, {}
            try:
                merged = self.build(source, loc) or {}
                scratch_lines, scratch_plain = self.doc.lines, self.doc.plain_sources
            finally:
                self.doc.lines, self.doc.plain_sources = saved_lines, saved_plain
            for key, value in merged.items():
                if key in result:
                    continue
                result[key] = value
                prefix = (*loc, key)
                self.doc.lines.update(_under(prefix, scratch_lines))
                self.doc.plain_sources.update(_under(prefix, scratch_plain))


def _under(prefix: Loc, table: Mapping[Loc, Any]) -> dict[Loc, Any]:
    """The entries of ``table`` at ``prefix`` or below it."""
    return {loc: item for loc, item in table.items() if loc[: len(prefix)] == prefix}


def _syntax_problem(file: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    message = f"YAML syntax error: {problem}"
    if context and context_mark is not None and context_mark is not mark:
        message += f" ({context} at line {context_mark.line + 1})"
    if "'\\t'" in problem:
        message += "; YAML does not allow tabs for indentation"
    return Problem(file, mark.line + 1 if mark is not None else None, "", message)


def read_document(path: Path, file: str | None = None) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML file into a Document; returns (None, problems) when it is unusable."""
    file = file if file is not None else str(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        return None, [Problem(file, None, "", "no such file")]
    except IsADirectoryError:
        return None, [Problem(file, None, "", "is a directory, expected a YAML file")]
    except UnicodeDecodeError as exc:
        return None, [Problem(file, None, "", f"not UTF-8 text (byte {exc.start})")]
    except OSError as exc:
        return None, [Problem(file, None, "", f"cannot read: {exc.strerror or exc}")]

    doc = Document(file=file, path=path, data=None, digest=hashlib.sha256(raw).hexdigest())
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_node() if loader.check_node() else None
            if loader.check_node():
                line = loader.peek_event().start_mark.line + 1
                return None, [
                    Problem(
                        file,
                        line,
                        "",
                        "a second YAML document starts here; a perfd file holds exactly one",
                    )
                ]
        except yaml.YAMLError as exc:
            return None, [_syntax_problem(file, exc)]
        if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL_TAG):
            empty = "file is empty; expected a mapping of keys to values"
            return None, [Problem(file, 1, "", empty)]
        builder = _Builder(loader, doc)
        doc.lines[()] = root.start_mark.line + 1
        doc.data = builder.build(root, ())
        if not isinstance(doc.data, dict):
            builder.problems.append(
                Problem(
                    file,
                    root.start_mark.line + 1,
                    "",
                    "the top level must be a mapping of keys to values, "
                    f"got {describe_value(doc.data)}",
                )
            )
            return None, builder.problems
        return doc, builder.problems
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- schema pass


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = (models or members)[0]
        else:
            return tp


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that validates the value at ``loc`` (None when not a model)."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return None
            tp = tp.model_fields[part].annotation
            continue
        origin = get_origin(tp)
        args = get_args(tp)
        if origin in (list, tuple) and args:
            tp = args[0]
        elif origin in (dict, Mapping) and len(args) == 2:
            tp = args[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unknown_key(model: type[BaseModel], loc: Loc) -> str:
    key = loc[-1]
    parent = _model_at(model, loc[:-1])
    # A model may explain a key that is valid elsewhere better than a close match would
    # (timeout_s in a tier is not a typo of min_time_s).
    misplaced = getattr(parent, "misplaced_key_message", None)
    explained = misplaced(str(key)) if misplaced is not None else None
    if explained:
        return f"unknown key '{key}': {explained}"
    known = list(parent.model_fields) if parent else []
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    if known:
        return f"unknown key '{key}' (known keys: {', '.join(known)})"
    return f"unknown key '{key}'"


def _error_message(err: Mapping[str, Any], doc: Document, model: type[BaseModel]) -> str | None:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    loc = tuple(err["loc"])
    got = describe_value(err.get("input"))
    if "message" in ctx:  # our own errors: the message is already written for people
        return str(ctx["message"])
    simple = {
        "missing": "field required",
        "int_type": f"expected an integer, got {got}",
        "int_parsing": f"expected an integer, got {got}",
        "int_from_float": f"expected an integer, got {got}",
        "float_type": f"expected a number, got {got}",
        "float_parsing": f"expected a number, got {got}",
        "finite_number": f"must be a finite number, got {got}",
        "bool_type": f"expected true or false, got {got}",
        "bool_parsing": f"expected true or false, got {got}",
        "list_type": f"expected a list, got {got}",
        "tuple_type": f"expected a list, got {got}",
        "iterable_type": f"expected a list, got {got}",
        "dict_type": f"expected a mapping, got {got}",
        "model_type": f"expected a mapping, got {got}",
        "model_attributes_type": f"expected a mapping, got {got}",
        "path_type": f"expected a path, got {got}",
    }
    if kind in simple:
        return simple[kind]
    if kind == "default_factory_not_called":  # a consequence of another error
        return None
    if kind == "extra_forbidden":
        return _unknown_key(model, loc)
    if kind == "string_type":
        source = doc.plain_sources.get(loc)
        hint = f' (write "{source}" in quotes to mean the text)' if source is not None else ""
        return f"expected a string, got {got}{hint}"
    bounds = {
        "greater_than_equal": ">=",
        "greater_than": ">",
        "less_than_equal": "<=",
        "less_than": "<",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {bounds[kind]} {limit} (got {got})"
    if kind in ("string_too_short", "too_short"):
        minimum = ctx.get("min_length", 1)
        value = err.get("input")
        if kind == "too_short" and isinstance(value, list | tuple) and len(value) >= minimum:
            return None  # items failed validation; they are reported one by one
        if kind == "string_too_short":
            return "must not be empty" if minimum == 1 else f"needs at least {minimum} characters"
        return "needs at least one item" if minimum == 1 else f"needs at least {minimum} items"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", "")).removeprefix("^").removesuffix("$")
        return f"must match {pattern} (got {got})"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected')} (got {got})"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    msg = str(err.get("msg", kind))
    return msg[:1].lower() + msg[1:]


def _validate(
    doc: Document, model: type[BaseModel], context: Mapping[str, Any]
) -> tuple[Any, list[Problem], list[Problem]]:
    """(instance or None, problems, problems the logical pass reports better)."""
    try:
        return model.model_validate(doc.data, context=dict(context)), [], []
    except ValidationError as exc:
        problems: list[Problem] = []
        guarded: list[Problem] = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if p != "[key]")
            if any(loc[:end] in doc.unreadable for end in range(len(loc) + 1)):
                continue
            message = _error_message(err, doc, model)
            if message is None:
                continue
            if "[key]" in err["loc"]:
                message = f"bad key: {message}"
            target = guarded if err["type"].startswith(GUARD_ERROR_PREFIX) else problems
            target.append(doc.problem(loc, message))
        return None, problems, guarded


# --------------------------------------------------------------------------- logic pass


def _metric_name(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        return entry["name"]
    return None


def _duplicate_metrics(doc: Document, loc: Loc, metrics: Any) -> list[Problem]:
    if not isinstance(metrics, list):
        return []
    first: dict[str, int] = {}
    problems = []
    for index, entry in enumerate(metrics):
        name = _metric_name(entry)
        if name is None:
            continue
        item = (*loc, index)
        if name in first:
            problems.append(
                doc.problem(item, f"duplicate metric '{name}' (first at line {first[name]})")
            )
        else:
            first[name] = doc.line_of(item)
    return problems


def _suite_logic(doc: Document) -> list[Problem]:
    data = doc.data
    problems: list[Problem] = []
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        problems += _duplicate_metrics(doc, ("defaults", "metrics"), defaults.get("metrics"))
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list):
        return problems
    first: dict[str, int] = {}
    for index, bench in enumerate(benchmarks):
        if not isinstance(bench, dict):
            continue
        name = bench.get("name")
        if isinstance(name, str):
            loc = ("benchmarks", index, "name")
            if name in first:
                message = f"duplicate benchmark name '{name}' (first at line {first[name]})"
                problems.append(doc.problem(loc, message))
            else:
                first[name] = doc.line_of(loc)
        problems += _duplicate_metrics(doc, ("benchmarks", index, "metrics"), bench.get("metrics"))
    return problems


def _listing(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _budget_logic(
    doc: Document, suites: Mapping[str, SuiteConfig], broken: Mapping[str, str | None]
) -> list[Problem]:
    """Budgets that name an unknown suite, match no benchmark, or name an unrecorded metric.

    ``broken`` maps names of suites that failed to load to the file to look at (None when
    that file's problems are reported in the same run): budgets on them are not judged.
    """
    budgets = doc.data.get("budgets")
    if not isinstance(budgets, list):
        return []
    problems: list[Problem] = []
    for index, budget in enumerate(budgets):
        if not isinstance(budget, dict):
            continue
        suite_name = budget.get("suite")
        if not isinstance(suite_name, str) or not suite_name:
            continue
        suite = suites.get(suite_name)
        if suite is None:
            if suite_name in broken:
                where = broken[suite_name]
                if where is not None:
                    problems.append(
                        doc.problem(
                            ("budgets", index, "suite"),
                            f"suite '{suite_name}' cannot be checked: {where} has problems",
                        )
                    )
                continue
            close = difflib.get_close_matches(suite_name, list(suites), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = f"known suites: {_listing(sorted(suites))}" if suites else "no suites loaded"
            message = f"unknown suite '{suite_name}'{hint}; {known}"
            problems.append(doc.problem(("budgets", index, "suite"), message))
            continue
        pattern = budget.get("benchmark")
        if not isinstance(pattern, str) or not pattern:
            continue
        matched = [s for s in suite.all_settings() if fnmatch.fnmatchcase(s.name, pattern)]
        if not matched:
            problems.append(
                doc.problem(
                    ("budgets", index, "benchmark"),
                    f"'{pattern}' matches no benchmark of suite '{suite_name}' "
                    f"(it has: {_listing(suite.benchmark_names())})",
                )
            )
            continue
        metric = budget.get("metric")
        recorded = list(dict.fromkeys(m.name for s in matched for m in s.metrics))
        if isinstance(metric, str) and metric and metric not in recorded:
            problems.append(
                doc.problem(
                    ("budgets", index, "metric"),
                    f"no benchmark of suite '{suite_name}' matching '{pattern}' records metric "
                    f"'{metric}' (they record: {', '.join(recorded)})",
                )
            )
    return problems


# --------------------------------------------------------------------------- per kind


def _check_suite(doc: Document) -> tuple[SuiteConfig | None, list[Problem]]:
    suite, problems, guarded = _validate(doc, SuiteConfig, {"source_path": doc.path.absolute()})
    problems += _suite_logic(doc)
    if suite is None and not problems:
        problems = guarded
    return (suite if not problems else None), sort_problems(problems)


def _metric_units(suites: Mapping[str, SuiteConfig]) -> dict[str, dict[str, str]]:
    """{suite: {metric: unit}} of the metrics each suite records (a metric recorded in two
    units by one suite is left out: a limit with a unit cannot be converted for it)."""
    units: dict[str, dict[str, str]] = {}
    for name, suite in suites.items():
        seen: dict[str, set[str]] = {}
        for settings in suite.all_settings():
            for metric in settings.metrics:
                seen.setdefault(metric.name, set()).add(metric.unit)
        units[name] = {m: next(iter(u)) for m, u in seen.items() if len(u) == 1}
    return units


def _check_budgets(
    doc: Document, suites: Mapping[str, SuiteConfig], broken: Mapping[str, str | None]
) -> tuple[BudgetsConfig | None, list[Problem]]:
    old_form = old_budgets_problem(doc)
    if old_form is not None:
        return None, [old_form]
    context = {"metric_units": _metric_units(suites)}
    budgets, problems, guarded = _validate(doc, BudgetsConfig, context)
    problems += _budget_logic(doc, suites, broken)
    if budgets is None and not problems:
        problems = guarded
    return (budgets if not problems else None), sort_problems(problems)


def check_daemon(doc: Document, hostname: str | None) -> tuple[DaemonConfig | None, list[Problem]]:
    """Schema pass of a daemon document: (the config or None, its problems sorted)."""
    context = {"base_dir": doc.path.absolute().parent, "hostname": hostname}
    daemon, problems, guarded = _validate(doc, DaemonConfig, context)
    problems += guarded
    return (daemon if not problems else None), sort_problems(problems)


def wrong_kind(doc: Document, expected: Kind) -> list[Problem]:
    """The one problem worth showing when a file of another kind is given for ``expected``."""
    kind = detect_kind(doc.data)
    if kind is None or kind == expected:
        return []
    names = {"suite": "a suite", "budgets": "a budgets file", "daemon": "a daemon file"}
    message = f"this looks like {names[kind]}, not {names[expected]}"
    return [Problem(doc.file, doc.line_of(()), "", message)]


def _duplicate_suite(doc: Document, name: str, other_file: str) -> Problem:
    return doc.problem(("name",), f"duplicate suite name '{name}' (also defined in {other_file})")


def _raw_name(doc: Document | None) -> str | None:
    name = doc.data.get("name") if doc is not None else None
    return name if isinstance(name, str) else None


def detect_kind(data: Mapping[str, Any]) -> Kind | None:
    """Which perfd file a parsed top-level mapping is, from its keys (None: cannot tell)."""
    keys = set(data)
    if "benchmarks" in keys:
        return "suite"
    # A daemon file may name its budgets file; a budgets file holds a list of budgets.
    if keys & DAEMON_KEYS or isinstance(data.get("budgets"), str):
        return "daemon"
    if "budgets" in keys or "version" in keys or is_old_budgets_form(data):
        return "budgets"
    return None


# --------------------------------------------------------------------------- old budgets form

OLD_FORM_MESSAGE = (
    "this is the old budgets form (names mapped to {threshold, action}), which perfd no longer "
    "reads; rewrite it as a version 1 budgets file. The same budgets, with <...> where the old "
    "form does not say:"
)
# A statistic at the end of an old budget's name: api_latency_p99 -> p99.
_OLD_NAME_STATISTIC = re.compile(r"(?:^|[_.-])(p99|p95|p50|median|mean|avg)$", re.IGNORECASE)
_OLD_STATISTICS = {
    "p99": "p99",
    "p95": "p95",
    "p50": "median",
    "median": "median",
    "mean": "mean",
    "avg": "mean",
}
_CARRIED_KEYS = ("threshold", "action", "owner", "confidence")


def _is_old_budget(entry: Any) -> bool:
    return isinstance(entry, Mapping) and "threshold" in entry


def is_old_budgets_form(data: Mapping[str, Any]) -> bool:
    """True for the seed's budgets file: a top-level mapping of names to {threshold, action}."""
    if "budgets" in data or "version" in data:
        return False
    return any(_is_old_budget(entry) for entry in data.values())


def _yaml_scalar(value: Any) -> str:
    # Text that reads back as ``value``: plain when YAML allows it, else double-quoted.
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    try:
        plain = yaml.safe_load(text) == text and text == text.strip() and "\n" not in text
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text)


def _old_limit(threshold: Any) -> tuple[str, str, str]:
    """(metric, limit key, limit text) for an old threshold: '100ms' -> time, max_value."""
    if isinstance(threshold, int | float) and not isinstance(threshold, bool):
        return "<metric>", "max_value", _yaml_scalar(threshold)
    text = threshold.strip() if isinstance(threshold, str) else None
    unreadable = f"<limit>  # was {describe_value(threshold)}"
    if text is None:
        return "<metric>", "max_value", unreadable
    if text.endswith("%"):
        percent = split_quantity(text[:-1])
        if percent is not None and not percent[1] and percent[0] > 0:
            return "<metric>", "max_regression_pct", _yaml_scalar(percent[0])
        return "<metric>", "max_value", unreadable
    quantity = split_quantity(text)
    dimension = dimension_of(quantity[1]) if quantity is not None else None
    if quantity is None or dimension is None:
        return "<metric>", "max_value", unreadable
    if not quantity[1]:
        return "<metric>", "max_value", _yaml_scalar(quantity[0])
    metric = {TIME_UNITS.name: "time", RATE_UNITS.name: "throughput"}.get(dimension.name)
    return metric or "<metric>", "max_value", _yaml_scalar(text)


def _old_budget_as_new(name: str, entry: Mapping[str, Any]) -> list[str]:
    """The lines of one new-form budget (a YAML list item) for an old {threshold, action}."""
    found = _OLD_NAME_STATISTIC.search(name)
    statistic = _OLD_STATISTICS[found.group(1).lower()] if found else "median"
    metric, limit_key, limit = _old_limit(entry.get("threshold"))
    action = entry.get("action")
    if action is None:
        new_action = "block"
    elif isinstance(action, str) and action in OLD_BUDGET_ACTIONS:
        new_action = OLD_BUDGET_ACTIONS[action].value
    else:
        new_action = "<block or warn>"
    lines = [
        "- suite: <suite>",
        "  benchmark: <benchmark glob>",
        f"  metric: {metric}",
        f"  statistic: {statistic}",
        f"  {limit_key}: {limit}",
        f"  action: {new_action}",
    ]
    confidence = entry.get("confidence")
    if isinstance(confidence, str) and confidence in tuple(BudgetConfidence):
        lines.append(f"  confidence: {confidence}")
    owner = entry.get("owner")
    if isinstance(owner, str):
        lines.append(f"  owner: {_yaml_scalar(owner)}")
    left_out = [str(k) for k in entry if k not in _CARRIED_KEYS]
    if left_out:
        lines.append(f"  # left out (no such key now): {', '.join(left_out)}")
    return lines


def old_budgets_problem(doc: Document) -> Problem | None:
    """The one problem of a budgets file in the old form, showing the new form to write
    (None when ``doc`` is not in the old form)."""
    if not is_old_budgets_form(doc.data):
        return None
    lines = ["version: 1", "budgets:"]
    first: int | None = None
    for name, entry in doc.data.items():
        line = doc.line_of((name,))
        if not _is_old_budget(entry):
            lines.append(f"  # {name} (line {line}) has no threshold: left out")
            continue
        first = line if first is None else first
        lines.append(f"  # {name} (line {line})")
        lines += ["  " + text for text in _old_budget_as_new(str(name), entry)]
    shown = "\n".join("    " + text for text in lines)
    return Problem(doc.file, first, "", f"{OLD_FORM_MESSAGE}\n{shown}")


# --------------------------------------------------------------------------- across files


@dataclass
class SetCheck:
    """What the schema and logical passes made of suites and budgets checked together."""

    suites: dict[str, SuiteConfig] = field(default_factory=dict)  # valid, by name
    budgets: dict[str, BudgetsConfig] = field(default_factory=dict)  # valid, by file shown
    problems: dict[str, list[Problem]] = field(default_factory=dict)  # by file shown

    def add(self, doc: Document, problems: Iterable[Problem]) -> None:
        """Record ``problems`` under the file of ``doc``."""
        self.problems.setdefault(doc.file, []).extend(problems)


def check_set(
    suite_docs: Sequence[Document],
    budget_docs: Sequence[Document],
    reference_docs: Sequence[Document] = (),
) -> SetCheck:
    """Check suites and budgets as one set: each file's own passes, then across files.

    Across files: a suite name defined in two files, and budgets that name an unknown suite,
    match no benchmark or name a metric that is not recorded. ``reference_docs`` are further
    suites budgets may use whose own problems are not reported; a budget on a broken one
    names its file, a budget on a broken suite of ``suite_docs`` is not judged.
    """
    result = SetCheck()
    origin: dict[str, str] = {}
    broken: dict[str, str | None] = {}
    for doc in suite_docs:
        suite, problems = _check_suite(doc)
        result.add(doc, problems)
        if suite is None:
            if (name := _raw_name(doc)) is not None:
                broken[name] = None
        elif suite.name in result.suites:
            result.add(doc, [_duplicate_suite(doc, suite.name, origin[suite.name])])
        else:
            result.suites[suite.name] = suite
            origin[suite.name] = doc.file

    known = dict(result.suites)
    for doc in reference_docs:
        suite, _ = _check_suite(doc)
        if suite is not None:
            known.setdefault(suite.name, suite)
        elif (name := _raw_name(doc)) is not None:
            broken.setdefault(name, doc.file)

    for doc in budget_docs:
        budgets, problems = _check_budgets(doc, known, broken)
        result.add(doc, problems)
        if budgets is not None:
            result.budgets[doc.file] = budgets
    return result


# --------------------------------------------------------------------------- files


def yaml_files(directory: Path) -> list[Path]:
    """The *.yaml / *.yml files directly in ``directory`` (not hidden), sorted by name."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in YAML_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _expand_paths(paths: Iterable[Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found = yaml_files(path)
        elif path.exists():
            found = [path]
        else:
            problems.append(Problem(str(path), None, "", "no such file or directory"))
            continue
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files, problems


def _as_paths(paths_or_dir: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths_or_dir, str | Path):
        return [Path(paths_or_dir)]
    return [Path(p) for p in paths_or_dir]


# --------------------------------------------------------------------------- public API


def load_suite(path: str | Path) -> SuiteConfig:
    """Load one suite file; raises ConfigError listing every problem in it."""
    path = Path(path)
    doc, problems = read_document(path)
    suite = None
    if doc is not None:
        suite, more = _check_suite(doc)
        problems = sort_problems(problems + (wrong_kind(doc, "suite") or more))
    if problems or suite is None:
        raise_problems(str(path), problems)
    return suite


def load_suites(paths_or_dir: str | Path | Iterable[str | Path]) -> dict[str, SuiteConfig]:
    """Load suites from files and/or directories (their *.yaml, *.yml), keyed by suite name.

    Raises ConfigError listing every problem of every file, including a suite name defined
    in two files.
    """
    paths = _as_paths(paths_or_dir)
    files, problems = _expand_paths(paths)
    by_file: dict[str, list[Problem]] = {}
    docs: list[Document] = []
    for file in files:
        doc, found = read_document(file)
        other_kind = wrong_kind(doc, "suite") if doc is not None else []
        by_file[str(file)] = found + other_kind
        if doc is not None and not other_kind:
            docs.append(doc)
    checked = check_set(docs, [])
    for shown, found in checked.problems.items():
        by_file[shown] += found
    problems += [p for found in by_file.values() for p in sort_problems(found)]
    if problems:
        label = str(paths[0]) if len(paths) == 1 else "suites"
        raise_problems(label, problems)
    return checked.suites


def load_budgets(path: str | Path, suites: Mapping[str, SuiteConfig]) -> BudgetsConfig:
    """Load a budgets file and check it against ``suites``; raises ConfigError."""
    path = Path(path)
    doc, problems = read_document(path)
    budgets = None
    if doc is not None:
        budgets, more = _check_budgets(doc, suites, {})
        problems = sort_problems(problems + (wrong_kind(doc, "budgets") or more))
    if problems or budgets is None:
        raise_problems(str(path), problems)
    return budgets


def load_daemon(path: str | Path, *, hostname: str | None = None) -> DaemonConfig:
    """Load a daemon file (relative paths resolve against its directory); raises ConfigError.

    ``hostname`` stands in for this host's name when machine_id is absent (for tests).
    """
    path = Path(path)
    doc, problems = read_document(path)
    daemon = None
    if doc is not None:
        daemon, more = check_daemon(doc, hostname)
        problems = sort_problems(problems + (wrong_kind(doc, "daemon") or more))
    if problems or daemon is None:
        raise_problems(str(path), problems)
    return daemon


def is_suite_path(name_or_path: str | Path) -> bool:
    """Whether ``find_suite`` reads ``name_or_path`` as a file path rather than a suite name."""
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in text or text.endswith(YAML_SUFFIXES)


def unknown_suite_error(name: str, known: Iterable[str], suites_dir: Path) -> ConfigError:
    """The error for a suite name not among ``known`` (the suites in ``suites_dir``)."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    shown = _listing(names) if names else "none"
    return ConfigError(f"unknown suite '{name}'{hint}; suites in {suites_dir}: {shown}")


def find_suite(name_or_path: str | Path, suites_dir: Path | None) -> SuiteConfig:
    """A suite by file path, or by name from ``suites_dir``; raises ConfigError if not found.

    A name is looked up as ``<suites_dir>/<name>.yaml`` or ``.yml``, then as the ``name:``
    of any suite file there.
    """
    text = str(name_or_path)
    if is_suite_path(name_or_path):
        return load_suite(Path(text))
    if suites_dir is None:
        raise ConfigError(
            f"unknown suite '{text}': no suites directory is configured; give a suite file path"
        )
    for suffix in YAML_SUFFIXES:
        candidate = suites_dir / f"{text}{suffix}"
        if candidate.is_file():
            return load_suite(candidate)
    available: dict[str, Path] = {}
    if suites_dir.is_dir():
        for file in yaml_files(suites_dir):
            doc, _ = read_document(file)
            available.setdefault(_raw_name(doc) or file.stem, file)
    if text in available:
        return load_suite(available[text])
    raise unknown_suite_error(text, available, suites_dir)


def check_paths(paths: list[Path], suites_dir: Path | None) -> list[str]:
    """Every problem of every perfd file under ``paths`` (files or directories); [] if valid.

    The kind of each file is told from its top-level keys. Budgets are checked against the
    suites among ``paths`` plus those in ``suites_dir`` and in the suites_dir of any daemon
    file among ``paths``.
    """
    files, missing = _expand_paths(Path(p) for p in paths)
    by_file: dict[str, list[Problem]] = {str(f): [] for f in files}
    docs: dict[Kind, list[Document]] = {"suite": [], "budgets": [], "daemon": []}
    for file in files:
        doc, problems = read_document(file)
        by_file[str(file)] += problems
        if doc is None:
            continue
        kind = detect_kind(doc.data)
        if kind is None:
            by_file[str(file)].append(
                Problem(
                    str(file),
                    doc.line_of(()),
                    "",
                    "cannot tell what kind of perfd file this is (a suite has 'benchmarks', "
                    "a budgets file 'budgets', a daemon file 'machine_id', 'data_dir', "
                    "'storage_url' or 'suites_dir')",
                )
            )
        else:
            docs[kind].append(doc)

    # Daemon files first: the suites directory each names also holds suites budgets may use.
    suite_dirs = [suites_dir] if suites_dir is not None else []
    for doc in docs["daemon"]:
        daemon, problems = check_daemon(doc, hostname=None)
        by_file[doc.file] += problems
        if daemon is not None:
            suite_dirs.append(daemon.suites_dir)

    checked = {f.resolve() for f in files}
    reference: list[Document] = []
    for directory in dict.fromkeys(d.resolve() for d in suite_dirs if d.is_dir()):
        for file in yaml_files(directory):
            if file.resolve() in checked:
                continue
            doc, _ = read_document(file)
            if doc is not None and detect_kind(doc.data) == "suite":
                reference.append(doc)
                checked.add(file.resolve())

    shared = check_set(docs["suite"], docs["budgets"], reference)
    for shown, problems in shared.problems.items():
        by_file[shown] += problems

    result = [str(p) for p in missing]
    for problems in by_file.values():
        result += [str(p) for p in sort_problems(problems)]
    return result
