"""The Grafana dashboards: grafana/dashboards/*.json are what grafana/generate.py builds, and
their structure is what Grafana 11 and perfd's Prometheus need (uids, the provisioned
datasource, declared variables, units, panel types, a grid without overlaps,
``$__rate_interval`` in every rate, metric names perfd exports).

Each check is a function that returns the problems it finds: the tests run it on the three
dashboards (no problem allowed) and on a deliberately broken copy (the problem is found).
``all_expressions()`` lists every query, for the tests that run them against a Prometheus.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from werkzeug.exceptions import MethodNotAllowed, NotFound

from perfd.daemon.http import Api, Health
from perfd.daemon.metrics import FAMILIES

Json = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DATASOURCES_YAML = GRAFANA / "provisioning" / "datasources" / "perfd.yaml"
PROVIDERS_YAML = GRAFANA / "provisioning" / "dashboards" / "perfd.yaml"
FILES = ("perfd-overview.json", "perfd-trends.json", "perfd-health.json")

PANEL_TYPES = {"timeseries", "stat", "table", "state-timeline"}  # Grafana 11, no "graph"
GRID_COLUMNS = 24
MAX_UID = 40
# Grafana's own variables; a "$name" not among them nor in templating is a typo.
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range", "__url_time_range"}
BUILTIN_PREFIXES = ("__field.labels.", "__data.fields.", "__value.")
# $var, ${var} and ${var:format}; ${__field.labels.suite} names "__field.labels.suite"
VARIABLE = re.compile(r"\$\{([^}:]+)(?::[^}]*)?\}|\$([A-Za-z_]\w*)")
RATE_CALL = re.compile(r"\b(?:rate|irate|increase)\s*\(")
SELECTOR = re.compile(r"\b([A-Za-z_:][\w:]*)\{([^}]*)\}")
# Prometheus's own series of the perfd targets
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# the placeholders data links put before a perfd daemon's path
PERFD_BASES = ("${perfd_url}", "${__data.fields.perfd_url}")


# ----------------------------------------------------------------------------- reading


def load_generator() -> ModuleType:
    """grafana/generate.py as a module (grafana/ is a directory of files, not a package)."""
    spec = importlib.util.spec_from_file_location("perfd_grafana_generate",
                                                  GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_dashboards() -> dict[str, Json]:
    """The committed dashboards, by file name."""
    return {name: json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))
            for name in FILES}


@functools.cache
def provisioned_uid() -> str:
    """The uid of the datasource grafana/provisioning/datasources/perfd.yaml provisions."""
    doc = yaml.safe_load(DATASOURCES_YAML.read_text(encoding="utf-8"))
    [source] = doc["datasources"]
    return str(source["uid"])


def panels(board: Json) -> Iterator[Json]:
    """Every panel, those inside (collapsed) rows too."""
    for p in board.get("panels", []):
        yield p
        yield from p.get("panels", [])


def query_variables(board: Json) -> Iterator[Json]:
    return (v for v in board.get("templating", {}).get("list", []) if v.get("type") == "query")


def expressions(board: Json) -> Iterator[tuple[str, str]]:
    """(panel title or variable name, query) for every query of a dashboard."""
    for v in query_variables(board):
        yield v["name"], v["query"]["query"]
    for p in panels(board):
        for t in p.get("targets", []):
            yield p["title"], t["expr"]


def all_expressions() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title or variable name, expression) for every query of the three
    committed dashboards, as written there: the variables unexpanded ($machine,
    $__rate_interval, ...) and the variables' queries in Grafana's
    ``label_values(selector, label)`` form."""
    return [(board["uid"], where, expr) for board in load_dashboards().values()
            for where, expr in expressions(board)]


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def dicts(value: Any) -> Iterator[Json]:
    """Every object in a JSON value."""
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from dicts(v)
    elif isinstance(value, list):
        for v in value:
            yield from dicts(v)


def links(board: Json) -> Iterator[tuple[str, str]]:
    """(panel title, url) for every data link of the panels (defaults and overrides)."""
    for p in panels(board):
        for d in dicts(p.get("fieldConfig", {})):
            if isinstance(d.get("links"), list):
                for found in d["links"]:
                    yield p["title"], found["url"]


