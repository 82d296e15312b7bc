"""speedscope export: schema shape, shared frames, and a round trip of names and weights.

Regenerate the golden file after an intended change with:
    PERFD_UPDATE_GOLDEN=1 pytest tests/unit/test_evidence_speedscope.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from perfd import __version__
from perfd.evidence.profile import Profile, parse_perf_script
from perfd.evidence.speedscope import SPEEDSCOPE_SCHEMA, parse_speedscope, to_speedscope, to_speedscope_json

TESTS = Path(__file__).parents[1]
TINY = Profile({
    ("main", "handle", "parse"): 5,
    ("main", "handle", "serialize"): 3,
    ("main", "std::map<int, char>::find(int const&)"): 2,
    ("main",): 1,
})


def test_document_shape():
    doc = to_speedscope(TINY, name="request/handle")
    assert doc["$schema"] == SPEEDSCOPE_SCHEMA == "https://www.speedscope.app/file-format-schema.json"
    assert doc["name"] == "request/handle" and doc["activeProfileIndex"] == 0
    assert doc["exporter"].startswith("perfd@")
    names = [f["name"] for f in doc["shared"]["frames"]]
    assert len(names) == len(set(names)) == 5  # each frame once, shared by all stacks
    (prof,) = doc["profiles"]
    assert prof["type"] == "sampled" and prof["unit"] == "none"
    assert prof["startValue"] == 0 and prof["endValue"] == TINY.total == sum(prof["weights"])
    assert len(prof["samples"]) == len(prof["weights"]) == len(TINY.stacks)
    for ids, weight in zip(prof["samples"], prof["weights"], strict=True):
        stack = tuple(names[i] for i in ids)
        assert stack[0] == "main"  # root first, as speedscope expects
        assert TINY.stacks[stack] == weight


def test_round_trip_names_and_weights():
    again = parse_speedscope(to_speedscope_json(TINY))
    assert dict(again.stacks) == dict(TINY.stacks)


def test_round_trip_real_profile():
    text = (TESTS / "fixtures" / "profiles" / "perf_script_request_handle.txt").read_text()
    profile = parse_perf_script(text)
    assert dict(parse_speedscope(to_speedscope_json(profile)).stacks) == dict(profile.stacks)


def test_deterministic_and_golden():
    text = to_speedscope_json(TINY, name="tiny")
    assert text == to_speedscope_json(Profile(dict(reversed(list(TINY.stacks.items())))), name="tiny")
    text = text.replace(f'"perfd@{__version__}"', '"perfd@VERSION"')  # a release does not change it
    path = TESTS / "golden" / "speedscope_tiny.json"
    if os.environ.get("PERFD_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_reader_refuses_what_it_cannot_read():
    doc = to_speedscope(TINY)
    doc["profiles"][0]["type"] = "evented"
    with pytest.raises(ValueError, match="'sampled' only"):
        parse_speedscope(json.dumps(doc))
    doc = to_speedscope(TINY)
    doc["profiles"][0]["weights"].pop()
    with pytest.raises(ValueError, match="weights"):
        parse_speedscope(json.dumps(doc))
    with pytest.raises(ValueError, match="not a speedscope file"):
        parse_speedscope("{}")
