#!/usr/bin/env python3
"""perfd's three Grafana dashboards, built here as dicts: the one source of truth for the JSON
files in grafana/dashboards/ (edit this script, never the JSON).

    python grafana/generate.py           # rewrite grafana/dashboards/*.json
    python grafana/generate.py --check   # exit 1 when the files there differ from this script

Conventions the rest of perfd relies on: Prometheus scrapes every perfd daemon with the job
name ``perfd`` and the target labels ``machine`` and ``perfd_url``; the datasource has the
fixed uid ``perfd-prometheus`` (grafana/provisioning/datasources/perfd.yaml). Every query
lives in a panel's ``targets[].expr`` or a variable's query, so tests can find and run them
all (tests/unit/test_grafana_dashboards.py). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Json = dict[str, Any]

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE: Json = {"type": "prometheus", "uid": "perfd-prometheus"}
SCHEMA_VERSION = 39  # Grafana 11
GRID_COLUMNS = 24

# Every perfd series, from the scrape: job "perfd", and the machines the variable selects.
MACHINE = ('job="perfd"', 'machine=~"$machine"')
# The benchmark series the trends dashboard's variables select.
SERIES = (*MACHINE, 'suite=~"$suite"', 'benchmark=~"$benchmark"', 'metric=~"$metric"')
# The statistics drawn next to the median (mean is left out: it follows the median).
SPREAD = 'statistic=~"median|p95|p99"'
SERIES_LEGEND = "{{machine}} {{suite}}/{{benchmark}} {{metric}}"


def sel(metric: str, *matchers: str) -> str:
    """A PromQL selector: sel("perfd_jobs", 'state="QUEUED"') -> 'perfd_jobs{state="QUEUED"}'."""
    return f"{metric}{{{', '.join(matchers)}}}"


# ----------------------------------------------------------------------------- queries


def target(expr: str, legend: str = "__auto", *, instant: bool = False,
           table: bool = False) -> Json:
    """One Prometheus query of a panel; panel() gives it its refId (A, B, ... in order)."""
    query: Json = {"datasource": DATASOURCE, "editorMode": "code", "expr": expr,
                   "instant": instant or table, "legendFormat": legend,
                   "range": not (instant or table)}
    if table:
        query["format"] = "table"
    return query


def variable(name: str, label: str, query: str, *, multi: bool = True,
             include_all: bool = True) -> Json:
    """A query variable on the perfd datasource, refreshed when the time range changes."""
    return {
        "datasource": DATASOURCE,
        "definition": query,
        "hide": 0,
        "includeAll": include_all,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


MACHINE_VARIABLE = variable("machine", "Machine", "label_values(perfd_build_info, machine)")


# ----------------------------------------------------------------------------- field config


def thresholds(*steps: tuple[str, float | None]) -> Json:
    """Absolute thresholds; the first step is the base colour (value None)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def value_mapping(texts: dict[str, tuple[str, str]]) -> list[Json]:
    """Value mappings: {"1": ("Up", "green")} shows 1 as a green "Up"."""
    return [{"type": "value", "options": {
        value: {"color": color, "index": i, "text": text}
        for i, (value, (text, color)) in enumerate(texts.items())}}]


def color_override(name: str, color: str) -> Json:
    """A fixed colour for the series or column whose display name is ``name``."""
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}]}


def hidden_column(name: str) -> Json:
    """Hide a table column that data links still read (``${__data.fields.<name>}``)."""
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": "custom.hidden", "value": True}]}


def link(title: str, url: str) -> Json:
    """A data link, opened in a new tab."""
    return {"targetBlank": True, "title": title, "url": url}


def _label(name: str) -> str:
    # percent-encoded: benchmark names may hold characters that mean something in a URL
    return f"${{__field.labels.{name}:percentencode}}"


def _field(name: str) -> str:
    # a column of the table row a link is clicked on, percent-encoded too
    return f"${{__data.fields.{name}:percentencode}}"


# A table row's own perfd daemon (its perfd_url label), for links from the overview.
OWN_PERFD = "${__data.fields.perfd_url}"


