"""Profiling evidence: folded stacks, profile diffs, hotspot tables, flamegraphs, speedscope.

Pure functions over text and values; recording profiles (running ``perf``) is the runner's job.
"""

from perfd.evidence.flamegraph import render_diff_flamegraph, render_flamegraph
from perfd.evidence.hotspots import Hotspot, hotspots, hotspots_to_json
from perfd.evidence.profile import (
    DiffProfile,
    DiffRow,
    Profile,
    diff_profiles,
    parse_diff_folded,
    parse_folded,
    parse_perf_script,
    to_diff_folded,
    to_folded,
)
from perfd.evidence.speedscope import parse_speedscope, to_speedscope, to_speedscope_json

__all__ = [
    "DiffProfile", "DiffRow", "Hotspot", "Profile", "diff_profiles", "hotspots", "hotspots_to_json",
    "parse_diff_folded", "parse_folded", "parse_perf_script", "parse_speedscope", "render_diff_flamegraph",
    "render_flamegraph", "to_diff_folded", "to_folded", "to_speedscope", "to_speedscope_json",
]
