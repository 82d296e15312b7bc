"""Counter evidence, pure parts: perf stat CSV, callgrind output, harness counters, diffs and IPC."""

import json

import pytest

from perfd.errors import HarnessError
from perfd.evidence.counters import (
    CounterDiff,
    CounterValue,
    diff_counters,
    ipc_of,
    parse_callgrind,
    parse_harness_counters,
    parse_perf_stat_csv,
)

# perf 6.1 `perf stat -x,` on a VM without a PMU (the literal output of this machine).
PERF_STAT_VM = """\
# started on Sat Nov 29 03:45:12 2026

62.98,msec,task-clock,62977178,100.00,0.906,CPUs utilized
10,,context-switches,62977178,100.00,158.788,/sec
2,,cpu-migrations,62977178,100.00,31.758,/sec
83,,page-faults,62977178,100.00,1.318,K/sec
<not supported>,,instructions,0,100.00,,
<not supported>,,cycles,0,100.00,,
<not supported>,,cache-misses,0,100.00,,
<not supported>,,branch-misses,0,100.00,,
"""

# A hybrid CPU as an unprivileged user: one row per PMU, ":u" modifiers, a counter that never ran.
PERF_STAT_HYBRID = """\
12.5,msec,task-clock:u,12500000,100.00,0.98,CPUs utilized
0,,context-switches:u,12500000,100.00,0.000,/sec
0,,cpu-migrations:u,12500000,100.00,0.000,/sec
70,,page-faults:u,12500000,100.00,5.600,K/sec
40000000,,cpu_core/instructions/u,9000000,72.00,1.60,insn per cycle
<not counted>,,cpu_atom/instructions/u,0,0.00,,
25000000,,cpu_core/cycles/u,9000000,72.00,2.000,GHz
5000000,,cpu_atom/cycles/u,3500000,28.00,0.400,GHz
<not counted>,,cpu_core/cache-misses/u,0,0.00,,
<not counted>,,cpu_atom/cache-misses/u,0,0.00,,
1200,,branch-misses:u,12500000,100.00,,
"""


def test_perf_stat_vm_rows_with_not_supported_are_unavailable_never_zero():
    c = parse_perf_stat_csv(PERF_STAT_VM)
    assert list(c) == ["task-clock", "context-switches", "cpu-migrations", "page-faults",
                       "instructions", "cycles", "cache-misses", "branch-misses"]
    assert c["task-clock"] == CounterValue("task-clock", 62.98, None, "msec")
    assert c["context-switches"].value == 10.0 and c["cpu-migrations"].value == 2.0
    assert c["page-faults"].value == 83.0
    for name in ("instructions", "cycles", "cache-misses", "branch-misses"):
        assert c[name].value is None
        assert c[name].unavailable_reason == "perf stat: <not supported>"
        assert not c[name].available


def test_perf_stat_hybrid_rows_are_summed_and_modifiers_stripped():
    c = parse_perf_stat_csv(PERF_STAT_HYBRID)
    assert c["task-clock"].value == 12.5
    assert c["context-switches"].value == 0.0  # a real zero stays a zero
    assert c["instructions"].value == 40_000_000  # the atom row never ran: not a zero to add
    assert c["cycles"].value == 30_000_000
    assert c["cache-misses"] == CounterValue("cache-misses", None, "perf stat: <not counted>")
    assert c["branch-misses"].value == 1200


def test_perf_stat_event_not_printed_at_all_is_unavailable():
    c = parse_perf_stat_csv("1.0,msec,task-clock,1,100.00,,\n", events=("task-clock", "cycles"))
    assert c["cycles"].value is None and "did not report" in (c["cycles"].unavailable_reason or "")


CALLGRIND = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  ./bench --filter ^request/handle$
part: 1

positions: line
events: Ir Dr