# ----------------------------------------------------------------------------- checks


def identity_problems(board: Json) -> list[str]:
    """uid present and short enough, no numeric id, a schemaVersion, unique panel ids."""
    problems = []
    uid = board.get("uid")
    if not isinstance(uid, str) or not 0 < len(uid) <= MAX_UID:
        problems.append(f"uid {uid!r}: must be a string of 1-{MAX_UID} characters")
    if board.get("id") is not None:
        problems.append(f"id {board['id']!r}: must be absent or null (Grafana assigns it)")
    if not isinstance(board.get("schemaVersion"), int):
        problems.append("schemaVersion: missing")
    seen: set[int] = set()
    for p in panels(board):
        pid = p.get("id")
        if not isinstance(pid, int) or pid in seen:
            problems.append(f"panel {p.get('title')!r}: id {pid!r} missing or not unique")
        else:
            seen.add(pid)
    return problems


def uid_problems(boards: list[Json]) -> list[str]:
    """Dashboard uids that more than one dashboard uses."""
    uids = [b.get("uid") for b in boards]
    return [f"uid {u!r} used {uids.count(u)} times" for u in sorted(set(map(str, uids)))
            if uids.count(u) > 1]


def type_problems(board: Json) -> list[str]:
    return [f"panel {p.get('title')!r}: type {p.get('type')!r} is not one of "
            f"{sorted(PANEL_TYPES)}" for p in panels(board) if p.get("type") not in PANEL_TYPES]


def unit_problems(board: Json) -> list[str]:
    problems = []
    for p in panels(board):
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if not isinstance(unit, str) or not unit:
            problems.append(f"panel {p.get('title')!r}: no fieldConfig.defaults.unit")
    return problems


def grid_problems(board: Json) -> list[str]:
    """Every panel inside the 24 columns, and no two panels overlapping."""
    problems = []
    boxes: list[tuple[str, dict[str, int]]] = []
    for p in panels(board):
        title, grid = str(p.get("title")), p.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"panel {title!r}: gridPos {grid!r} needs integer x, y, w and h")
            continue
        if grid["w"] <= 0 or grid["h"] <= 0 or grid["x"] < 0 or grid["y"] < 0 \
                or grid["x"] + grid["w"] > GRID_COLUMNS:
            problems.append(f"panel {title!r}: gridPos {grid!r} outside the "
                            f"{GRID_COLUMNS}-column grid")
        boxes.append((title, grid))
    for i, (a, ga) in enumerate(boxes):
        for b, gb in boxes[i + 1:]:
            if (ga["x"] < gb["x"] + gb["w"] and gb["x"] < ga["x"] + ga["w"]
                    and ga["y"] < gb["y"] + gb["h"] and gb["y"] < ga["y"] + ga["h"]):
                problems.append(f"panels {a!r} and {b!r} overlap")
    return problems


def datasource_problems(board: Json) -> list[str]:
    """Panels, targets and query variables name the provisioned datasource by its uid, and
    no other datasource appears anywhere."""
    wanted = {"type": "prometheus", "uid": provisioned_uid()}
    problems = []
    owners = [(f"variable {v.get('name')!r}", v) for v in query_variables(board)]
    for p in panels(board):
        owners.append((f"panel {p.get('title')!r}", p))
        owners += [(f"panel {p.get('title')!r} target {t.get('refId')!r}", t)
                   for t in p.get("targets", [])]
    for where, owner in owners:
        if owner.get("datasource") != wanted:
            problems.append(f"{where}: datasource {owner.get('datasource')!r}, want {wanted}")
    for d in dicts(board):
        if "datasource" in d and d["datasource"] != wanted:
            problems.append(f"datasource {d['datasource']!r} somewhere, want {wanted}")
    return sorted(set(problems))


def undeclared_variables(board: Json) -> list[str]:
    """Variables used in any string (queries, titles, links) that templating does not
    declare and Grafana does not provide."""
    declared = {v.get("name") for v in board.get("templating", {}).get("list", [])}
    used = {a or b for text in strings(board) for a, b in VARIABLE.findall(text)}
    return [f"${name} is not declared" for name in sorted(used)
            if name not in declared and name not in BUILTIN_VARIABLES
            and not name.startswith(BUILTIN_PREFIXES)]


