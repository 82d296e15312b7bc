"""Hotspot tables: self/inclusive shares before -> after, ordering by impact, "new" flags.

Regenerate the golden JSON after an intended change with:
    PERFD_UPDATE_GOLDEN=1 pytest tests/unit/test_evidence_hotspots.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from perfd.evidence.hotspots import HOTSPOTS_JSON_VERSION, Hotspot, hotspots, hotspots_to_json
from perfd.evidence.profile import Profile, parse_perf_script

TESTS = Path(__file__).parents[1]
FIXTURES = TESTS / "fixtures" / "profiles"
GOLDEN = TESTS / "golden"


def by_name(rows: list[Hotspot]) -> dict[str, Hotspot]:
    return {h.function: h for h in rows}


BASE = Profile({
    ("main", "handle", "parse"): 50,
    ("main", "handle", "serialize"): 30,
    ("main", "handle", "serialize", "memcpy"): 10,
    ("main", "log"): 10,
})
CUR = Profile({  # twice as long; serialize grows, log shrinks, a new function appears
    ("main", "handle", "parse"): 80,
    ("main", "handle", "serialize"): 70,
    ("main", "handle", "serialize", "memcpy"): 20,
    ("main", "handle", "validate_utf8"): 20,
    ("main", "log"): 10,
})


def test_shares_self_and_inclusive():
    rows = by_name(hotspots(BASE, CUR))
    s = rows["serialize"]
    assert s.self_before == pytest.approx(0.30) and s.self_after == pytest.approx(0.35)
    assert s.incl_before == pytest.approx(0.40) and s.incl_after == pytest.approx(0.45)
    assert s.self_delta == pytest.approx(0.05) and s.incl_delta == pytest.approx(0.05)
    h = rows["handle"]
    assert h.self_before == 0 and h.self_after == 0
    assert h.incl_before == pytest.approx(0.9) and h.incl_after == pytest.approx(0.95)
    assert rows["main"].incl_before == rows["main"].incl_after == 1.0


def test_order_regressions_first_by_largest_growth_then_improvements():
    rows = hotspots(BASE, CUR)
    names = [h.function for h in rows]
    # validate_utf8 +10 points; serialize +5 self (+5 incl) beats handle (+5 incl, no self)
    assert names[:3] == ["validate_utf8", "serialize", "handle"]
    assert all(h.impact > 0 for h in rows[:3]) and rows[3].impact <= 0
    improvements = [h.function for h in rows if h.impact < 0]
    assert improvements == ["parse", "log"]  # -10 points before -5
    assert names[-2:] == ["main", "memcpy"]  # unchanged last, hottest first


def test_new_flag():
    rows = by_name(hotspots(BASE, CUR))
    assert rows["validate_utf8"].new  # absent before, 10% now
    assert rows["serialize"].new  # self jumped by 5 points
    assert not rows["memcpy"].new and not rows["handle"].new and not rows["parse"].new


def test_new_thresholds_exactly():
    base = Profile({("main", "x"): 996, ("main", "small"): 4})  # small: 0.4% before
    cur = Profile({("main", "x"): 980, ("main", "small"): 20})  # 2.0% now
    assert by_name(hotspots(base, cur))["small"].new
    cur2 = Profile({("main", "x"): 981, ("main", "small"): 19})  # 1.9% now
    assert not by_name(hotspots(base, cur2))["small"].new
    base3 = Profile({("main", "x"): 990, ("main", "small"): 10})  # 1% before: not absent
    cur3 = Profile({("main", "x"): 950, ("main", "small"): 50})  # +4 points only
    assert not by_name(hotspots(base3, cur3))["small"].new


def test_estimated_time_and_top():
    rows = hotspots(BASE, CUR, current_latency_ns=2000.0, top=2)
    assert len(rows) == 2
    assert rows[0].est_time_delta_ns == pytest.approx(0.10 * 2000.0)
    assert all(h.est_time_delta_ns is None for h in hotspots(BASE, CUR))


def test_refuses_empty_profiles_and_bad_arguments():
    with pytest.raises(ValueError, match="profile has no samples"):
        hotspots(Profile({}), CUR)
    with pytest.raises(ValueError, match="top must be >= 0"):
        hotspots(BASE, CUR, top=-1)
    with pytest.raises(ValueError, match="current_latency_ns"):
        hotspots(BASE, CUR, current_latency_ns=float("nan"))


def test_json_is_versioned_and_loadable():
    rows = hotspots(BASE, CUR, current_latency_ns=1000.0)
    doc = json.loads(hotspots_to_json(rows, baseline=BASE, current=CUR))
    assert doc["version"] == HOTSPOTS_JSON_VERSION
    assert doc["baseline_samples"] == 100 and doc["current_samples"] == 200
    assert doc["hotspots"][0] == rows[0].as_dict()
    assert set(doc["hotspots"][0]) == {
        "function", "self_before", "self_after", "self_delta", "incl_before", "incl_after",
        "incl_delta", "new", "est_time_delta_ns"}


def test_real_profiles_golden_json():
    base = parse_perf_script((FIXTURES / "perf_script_request_handle.txt").read_text())
    cur = parse_perf_script((FIXTURES / "perf_script_request_handle_slow_serialize.txt").read_text())
    rows = hotspots(base, cur, current_latency_ns=4230.6, top=10)
    assert rows[0].function == "minilib_serialize_response" and rows[0].new
    assert rows[0].self_delta > 0.2
    text = hotspots_to_json(rows, baseline=base, current=cur)
    path = GOLDEN / "hotspots_request_handle.json"
    if os.environ.get("PERFD_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