ob=(1) /tmp/bench
fl=(1) request.c
fn=(1) minilib_handle_request
10 5 1
+1 3
cfn=(2) minilib_parse_request
calls=1 20
+2 900 300
cfn=(3) minilib_validate_request
calls=1 40
* 120 10
fn=(2)
20 600 200
+5 300
fi=(2) inline.h
7 10
fe=(1)
fn=(3)
40 100
jump=3 +2
41
fn=(4) helper'2
1 7
fn=(5) helper
1 3
totals: 1848 510
"""


def test_callgrind_self_cost_follows_name_compression_and_skips_call_costs():
    counts = parse_callgrind(CALLGRIND)
    # handle: 5 + 3 self; the 900 and 120 after calls= are its callees' inclusive costs
    assert counts["minilib_handle_request"] == 8
    assert counts["minilib_parse_request"] == 600 + 300 + 10  # fi=/fe= keep the function
    assert counts["minilib_validate_request"] == 100  # the line after jump= is not a cost
    assert counts["helper"] == 10  # recursion levels merged
    assert counts["minilib_parse_request"] > counts["minilib_validate_request"]


def test_callgrind_other_event_and_instr_positions():
    assert parse_callgrind(CALLGRIND, event="Dr")["minilib_parse_request"] == 200
    text = "positions: instr line\nevents: Ir\nfn=(1) f\n0x10 3 40\n+2 * 2\n"
    assert parse_callgrind(text) == {"f": 42}


@pytest.mark.parametrize(("text", "message"), [
    ("events: Ir\nfn=(7)\n1 2\n", "line 2: name (7) used before it was defined"),
    ("events: Ir\nfn=(1) f\n1 lots\n", "line 3: expected integer costs"),
    ("events: Dr\nfn=(1) f\n1 2\n", "line 1: event 'Ir' not recorded"),
])
def test_callgrind_malformed_input_names_the_line(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_callgrind(text)


def harness_doc(counters, *, requested=True, available=(), unavailable=None, substitutes=False):
    ctx_counters = {"requested": requested, "available": list(available), "unavailable": unavailable or {}}
    if substitutes:
        ctx_counters["test_software_substitutes"] = True
    return json.dumps({
        "format": "perfd-harness", "version": "1.1",
        "context": {"harness_version": "1.1.0", "host": "h", "pinned_cpu": None,
                    "timer": {"clock": "CLOCK_MONOTONIC", "resolution_ns": 1, "overhead_ns": 20.0},
                    "counters": ctx_counters},
        "benchmarks": [{"name": "request/handle", "status": "ok", "error": None,
                        "iterations_per_sample": 100, "samples_ns": [10.0, 11.0, 12.0],
                        "counters": counters}],
    })


def test_harness_counters_median_per_op_and_reasons_for_the_rest():
    reason = "perf_event_open: Operation not supported (errno 95)"
    text = harness_doc({"instructions": [800.0, None, 812.0], "cycles": [400.0, 420.0, 410.0]},
                       available=("instructions", "cycles"),
                       unavailable={"cache_misses": reason, "branch_misses": reason})
    c = parse_harness_counters(text, "request/handle")
    assert c["instructions"] == CounterValue("instructions", 806.0, None, "per op")  # null skipped
    assert c["cycles"].value == 410.0
    assert c["cache_misses"] == CounterValue("cache_misses", None, reason, "per op")
    assert c["branch_misses"].unavailable_reason == reason


def test_harness_counters_never_ran_not_requested_and_substitutes_are_unavailable():
    c = parse_harness_counters(harness_doc({"cycles": [None, None, None]}, available=("cycles",)),
                               "request/handle")
    assert c["cycles"].value is None and "never ran" in (c["cycles"].unavailable_reason or "")
    assert "not reported" in (c["instructions"].unavailable_reason or "")
    c = parse_harness_counters(harness_doc({}, requested=False), "request/handle")
    assert all("not requested" in (v.unavailable_reason or "") for v in c.values())
    c = parse_harness_counters(harness_doc({"cycles": [1.0, 1.0, 1.0]}, available=("cycles",),
                                           substitutes=True), "request/handle")
    assert c["cycles"].value is None and "substitutes" in (c["cycles"].unavailable_reason or "")


def test_harness_counters_bad_output_is_a_harness_error():
    with pytest.raises(HarnessError, match="not JSON"):
        parse_harness_counters("Segmentation fault", "request/handle")
    with pytest.raises(HarnessError, match="no results for 'other'"):
        parse_harness_counters(harness_doc({}), "other")


def test_counter_value_is_a_value_or_a_reason():
    with pytest.raises(ValueError, match="exactly one"):
        CounterValue("cycles", None, None)
    with pytest.raises(ValueError, match="exactly one"):
        CounterValue("cycles", 0.0, "also a reason")
    with pytest.raises(ValueError, match="finite"):
        CounterValue("cycles", float("nan"), None)


def value(name, v, unit=""):
    return CounterValue(name, v, None, unit)


def gone(name, reason="perf stat: <not supported>"):
    return CounterValue(name, None, reason)


def test_diff_with_unavailable_sides_is_none_never_zero():
    base = {"task-clock": value("task-clock", 50.0, "msec"), "cycles": gone("cycles"),
            "instructions": value("instructions", 1000.0)}
    cur = {"task-clock": value("task-clock", 55.0, "msec"), "cycles": gone("cycles"),
           "instructions": gone("instructions", "perf stat: <not counted>")}
    rows = {r.name: r for r in diff_counters(base, cur)}
    assert rows["task-clock"] == CounterDiff("task-clock", 50.0, 55.0, pytest.approx(10.0), None)
    assert rows["cycles"] == CounterDiff(
        "cycles", None, None, None,
        "baseline: perf stat: <not supported>; current: perf stat: <not supported>")
    assert rows["instructions"].baseline == 1000.0
    assert rows["instructions"].current is None and rows["instructions"].delta_pct is None
    assert rows["instructions"].unavailable_reason == "current: perf stat: <not counted>"
    assert rows["ipc"].baseline is None and rows["ipc"].delta_pct is None
    assert "cycles" in (rows["ipc"].unavailable_reason or "")
    for r in rows.values():
        assert r.delta_pct is not None or r.unavailable_reason


def test_diff_counter_only_on_one_side_and_zero_baseline():
    rows = {r.name: r for r in diff_counters(
        {"page-faults": value("page-faults", 0.0), "context-switches": value("context-switches", 0.0)},
        {"page-faults": value("page-faults", 4.0), "context-switches": value("context-switches", 0.0),
         "cpu-migrations": value("cpu-migrations", 1.0)})}
    assert rows["page-faults"].delta_pct is None
    assert "baseline is 0" in (rows["page-faults"].unavailable_reason or "")
    assert rows["context-switches"].delta_pct == 0.0
    assert rows["cpu-migrations"].unavailable_reason == "not measured in the baseline"
    assert "ipc" not in rows  # neither side has instructions or cycles


def test_ipc_is_derived_when_instructions_and_cycles_are_available():
    base = {"instructions": value("instructions", 800.0, "per op"),
            "cycles": value("cycles", 400.0, "per op")}
    cur = {"instructions": value("instructions", 810.0, "per op"),
           "cycles": value("cycles", 540.0, "per op")}
    assert ipc_of(base) == CounterValue("ipc", 2.0, None, "instructions/cycle")
    rows = {r.name: r for r in diff_counters(base, cur)}
    assert rows["ipc"].baseline == 2.0 and rows["ipc"].current == 1.5
    assert rows["ipc"].delta_pct == pytest.approx(-25.0)
    assert [r.name for r in diff_counters(base, cur)] == ["instructions", "cycles", "ipc"]
    assert ipc_of({"instructions": value("instructions", 1.0), "cycles": value("cycles", 0.0)}).value is None