def _call_argument(expr: str, start: int) -> str:
    """The text of a call's arguments, from just after its opening parenthesis."""
    depth = 1
    for i in range(start, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if depth == 0:
            return expr[start:i]
    return expr[start:]


def rate_interval_problems(board: Json) -> list[str]:
    """Every rate/irate/increase over [$__rate_interval] and no other range."""
    problems = []
    for where, expr in expressions(board):
        for call in RATE_CALL.finditer(expr):
            ranges = re.findall(r"\[[^\]]*\]", _call_argument(expr, call.end()))
            if not ranges or set(ranges) != {"[$__rate_interval]"}:
                problems.append(f"{where}: {call.group(0)}... over {ranges}, want "
                                f"[$__rate_interval]: {expr}")
    return problems


@functools.cache
def exported_names() -> frozenset[str]:
    """The series names perfd's /metrics has (perfd.daemon.metrics.FAMILIES)."""
    suffixes = {"gauge": ("",), "counter": ("_total",), "info": ("_info",),
                "histogram": ("_bucket", "_sum", "_count")}
    return frozenset(f.name + s for f in FAMILIES for s in suffixes[f.kind])


def metric_problems(board: Json) -> list[str]:
    """Series names that neither perfd nor Prometheus's scrape of perfd has."""
    known = exported_names() | PROMETHEUS_SERIES
    problems = []
    for where, expr in expressions(board):
        names = {name for name, _ in SELECTOR.findall(expr)}
        names |= {n for n in re.findall(r"\bperfd_\w+", expr) if n != "perfd_url"}
        problems += [f"{where}: {n} is not a series perfd exports" for n in sorted(names - known)]
    return problems


def selection_problems(board: Json) -> list[str]:
    """Every selector of a panel's query is the perfd job's on the selected machines, and
    every variable's query but machine's follows the selected machines."""
    problems = []
    machine_variable = 'machine=~"$machine"'
    for v in query_variables(board):
        if v["name"] != "machine" and machine_variable not in v["query"]["query"]:
            problems.append(f"variable {v['name']!r}: its query ignores $machine")
    for p in panels(board):
        for t in p.get("targets", []):
            selectors = SELECTOR.findall(t["expr"])
            if not selectors:
                problems.append(f"{p['title']}: no selector in {t['expr']}")
            for name, matchers in selectors:
                if 'job="perfd"' not in matchers or machine_variable not in matchers:
                    problems.append(f"{p['title']}: {name}{{{matchers}}} needs job=\"perfd\" "
                                    f"and {machine_variable}")
    return problems


def variable_problems(board: Json) -> list[str]:
    """Query variables as Grafana 11 stores them: a query object and the same definition."""
    problems = []
    for v in query_variables(board):
        query = v.get("query")
        if not (isinstance(query, dict) and query.get("query") and query.get("refId")):
            problems.append(f"variable {v.get('name')!r}: query must be {{query, refId}}")
        elif v.get("definition") != query["query"]:
            problems.append(f"variable {v.get('name')!r}: definition differs from its query")
    return problems


CHECKS: dict[str, Callable[[Json], list[str]]] = {
    "identity": identity_problems,
    "types": type_problems,
    "units": unit_problems,
    "grid": grid_problems,
    "datasource": datasource_problems,
    "variables-declared": undeclared_variables,
    "rate-interval": rate_interval_problems,
    "metric-names": metric_problems,
    "selection": selection_problems,
    "variable-shape": variable_problems,
}


def provider_problems(doc: Any) -> list[str]:
    """The dashboard provisioning file: apiVersion 1 and file providers with a path."""
    if not isinstance(doc, dict) or doc.get("apiVersion") != 1:
        return ["apiVersion: must be 1"]
    providers = doc.get("providers")
    if not isinstance(providers, list) or not providers:
        return ["providers: none"]
    problems = []
    for p in providers:
        if p.get("type") != "file":
            problems.append(f"provider {p.get('name')!r}: type {p.get('type')!r}, want file")
        path = (p.get("options") or {}).get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            problems.append(f"provider {p.get('name')!r}: options.path {path!r}, want an "
                            "absolute directory")
    return problems


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


@pytest.fixture(scope="module")
def boards() -> dict[str, Json]:
    return load_dashboards()


def test_committed_dashboards_are_what_the_generator_builds(generator: ModuleType) -> None:
    built = generator.build()
    assert sorted(built) == sorted(FILES)
    assert sorted(p.name for p in DASHBOARD_DIR.glob("*.json")) == sorted(FILES)
    for name, board in built.items():
        assert (DASHBOARD_DIR / name).read_text(encoding="utf-8") == generator.render(board), (
            f"{name} is stale: run python grafana/generate.py")


def test_check_reports_stale_missing_and_unknown_files(generator: ModuleType,
                                                       tmp_path: Path) -> None:
    generator.write(tmp_path)
    assert generator.stale(tmp_path) == []
    assert generator.main(["--check", "--dir", str(tmp_path)]) == 0
    trends = tmp_path / "perfd-trends.json"
    trends.write_text(trends.read_text().replace('"now-30d"', '"now-7d"'))
    (tmp_path / "perfd-health.json").unlink()
    (tmp_path / "old.json").write_text("{}\n")
    assert generator.stale(tmp_path) == ["old.json", "perfd-health.json", "perfd-trends.json"]
    assert generator.main(["--check", "--dir", str(tmp_path)]) == 1


def test_files_are_sorted_indented_json_with_a_trailing_newline(boards: dict[str, Json]) -> None:
    for name, board in boards.items():
        text = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
        assert text == json.dumps(board, indent=2, sort_keys=True) + "\n"


def test_layout_refuses_a_row_wider_than_the_grid(generator: ModuleType) -> None:
    wide = [generator.stat("a", "", [], unit="short", w=16),
            generator.stat("b", "", [], unit="short", w=12)]
    with pytest.raises(ValueError, match="28 columns wide"):
        generator.layout([wide])


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", FILES)
def test_dashboard_passes_check(boards: dict[str, Json], name: str, check: str) -> None:
    assert CHECKS[check](boards[name]) == []


def _retarget(board: Json, old: str, new: str) -> None:
    for p in panels(board):
        for t in p["targets"]:
            t["expr"] = t["expr"].replace(old, new)


def _second_on_first(board: Json) -> None:
    board["panels"][1]["gridPos"] = {**board["panels"][0]["gridPos"], "x": 1}


# (check, dashboard, how to break a copy of it)
BROKEN: list[tuple[str, str, Callable[[Json], None]]] = [
    ("identity", "perfd-overview.json", lambda b: b.update(id=7)),
    ("identity", "perfd-trends.json", lambda b: b.update(uid="perfd-" + "x" * 40)),
    ("identity", "perfd-health.json", lambda b: b.pop("schemaVersion")),
    ("identity", "perfd-health.json", lambda b: b["panels"][2].update(id=b["panels"][1]["id"])),
    ("types", "perfd-overview.json", lambda b: b["panels"][0].update(type="graph")),
    ("types", "perfd-trends.json", lambda b: b["panels"][0].update(type="singlestat")),
    ("units", "perfd-health.json", lambda b: b["panels"][3]["fieldConfig"]["defaults"].pop("unit")),
    ("grid", "perfd-overview.json", _second_on_first),
    ("grid", "perfd-trends.json", lambda b: b["panels"][0]["gridPos"].update(x=20)),
    ("datasource", "perfd-trends.json",
     lambda b: b["panels"][2]["targets"][0].update(datasource={"type": "prometheus", "uid": "x"})),
    ("datasource", "perfd-health.json", lambda b: b["panels"][0].pop("datasource")),
    ("datasource", "perfd-overview.json",
     lambda b: b["templating"]["list"][0].update(datasource="${datasource}")),
    ("variables-declared", "perfd-overview.json",
     lambda b: b["panels"][0].update(title="Open alerts of $suite")),
    ("variables-declared", "perfd-health.json",
     lambda b: _retarget(b, "$__rate_interval", "$__rate_intervall")),
    ("variables-declared", "perfd-trends.json",
     lambda b: b["panels"][0]["fieldConfig"]["defaults"]["links"].append(
         {"title": "x", "url": "${perfd_link}/api/v1/runs"})),
    ("rate-interval", "perfd-health.json", lambda b: _retarget(b, "[$__rate_interval]", "[5m]")),
    ("rate-interval", "perfd-overview.json",
     lambda b: _retarget(b, "[$__rate_interval]", "[$__interval]")),
    ("metric-names", "perfd-overview.json", lambda b: _retarget(b, "perfd_runs_total", "perfd_runs")),
    ("metric-names", "perfd-trends.json",
     lambda b: b["templating"]["list"][1]["query"].update(query="label_values(perfd_cv, suite)")),
    ("selection", "perfd-health.json", lambda b: _retarget(b, ', machine=~"$machine"', "")),
    ("selection", "perfd-overview.json", lambda b: _retarget(b, 'job="perfd", ', "")),
    ("variable-shape", "perfd-trends.json",
     lambda b: b["templating"]["list"][2].update(definition="label_values(suite)")),
    ("variable-shape", "perfd-trends.json",
     lambda b: b["templating"]["list"][3].update(query=b["templating"]["list"][3]["definition"])),
]


@pytest.mark.parametrize(("check", "name", "breaker"), BROKEN,
                         ids=[f"{c}-{n.removesuffix('.json')}-{i}"
                              for i, (c, n, _) in enumerate(BROKEN)])
def test_check_finds_the_problem_in_a_broken_copy(boards: dict[str, Json], check: str,
                                                  name: str,
                                                  breaker: Callable[[Json], None]) -> None:
    broken = copy.deepcopy(boards[name])
    breaker(broken)
    assert CHECKS[check](broken) != []


def test_every_check_is_tried_on_a_broken_copy() -> None:
    assert {c for c, _, _ in BROKEN} == set(CHECKS)


def test_dashboard_uids_are_the_fixed_ones_and_unique(boards: dict[str, Json]) -> None:
    assert [b["uid"] for b in boards.values()] == ["perfd-overview", "perfd-trends",
                                                   "perfd-health"]
    assert uid_problems(list(boards.values())) == []
    twin = copy.deepcopy(boards["perfd-health.json"])
    twin["uid"] = "perfd-trends"
    assert uid_problems([*boards.values(), twin]) == ["uid 'perfd-trends' used 2 times"]


def test_dashboards_follow_perfds_conventions(boards: dict[str, Json]) -> None:
    for name, board in boards.items():
        assert board["schemaVersion"] == 39
        assert (board["tags"], board["version"], board["refresh"]) == (["perfd"], 1, "1m")
        want_from = "now-30d" if name == "perfd-trends.json" else "now-24h"
        assert board["time"] == {"from": want_from, "to": "now"}
        names = [v["name"] for v in board["templating"]["list"]]
        want = (["machine", "suite", "benchmark", "metric", "perfd_url"]
                if name == "perfd-trends.json" else ["machine"])
        assert names == want
        machine = board["templating"]["list"][0]
        assert machine["definition"] == "label_values(perfd_build_info, machine)"
        assert machine["multi"] and machine["includeAll"]


def test_trends_perfd_url_is_one_daemon(boards: dict[str, Json]) -> None:
    variables = {v["name"]: v for v in boards["perfd-trends.json"]["templating"]["list"]}
    perfd_url = variables["perfd_url"]
    assert perfd_url["definition"] == 'label_values(perfd_build_info{machine=~"$machine"}, perfd_url)'
    assert not perfd_url["multi"] and not perfd_url["includeAll"]


def test_trends_panels_link_to_perfds_alerts_and_evidence(boards: dict[str, Json]) -> None:
    board = boards["perfd-trends.json"]
    for p in panels(board):
        urls = [link["url"] for link in p["fieldConfig"]["defaults"]["links"]]
        assert any(u.startswith("${perfd_url}/api/v1/evidence?") for u in urls), p["title"]
        assert any(u.startswith("${perfd_url}/api/v1/alerts?") for u in urls), p["title"]
    value_panels = [p for p in panels(board) if "perfd_benchmark_" in p["targets"][0]["expr"]]
    assert len(value_panels) == 4
    for p in value_panels:
        urls = [link["url"] for link in p["fieldConfig"]["defaults"]["links"]]
        assert any(u.startswith("${perfd_url}/api/v1/runs?") for u in urls), p["title"]


def test_data_links_open_pages_perfd_serves(boards: dict[str, Json]) -> None:
    # the daemon's own URL map: a link to a path it does not route is a 404 for the reader
    api = Api(cast(Any, lambda: None), metrics=lambda: b"", health=Health(), wake=lambda: None)
    routes = api.url_map.bind("perfd")
    found = 0
    for board in boards.values():
        for title, url in links(board):
            base = next((b for b in PERFD_BASES if url.startswith(b)), None)
            if base is None:
                continue
            path = urlsplit(url.removeprefix(base)).path
            try:
                routes.match(path, method="GET")
            except (NotFound, MethodNotAllowed):
                pytest.fail(f"{board['uid']} {title!r}: perfd serves no GET {path}")
            found += 1
    assert found > 0


def test_links_to_dashboards_name_their_variables(boards: dict[str, Json]) -> None:
    by_uid = {b["uid"]: b for b in boards.values()}
    found = 0
    for board in boards.values():
        for title, url in links(board):
            if not url.startswith("/d/"):
                continue
            parts = urlsplit(url)
            target = by_uid[parts.path.split("/")[2]]
            declared = {v["name"] for v in target["templating"]["list"]}
            used = {k.removeprefix("var-") for k in parse_qs(parts.query) if k.startswith("var-")}
            assert used and used <= declared, f"{board['uid']} {title!r}: {url}"
            found += 1
    assert found > 0


def test_budget_limits_are_dashed_lines_in_the_median_panels(boards: dict[str, Json]) -> None:
    medians = [p for p in panels(boards["perfd-trends.json"])
               if any("perfd_budget_limit" in t["expr"] for t in p["targets"])]
    assert {p["targets"][0]["expr"].split("{")[0] for p in medians} == {
        "perfd_benchmark_seconds", "perfd_benchmark_per_second"}
    for p in medians:
        [limit] = [t["refId"] for t in p["targets"] if "perfd_budget_limit" in t["expr"]]
        [dashed] = [o for o in p["fieldConfig"]["overrides"]
                    if o["matcher"] == {"id": "byFrameRefID", "options": limit}]
        styles = {prop["id"]: prop["value"] for prop in dashed["properties"]}
        assert styles["custom.lineStyle"]["fill"] == "dash"


def test_all_expressions_lists_panel_and_variable_queries() -> None:
    found = all_expressions()
    assert {uid for uid, _, _ in found} == {"perfd-overview", "perfd-trends", "perfd-health"}
    assert ("perfd-trends", "suite",
            'label_values(perfd_benchmark_cv_ratio{machine=~"$machine"}, suite)') in found
    assert any(where == "Failing budgets" and "perfd_budget_ok" in expr
               for _, where, expr in found)
    panel_count = sum(len(p["targets"]) for b in load_dashboards().values() for p in panels(b))
    variable_count = sum(len(list(query_variables(b))) for b in load_dashboards().values())
    assert len(found) == panel_count + variable_count


def test_datasource_provisioning_has_the_fixed_uid() -> None:
    doc = yaml.safe_load(DATASOURCES_YAML.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    [source] = doc["datasources"]
    assert (source["name"], source["type"], source["uid"]) == (
        "perfd Prometheus", "prometheus", "perfd-prometheus")
    assert source["url"].startswith("http")


def test_dashboard_provider_is_a_file_provider_with_a_path() -> None:
    doc = yaml.safe_load(PROVIDERS_YAML.read_text(encoding="utf-8"))
    assert provider_problems(doc) == []
    [provider] = doc["providers"]
    assert provider["folder"] == "perfd"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["foldersFromFilesStructure"] is False
    broken = copy.deepcopy(doc)
    broken["providers"][0]["type"] = "folder"
    del broken["providers"][0]["options"]["path"]
    assert len(provider_problems(broken)) == 2
    assert provider_problems({"apiVersion": 1, "providers": []}) == ["providers: none"]