# Links from a benchmark series (its labels) to the perfd daemon the perfd_url variable names.
RUNS_LINK = link("Runs of this suite (perfd)",
                 "${perfd_url}/api/v1/runs?suite=" + _label("suite"))
ALERTS_LINK = link("Active alerts of this suite (perfd)",
                   "${perfd_url}/api/v1/alerts?suite=" + _label("suite")
                   + "&state=OPEN&state=ACKNOWLEDGED")
EVIDENCE_LINK = link("Evidence of this series' active alert (perfd)",
                     "${perfd_url}/api/v1/evidence?suite=" + _label("suite")
                     + "&benchmark=" + _label("benchmark") + "&metric=" + _label("metric"))
SERIES_LINKS = (RUNS_LINK, ALERTS_LINK, EVIDENCE_LINK)


# ----------------------------------------------------------------------------- panels


def panel(kind: str, title: str, description: str, targets: Sequence[Json], *, unit: str,
          w: int, h: int, options: Json, custom: Json | None = None,
          color_mode: str = "palette-classic", steps: Json | None = None,
          mappings: Sequence[Json] = (), links: Sequence[Json] = (),
          overrides: Sequence[Json] = (), transformations: Sequence[Json] = (),
          decimals: int | None = None) -> Json:
    """A panel of size w x h (layout() places it and gives it its id)."""
    defaults: Json = {
        "color": {"mode": color_mode},
        "custom": custom or {},
        "links": list(links),
        "mappings": list(mappings),
        "thresholds": steps or thresholds(("green", None)),
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "gridPos": {"h": h, "w": w},
        "options": options,
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "title": title,
        "transformations": list(transformations),
        "type": kind,
    }


