"""Time-normalised evidence: a benchmark that is all one function before and after, but 10%
slower, must still point at that function (shares alone cannot see it)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from perfd.evidence.flamegraph import render_diff_flamegraph
from perfd.evidence.hotspots import hotspots
from perfd.evidence.profile import diff_profiles, parse_folded

BASE = parse_folded("main;bench;parse 900\nmain;bench;noise 100\n")
CUR = parse_folded("main;bench;parse 905\nmain;bench;noise 95\n")  # shares ~unchanged


def test_hotspots_rank_by_added_time_per_operation():
    rows = hotspots(BASE, CUR, baseline_latency_ns=1000.0, current_latency_ns=1100.0)
    assert rows[0].function == "parse"
    # 0.905 * 1100 - 0.9 * 1000 = 95.5 ns more per operation
    assert round(rows[0].est_time_delta_ns, 1) == 95.5


def test_diff_flamegraph_colours_the_slower_function_red_with_a_time_ratio():
    svg = render_diff_flamegraph(diff_profiles(BASE, CUR), title="t", time_ratio=1.1)
    frames = {g.get("data-name"): g for g in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}g")
              if g.get("class") == "f"}
    assert float(frames["parse"].get("data-delta")) > 0.09
    fill = frames["parse"].find("{http://www.w3.org/2000/svg}rect").get("fill")
    without = render_diff_flamegraph(diff_profiles(BASE, CUR), title="t")
    assert fill not in without  # share-only colouring would leave it almost white