def timeseries(title: str, description: str, targets: Sequence[Json], *, unit: str, w: int,
               h: int, bars: bool = False, steps_line: Json | None = None,
               links: Sequence[Json] = (), overrides: Sequence[Json] = (),
               decimals: int | None = None) -> Json:
    """Lines (stepped: perfd's gauges change when a run finishes) or stacked bars;
    ``steps_line`` draws its thresholds as dashed lines."""
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 80 if bars else 0,
        "lineInterpolation": "stepAfter",
        "lineWidth": 1,
        "showPoints": "auto",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if bars else "none"},
        "thresholdsStyle": {"mode": "dashed" if steps_line else "off"},
    }
    options = {"legend": {"calcs": ["lastNotNull"], "displayMode": "table",
                          "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return panel("timeseries", title, description, targets, unit=unit, w=w, h=h,
                 options=options, custom=custom, steps=steps_line, links=links,
                 overrides=overrides, decimals=decimals)


def stat(title: str, description: str, targets: Sequence[Json], *, unit: str, w: int,
         h: int = 4, steps: Json | None = None, mappings: Sequence[Json] = (),
         overrides: Sequence[Json] = (), text_mode: str = "auto",
         color_mode: str = "value") -> Json:
    """Big numbers, one per series of the (instant) queries."""
    options = {"colorMode": color_mode, "graphMode": "none", "justifyMode": "auto",
               "orientation": "auto", "textMode": text_mode,
               "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return panel("stat", title, description, targets, unit=unit, w=w, h=h, options=options,
                 color_mode="thresholds", steps=steps, mappings=mappings,
                 overrides=overrides)


def table(title: str, description: str, expr: str, *, unit: str, w: int, h: int,
          columns: Sequence[str], hidden: Sequence[str] = (), value_name: str | None = None,
          links: Sequence[Json] = (), overrides: Sequence[Json] = ()) -> Json:
    """One row per series of an instant query; ``columns`` are its labels in display order,
    ``value_name`` names the value column (None leaves it out)."""
    order = {name: i for i, name in enumerate((*columns, *hidden, "Value"))}
    organize: Json = {"excludeByName": {"Time": True}, "indexByName": order, "renameByName": {}}
    if value_name is None:
        organize["excludeByName"]["Value"] = True
    else:
        organize["renameByName"]["Value"] = value_name
    options: Json = {"cellHeight": "sm", "showHeader": True}
    if value_name is not None:
        options["sortBy"] = [{"desc": True, "displayName": value_name}]
    return panel("table", title, description, [target(expr, table=True)], unit=unit, w=w, h=h,
                 options=options, custom={"align": "auto", "filterable": True},
                 color_mode="thresholds", links=links,
                 overrides=[*(hidden_column(n) for n in hidden), *overrides],
                 transformations=[{"id": "organize", "options": organize}])


def state_timeline(title: str, description: str, targets: Sequence[Json], *, unit: str,
                   w: int, h: int, steps: Json | None = None, mappings: Sequence[Json] = (),
                   links: Sequence[Json] = ()) -> Json:
    """One coloured band per series: its value (or mapped text) over time."""
    options = {"alignValue": "left", "mergeValues": True, "rowHeight": 0.9,
               "showValue": "never",
               "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "single", "sort": "none"}}
    return panel("state-timeline", title, description, targets, unit=unit, w=w, h=h,
                 options=options, custom={"fillOpacity": 80, "lineWidth": 0},
                 color_mode="thresholds", steps=steps, mappings=mappings, links=links)


def layout(rows: Sequence[Sequence[Json]]) -> list[Json]:
    """Place rows of panels top to bottom, each row's panels left to right, and number
    them 1, 2, ...; raises ValueError when a row is wider than the grid."""
    placed: list[Json] = []
    y = 0
    for row in rows:
        x = 0
        for p in row:
            p["gridPos"] = {**p["gridPos"], "x": x, "y": y}
            p["id"] = len(placed) + 1
            x += p["gridPos"]["w"]
            placed.append(p)
        if x > GRID_COLUMNS:
            titles = ", ".join(p["title"] for p in row)
            raise ValueError(f"row {titles!r} is {x} columns wide, the grid has {GRID_COLUMNS}")
        y += max(p["gridPos"]["h"] for p in row)
    return placed


def dashboard(uid: str, title: str, description: str, *, time_from: str,
              variables: Sequence[Json], rows: Sequence[Sequence[Json]]) -> Json:
    """A dashboard with perfd's conventions (no numeric id: Grafana gives one)."""
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": False,  # provisioned from this script; edits here would be overwritten
        "graphTooltip": 1,  # a shared crosshair across panels
        # the three perfd dashboards, keeping the time range and the variables
        "links": [{"asDropdown": False, "icon": "dashboard", "includeVars": True,
                   "keepTime": True, "tags": ["perfd"], "targetBlank": False,
                   "title": "perfd", "type": "dashboards"}],
        "panels": layout(rows),
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["perfd"],
        "templating": {"list": list(variables)},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
    }


# ----------------------------------------------------------------------------- dashboards

CONFIDENCE_COLORS = {"HIGH": "red", "MEDIUM": "orange", "LOW": "yellow"}
OUTCOME_COLORS = {"COMPLETED": "green", "CONTENDED": "orange", "FAILED": "red"}
RELOAD_MAPPING = value_mapping({"1": ("Loaded", "green"), "0": ("Refused", "red")})
UP_MAPPING = value_mapping({"1": ("Up", "green"), "0": ("Down", "red")})


def overview() -> Json:
    """What needs attention now: alerts, broken budgets, stale suites, runs and the queue."""
    alerts = sel("perfd_alerts_open", *MACHINE)
    runs = sel("perfd_runs_total", *MACHINE)
    trend_link = link(
        "Trends of this series",
        "/d/perfd-trends?var-machine=" + _field("machine") + "&var-suite=" + _field("suite")
        + "&var-benchmark=" + _field("benchmark") + "&var-metric=" + _field("metric"))
    return dashboard(
        "perfd-overview", "perfd overview",
        "What needs attention on the perfd machines: open alerts, failing budgets, suites "
        "that have not run, run outcomes, the job queue and configuration reloads.",
        time_from="now-24h", variables=[MACHINE_VARIABLE], rows=[
            [
                stat("Open alerts",
                     "Alerts that are OPEN or ACKNOWLEDGED on the selected machines.",
                     [target(f"sum({alerts}) or vector(0)", "Open alerts", instant=True)],
                     unit="short", w=4, steps=thresholds(("green", None), ("red", 1))),
                stat("Open alerts by confidence",
                     "Open and acknowledged alerts by the confidence perfd gives them.",
                     [target(f"sum by (confidence) ({alerts})", "{{confidence}}",
                             instant=True)],
                     unit="short", w=7,
                     overrides=[color_override(n, c) for n, c in CONFIDENCE_COLORS.items()]),
                stat("Open alerts by kind",
                     "Open and acknowledged alerts: code (a change in the measured code) or "
                     "infrastructure (the machine or its environment changed).",
                     [target(f"sum by (kind) ({alerts})", "{{kind}}", instant=True)],
                     unit="short", w=5),
                stat("Oldest queued job",
                     "How long the longest-waiting queued job has waited, per machine.",
                     [target(f"max by (machine) ({sel('perfd_job_queue_oldest_age_seconds', *MACHINE)})",
                             "{{machine}}", instant=True)],
                     unit="s", w=4,
                     steps=thresholds(("green", None), ("orange", 3600), ("red", 21600))),
                stat("Configuration reload",
                     "Whether the latest configuration (re)load succeeded on each machine; "
                     "a refused one keeps the last good configuration running.",
                     [target(f"min by (machine) ({sel('perfd_config_reload_success', *MACHINE)})",
                             "{{machine}}", instant=True)],
                     unit="short", w=4, mappings=RELOAD_MAPPING, color_mode="background"),
            ],
            [
                table("Open alerts by suite",
                      "Open and acknowledged alerts per machine, suite, kind, confidence and "
                      "state. Click a row for the alerts in perfd.",
                      f"sum by (machine, perfd_url, suite, kind, confidence, state) ({alerts})",
                      unit="short", w=12, h=8,
                      columns=("machine", "suite", "kind", "confidence", "state"),
                      hidden=("perfd_url",), value_name="Alerts",
                      links=[link("Alerts of this suite (perfd)",
                                  OWN_PERFD + "/api/v1/alerts?suite=" + _field("suite")
                                  + "&state=" + _field("state"))]),
                table("Failing budgets",
                      "Budgets broken by the latest run of their series (a block budget that "
                      "failed, or a warn budget that warned), with the team that owns them. "
                      "Budgets without enough data to judge are not listed.",
                      "max by (machine, perfd_url, suite, benchmark, metric, statistic, "
                      f"action, owner) ({sel('perfd_budget_ok', *MACHINE)} == 0)",
                      unit="short", w=12, h=8,
                      columns=("machine", "suite", "benchmark", "metric", "statistic",
                               "action", "owner"),
                      hidden=("perfd_url",),
                      links=[trend_link,
                             link("Budgets of this suite (perfd)",
                                  OWN_PERFD + "/api/v1/budgets?suite=" + _field("suite"))]),
            ],
            [
                table("Time since the last completed run",
                      "Per machine, suite and tier: how long ago its latest COMPLETED run "
                      "finished. Orange after 26 hours (a missed nightly run), red after "
                      "8 days (a missed weekly run).",
                      "time() - max by (machine, perfd_url, suite, tier) "
                      f"({sel('perfd_last_run_timestamp_seconds', *MACHINE)})",
                      unit="s", w=12, h=8, columns=("machine", "suite", "tier"),
                      hidden=("perfd_url",), value_name="Since the last completed run",
                      links=[link("Runs of this suite (perfd)",
                                  OWN_PERFD + "/api/v1/runs?suite=" + _field("suite"))],
                      overrides=[{
                          "matcher": {"id": "byName", "options": "Since the last completed run"},
                          "properties": [
                              {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                              {"id": "thresholds", "value": thresholds(
                                  ("green", None), ("orange", 26 * 3600),
                                  ("red", 8 * 86400))}]}]),
                timeseries("Runs finished, by outcome",
                           "Runs that finished on the selected machines in each interval: "
                           "COMPLETED, CONTENDED (the machine was busy; re-measured) or "
                           "FAILED.",
                           [target(f"sum by (outcome) (increase({runs}[$__rate_interval]))",
                                   "{{outcome}}")],
                           unit="short", w=12, h=8, bars=True,
                           overrides=[color_override(n, c) for n, c in OUTCOME_COLORS.items()]),
            ],
            [
                timeseries("Contended runs",
                           "Runs that perfd found contended (another process competed for "
                           "the machine), by machine and suite. Many of them point to a "
                           "noisy machine.",
                           [target("sum by (machine, suite) (increase("
                                   + sel("perfd_runs_total", *MACHINE, 'outcome="CONTENDED"')
                                   + "[$__rate_interval]))", "{{machine}} {{suite}}")],
                           unit="short", w=12, h=7, bars=True),
                timeseries("Queued jobs",
                           "Jobs waiting for a worker, per machine.",
                           [target("sum by (machine) ("
                                   + sel("perfd_jobs", *MACHINE, 'state="QUEUED"') + ")",
                                   "{{machine}}")],
                           unit="short", w=12, h=7),
            ],
        ])


def trends() -> Json:
    """One or more benchmark series over time: against the reference, absolute, CV, alerts."""
    variables = [
        MACHINE_VARIABLE,
        variable("suite", "Suite",
                 'label_values(perfd_benchmark_cv_ratio{machine=~"$machine"}, suite)'),
        # no "All" here: every benchmark of every suite would be thousands of series
        variable("benchmark", "Benchmark",
                 'label_values(perfd_benchmark_cv_ratio{machine=~"$machine", '
                 'suite=~"$suite"}, benchmark)', include_all=False),
        variable("metric", "Metric",
                 'label_values(perfd_benchmark_cv_ratio{machine=~"$machine", '
                 'suite=~"$suite", benchmark=~"$benchmark"}, metric)'),
        # the perfd daemon the data links open (the first of the selected machines)
        variable("perfd_url", "perfd for links",
                 'label_values(perfd_build_info{machine=~"$machine"}, perfd_url)',
                 multi=False, include_all=False),
    ]
    return dashboard(
        "perfd-trends", "perfd benchmark trends",
        "The selected benchmark series over time: the ratio to the suite's reference build, "
        "the absolute values with their budget limits, the run-to-run noise and the alerts. "
        "Each point is the latest completed history run at that time.",
        time_from="now-30d", variables=variables, rows=[
            [
                timeseries("Ratio to the reference build",
                           "Current / reference of the latest run, measured in lock-step "
                           "pairs against the suite's reference build. 1 (dashed) is the "
                           "same as the reference; for a time metric above 1 is slower, for "
                           "throughput above 1 is faster.",
                           [target(sel("perfd_benchmark_reference_ratio", *SERIES),
                                   SERIES_LEGEND)],
                           unit="none", decimals=4, w=12, h=9, links=SERIES_LINKS,
                           steps_line=thresholds(("transparent", None), ("text", 1))),
                _absolute("Time per operation: median, p95, p99 and budget limit",
                          "Time metrics (seconds per operation).",
                          "perfd_benchmark_seconds", unit="s"),
            ],
            [
                _absolute("Throughput: median, p95, p99 and budget limit",
                          "Rate metrics (operations per second).",
                          "perfd_benchmark_per_second", unit="ops"),
                timeseries("Run-to-run noise (coefficient of variation)",
                           "Standard deviation / mean of the per-process values of the "
                           "latest run. A high CV makes perfd less confident in a change.",
                           [target(sel("perfd_benchmark_cv_ratio", *SERIES), SERIES_LEGEND)],
                           unit="percentunit", w=12, h=9, links=SERIES_LINKS),
            ],
            [
                state_timeline("Active alerts",
                               "When each selected series had an active alert, by kind, "
                               "confidence and state (OPEN or ACKNOWLEDGED). Click for the "
                               "alert's evidence in perfd.",
                               [target(sel("perfd_alert_active", *SERIES),
                                       SERIES_LEGEND + " {{kind}} {{confidence}} {{state}}")],
                               unit="short", w=14, h=8,
                               steps=thresholds(("red", None)),
                               links=[EVIDENCE_LINK, ALERTS_LINK]),
                timeseries("Change reported by the active alerts",
                           "The change each active alert reports, as perfd signs it "
                           "(0.05 = 5%).",
                           [target(sel("perfd_alert_change_ratio", *SERIES),
                                   SERIES_LEGEND + " {{confidence}}")],
                           unit="percentunit", w=10, h=8, links=[EVIDENCE_LINK, ALERTS_LINK]),
            ],
        ])


def _absolute(title: str, what: str, family: str, *, unit: str) -> Json:
    """The median, p95 and p99 of a value family with the budget limits of the same series
    and statistics as dashed red lines (the limits of the panel's second query, B)."""
    values = sel(family, *SERIES, SPREAD)
    # only the limits of series in this family: perfd_budget_limit holds every family's
    limits = (f"{sel('perfd_budget_limit', *SERIES, SPREAD)} and on (job, instance, suite, "
              f"benchmark, metric, statistic) {values}")
    dashed = {"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [
        {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
        {"id": "custom.lineWidth", "value": 2},
        {"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}}]}
    return timeseries(title,
                      f"{what} The latest run's median, p95 and p99; the dashed red lines "
                      "are the absolute budget limits of the same statistics (budgets.yaml).",
                      [target(values, SERIES_LEGEND + " {{statistic}}"),
                       target(limits, SERIES_LEGEND + " {{statistic}} limit ({{action}})")],
                      unit=unit, w=12, h=9, links=SERIES_LINKS, overrides=[dashed])


def health() -> Json:
    """perfd itself: scrapes, run durations, failures, retries, reloads, leases, fetches."""
    return dashboard(
        "perfd-health", "perfd health",
        "The perfd daemons themselves: scrapes, the database, configuration reloads, run "
        "durations and failures, job retries and expired leases, repository fetches.",
        time_from="now-24h", variables=[MACHINE_VARIABLE], rows=[
            [
                stat("Daemon uptime", "Time since each perfd daemon started.",
                     [target("time() - max by (machine) ("
                             + sel("perfd_start_timestamp_seconds", *MACHINE) + ")",
                             "{{machine}}", instant=True)],
                     unit="s", w=8),
                stat("Last configuration reload",
                     "When each daemon last (re)loaded or tried to load its configuration.",
                     [target("max by (machine) ("
                             + sel("perfd_config_reload_timestamp_seconds", *MACHINE)
                             + ") * 1000", "{{machine}}", instant=True)],
                     unit="dateTimeFromNow", w=8),
                stat("Version", "The perfd version and the Python running each daemon.",
                     [target("max by (machine, version, python) ("
                             + sel("perfd_build_info", *MACHINE) + ")",
                             "{{machine}}: perfd {{version}}, Python {{python}}",
                             instant=True)],
                     unit="short", w=8, text_mode="name", color_mode="none"),
            ],
            [
                state_timeline("Scrape and database up",
                               "Whether Prometheus could scrape each daemon, and whether the "
                               "daemon could read its database during the scrape.",
                               [target(sel("up", *MACHINE), "{{machine}} scrape"),
                                target(sel("perfd_store_up", *MACHINE), "{{machine}} database")],
                               unit="short", w=12, h=6, mappings=UP_MAPPING),
                state_timeline("Configuration reloads",
                               "Whether the latest configuration (re)load succeeded; a refused "
                               "one keeps the last good configuration running.",
                               [target(sel("perfd_config_reload_success", *MACHINE),
                                       "{{machine}}")],
                               unit="short", w=12, h=6, mappings=RELOAD_MAPPING),
            ],
            [
                timeseries("Scrape duration",
                           "How long Prometheus took to scrape each daemon's /metrics; it "
                           "grows with the number of benchmark series.",
                           [target(sel("scrape_duration_seconds", *MACHINE), "{{machine}}")],
                           unit="s", w=12, h=8),
                timeseries("Samples per scrape",
                           "Samples in each scrape of a daemon's /metrics.",
                           [target(sel("scrape_samples_scraped", *MACHINE), "{{machine}}")],
                           unit="short", w=12, h=8),
            ],
            [
                timeseries("Run duration (median and 90th percentile)",
                           "Duration of the runs that finished in each interval (COMPLETED "
                           "and CONTENDED), by machine, suite and tier. Empty while no run "
                           "finishes.",
                           [_run_quantile(0.5, "p50"), _run_quantile(0.9, "p90")],
                           unit="s", w=12, h=8),
                timeseries("Failed runs",
                           "Runs that failed (the build, the harness or the machine), by "
                           "machine, suite and tier.",
                           [target("sum by (machine, suite, tier) (increase("
                                   + sel("perfd_runs_total", *MACHINE, 'outcome="FAILED"')
                                   + "[$__rate_interval]))", "{{machine}} {{suite}} {{tier}}")],
                           unit="short", w=12, h=8, bars=True),
            ],
            [
                timeseries("Job retries",
                           "Job attempts after the first (the job failed, or its worker died "
                           "and the lease expired), per second, by machine and kind.",
                           [target("sum by (machine, kind) (rate("
                                   + sel("perfd_job_retries_total", *MACHINE)
                                   + "[$__rate_interval]))", "{{machine}} {{kind}}")],
                           unit="ops", w=8, h=7),
                timeseries("Expired job leases",
                           "Running jobs whose worker died; perfd hands them out again.",
                           [target(sel("perfd_jobs_expired_leases", *MACHINE), "{{machine}}")],
                           unit="short", w=8, h=7),
                timeseries("Repository fetch failures",
                           "Consecutive failed fetches of each tracked repository (0 after a "
                           "good fetch).",
                           [target(sel("perfd_repository_fetch_failures", *MACHINE),
                                   "{{machine}} {{repository}}")],
                           unit="short", w=8, h=7),
            ],
        ])


def _run_quantile(q: float, name: str) -> Json:
    """The q-quantile of the run durations in each interval, by machine, suite and tier."""
    buckets = sel("perfd_run_duration_seconds_bucket", *MACHINE)
    return target(f"histogram_quantile({q}, sum by (machine, suite, tier, le) "
                  f"(rate({buckets}[$__rate_interval])))",
                  name + " {{machine}} {{suite}} {{tier}}")


# ----------------------------------------------------------------------------- files


def build() -> dict[str, Json]:
    """The three dashboards by file name."""
    return {"perfd-overview.json": overview(), "perfd-trends.json": trends(),
            "perfd-health.json": health()}


def render(board: Json) -> str:
    """A dashboard as its file holds it: JSON, sorted keys, indent 2, a trailing newline."""
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def write(directory: Path) -> None:
    """Write every dashboard into ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, board in build().items():
        (directory / name).write_text(render(board), encoding="utf-8")


def stale(directory: Path) -> list[str]:
    """The files in ``directory`` that differ from what build() makes, are missing, or are
    dashboards this script does not make (Grafana would load those too)."""
    wanted = {name: render(board) for name, board in build().items()}
    found = {p.name for p in directory.glob("*.json")}
    problems = [name for name, text in wanted.items()
                if name not in found or (directory / name).read_text(encoding="utf-8") != text]
    return sorted(problems + [name for name in found if name not in wanted])


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the dashboards, or with --check report stale files (exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the dashboard files differ from this script")
    parser.add_argument("--dir", type=Path, default=DASHBOARD_DIR,
                        help=f"the dashboards' directory (default {DASHBOARD_DIR})")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.dir)
        for name in problems:
            print(f"{args.dir / name}: differs from grafana/generate.py", file=sys.stderr)
        if problems:
            print("run: python grafana/generate.py", file=sys.stderr)
        return 1 if problems else 0
    write(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
