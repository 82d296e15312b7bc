"""Folding perf script output, the folded format and profile diffs.

The real fixture was recorded on this project's benchmark VM (cpu-clock, no PMU):
    perf record -e cpu-clock -F 999 -g -o /tmp/x.data -- \
        ./bench_minilib --filter '^request/handle$' --samples 30
    perf script -i /tmp/x.data > tests/fixtures/profiles/perf_script_request_handle.txt
(bench_minilib built as in benchmarks/bench_harness_noise.py; the "slow_serialize" fixture is
the same with minilib compiled with -DMINILIB_SLOW_SERIALIZE_PCT=300, and --samples 20).

Regenerate the golden folded file after an intended change with:
    PERFD_UPDATE_GOLDEN=1 pytest tests/unit/test_evidence_profile.py
"""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path

import pytest

from perfd.evidence.profile import (
    DiffProfile,
    Profile,
    _fold_raw,
    _scan_lines,
    diff_profiles,
    parse_diff_folded,
    parse_folded,
    parse_perf_script,
    to_diff_folded,
    to_folded,
)

TESTS = Path(__file__).parents[1]
FIXTURES = TESTS / "fixtures" / "profiles"
GOLDEN = TESTS / "golden"
REQUEST_HANDLE = FIXTURES / "perf_script_request_handle.txt"
SLOW_SERIALIZE = FIXTURES / "perf_script_request_handle_slow_serialize.txt"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PERFD_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; PERFD_UPDATE_GOLDEN=1 regenerates it"


def line_reader(text: str, keep_process: bool = False) -> Profile:
    """The general line-by-line reader on its own (the fast one falls back to it)."""
    return Profile(_fold_raw(_scan_lines(text, keep_process), tab_only=False), source="perf")


# ---- the real fixture -----------------------------------------------------------------------


def test_fixture_stays_small():
    for path in (REQUEST_HANDLE, SLOW_SERIALIZE):
        assert path.stat().st_size < 200_000


def test_real_perf_script_golden_folded():
    profile = parse_perf_script(REQUEST_HANDLE.read_text())
    assert profile.source == "perf"
    assert profile.total == REQUEST_HANDLE.read_text().count(" cpu-clock:")  # one per sample
    check_golden("perf_script_request_handle.folded", to_folded(profile))


def test_real_perf_script_parse_under_handle():
    profile = parse_perf_script(REQUEST_HANDLE.read_text())
    under = [s for s in profile.stacks if "minilib_parse_request" in s]
    assert under
    for stack in under:
        assert stack.index("minilib_handle_request") < stack.index("minilib_parse_request")
        assert stack[0] == "__libc_start_call_main"  # root first
    # the request path is most of the profile, and parse is its biggest part
    incl = profile.inclusive_counts()
    assert incl["minilib_handle_request"] / profile.total > 0.9
    assert profile.self_counts()["minilib_parse_request"] == max(profile.self_counts().values())


def test_real_perf_script_no_offsets_or_addresses():
    folded = to_folded(parse_perf_script(REQUEST_HANDLE.read_text()))
    assert "+0x" not in folded
    assert "(/tmp" not in folded and "kallsyms" not in folded


def test_fast_reader_agrees_with_line_reader():
    for path in (REQUEST_HANDLE, SLOW_SERIALIZE):
        text = path.read_text()
        assert parse_perf_script(text) == line_reader(text)
        assert parse_perf_script(text, keep_process=True) == line_reader(text, keep_process=True)


def test_keep_process_prefixes_comm():
    profile = parse_perf_script(REQUEST_HANDLE.read_text(), keep_process=True)
    assert {s[0] for s in profile.stacks} == {"bench_minilib"}
    assert profile.total == parse_perf_script(REQUEST_HANDLE.read_text()).total


# ---- perf script details ------------------------------------------------------------------

SAMPLE = """\
bench 100 [001]  10.000001:    1001001 cpu-clock:
\t            65ee minilib_parse_request+0xa1e (/tmp/b/bench)
\t            8d05 minilib_handle_request+0x25 (/tmp/b/bench)
\t            3b5a main+0x176a (/tmp/b/bench)

bench 100 [001]  10.000002:    1001001 cpu-clock:
\t            65f0 minilib_parse_request+0xa20 (/tmp/b/bench)
\t            8d05 minilib_handle_request+0x25 (/tmp/b/bench)
\t            3b5a main+0x176a (/tmp/b/bench)

my worker 7/8 [000]  10.000003:    1001001 cpu-clock:
\t          1234ab [unknown] (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t               0 [unknown] ([unknown])

bench 100 [001]  10.000004:    1001001 cpu-clock:

bench 100 [001]  10.000005:    1001001 cpu-clock:
\t            1111 std::vector<int, std::allocator<int> >::push_back(int const&)+0x11 (/tmp/b/bench)
\t            3b5a main+0x176a (/tmp/b/bench)
""".replace("cpu-clock:\n", "cpu-clock: \n")  # perf ends each header with a space


def test_perf_script_details():
    profile = parse_perf_script(SAMPLE)
    assert dict(profile.stacks) == {
        ("main", "minilib_handle_request", "minilib_parse_request"): 2,
        ("[unknown]", "[unknown] (libc.so.6)"): 1,
        ("main", "std::vector<int, std::allocator<int> >::push_back(int const&)"): 1,
    }
    assert profile.total == 4  # the header-only sample is skipped


def test_perf_script_keep_process_with_spaces_in_comm():
    profile = parse_perf_script(SAMPLE, keep_process=True)
    assert ("my worker", "[unknown]", "[unknown] (libc.so.6)") in profile.stacks
    assert ("bench", "main", "minilib_handle_request", "minilib_parse_request") in profile.stacks


@pytest.mark.parametrize("variant", ["crlf", "spaces", "comments", "blank_lines", "no_final_newline"])
def test_perf_script_layout_variants(variant):
    text = {
        "crlf": SAMPLE.replace("\n", "\r\n"),
        "spaces": SAMPLE.replace("\t", "        "),
        "comments": "# ========\n# captured on: x\n# ========\n#\n" + SAMPLE,
        "blank_lines": SAMPLE.replace("\n\n", "\n\n\n\n"),
        "no_final_newline": SAMPLE.rstrip("\n"),
    }[variant]
    assert parse_perf_script(text) == parse_perf_script(SAMPLE)


def test_perf_script_without_callchains():
    # perf record without -g: perf script prints the sampled ip on the (right-aligned) header line
    text = (
        "           bench   100 [001]    10.000001:    1001001 cpu-clock:            65ee parse+0xa1e (/b)\n"
        "           bench   100 [001]    10.000002:    1001001 cpu-clock:            65f0 parse+0xa20 (/b)\n"
        "              dd   101 [000]    10.000003:    1001001 cpu-clock:  "
        "ffffffff8100 clear_page+0x1 ([kernel.kallsyms])\n"
    )
    assert dict(parse_perf_script(text).stacks) == {("parse",): 2, ("clear_page",): 1}
    assert dict(parse_perf_script(text, keep_process=True).stacks) == {
        ("bench", "parse"): 2, ("dd", "clear_page"): 1}


def test_perf_script_semicolon_in_symbol_kept_foldable():
    text = "b 1 1.0: 1 cpu-clock: \n\t 10 weird;name+0x1 (/b)\n\t 20 main+0x2 (/b)\n"
    profile = parse_perf_script(text)
    assert dict(profile.stacks) == {("main", "weird:name"): 1}
    assert parse_folded(to_folded(profile)) == Profile(profile.stacks)


def test_perf_script_empty_input():
    assert parse_perf_script("").is_empty
    assert parse_perf_script("\n\n").total == 0


# ---- folded format --------------------------------------------------------------------------


def test_folded_round_trip_sorted_and_deterministic():
    text = "main;b 3\nmain;a;x 2\nmain;a 1\nmain;b 4\n\n"
    profile = parse_folded(text)
    assert dict(profile.stacks) == {("main", "b"): 7, ("main", "a", "x"): 2, ("main", "a"): 1}
    folded = to_folded(profile)
    assert folded == "main;a 1\nmain;a;x 2\nmain;b 7\n"
    assert parse_folded(folded) == profile
    assert to_folded(parse_folded(folded)) == folded


def test_folded_frames_may_hold_spaces_and_zero_counts_drop():
    profile = parse_folded("[unknown] (libc.so.6);operator new(unsigned long) 5\nmain;idle 0\n")
    assert dict(profile.stacks) == {("[unknown] (libc.so.6)", "operator new(unsigned long)"): 5}


@pytest.mark.parametrize("text, line_no, content, rule", [
    ("main;a 1\nmain;b\n", 2, "main;b", "expected 'frame;frame;... count'"),
    ("main;a x\n", 1, "main;a x", "non-negative integer"),
    ("main;a -3\n", 1, "main;a -3", "non-negative integer"),
    ("main;a 1.5\n", 1, "main;a 1.5", "non-negative integer"),
    ("main;;a 1\n", 1, "main;;a 1", "empty frame"),
    ("ok 1\n\n\nmain;a 2 extra\n", 4, "main;a 2 extra", "non-negative integer"),
])
def test_folded_malformed_lines_name_line_and_content(text, line_no, content, rule):
    with pytest.raises(ValueError) as err:
        parse_folded(text)
    message = str(err.value)
    assert f"folded line {line_no}:" in message
    assert repr(content) in message
    assert rule in message


def test_empty_text_is_an_empty_profile_and_rendering_needs_samples():
    profile = parse_folded("")
    assert profile.is_empty and profile.total == 0 and to_folded(profile) == ""
    with pytest.raises(ValueError, match="profile has no samples: flamegraph"):
        profile.require_samples("flamegraph of x")


# ---- Profile values -------------------------------------------------------------------------


def test_profile_is_immutable_and_validated():
    stacks = {("main", "a"): 2}
    profile = Profile(stacks)
    stacks[("main", "b")] = 1  # the caller's dict does not leak in
    assert dict(profile.stacks) == {("main", "a"): 2}
    with pytest.raises(TypeError):
        profile.stacks[("x",)] = 1  # type: ignore[index]
    for bad, needle in [
        ({("main", ""): 1}, "non-empty strings"),
        ({(): 1}, "non-empty tuple"),
        ({("a;b",): 1}, "contains ';'"),
        ({("a",): 0}, "positive integer"),
        ({("a",): 1.5}, "positive integer"),
        ({("a", 3): 1}, "non-empty strings"),
    ]:
        with pytest.raises(ValueError, match=needle):
            Profile(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Profile.source"):
        Profile({}, source="vtune")


def test_profiles_pickle_and_copy():
    profile = Profile({("main", "a"): 2, ("main", "b"): 1}, source="perf")
    assert pickle.loads(pickle.dumps(profile)) == profile
    assert copy.deepcopy(profile) == profile
    diff = diff_profiles(profile, Profile({("main", "a"): 5}))
    again = pickle.loads(pickle.dumps(diff))
    assert again == diff and dict(again.stacks) == dict(diff.stacks)


def test_self_and_inclusive_counts_count_recursion_once():
    profile = Profile({("main", "f", "f", "g"): 3, ("main", "f"): 1, ("main",): 1})
    assert profile.total == 5
    assert profile.self_counts() == {"g": 3, "f": 1, "main": 1}
    assert profile.inclusive_counts() == {"main": 5, "f": 4, "g": 3}
    assert profile.functions() == {"main", "f", "g"}


def test_from_samples_sums_repeats():
    profile = Profile.from_samples([(("a",), 1), (("a",), 2), (("b",), 0)], source="harness")
    assert dict(profile.stacks) == {("a",): 3} and profile.source == "harness"


# ---- diffs ----------------------------------------------------------------------------------


def test_diff_profiles_normalises_by_totals():
    base = Profile({("main", "a"): 50, ("main", "b"): 50})
    cur = Profile({("main", "a"): 300, ("main", "c"): 100})
    diff = diff_profiles(base, cur)
    assert diff.baseline_total == 100 and diff.current_total == 400
    assert dict(diff.stacks) == {("main", "a"): (50, 300), ("main", "b"): (50, 0), ("main", "c"): (0, 100)}
    assert diff.baseline_share(("main", "a")) == 0.5
    assert diff.current_share(("main", "a")) == 0.75
    assert diff.share_delta(("main", "a")) == pytest.approx(0.25)
    assert diff.share_delta(("main", "b")) == pytest.approx(-0.5)
    rows = diff.rows()
    assert [r.stack for r in rows] == sorted(diff.stacks)
    assert rows[2].share_delta == pytest.approx(0.25)


def test_diff_of_identical_shapes_is_zero_even_if_lengths_differ():
    base = Profile({("main", "a"): 10, ("main", "b"): 30})
    cur = Profile({("main", "a"): 100, ("main", "b"): 300})
    assert all(r.share_delta == 0 for r in diff_profiles(base, cur).rows())


def test_diff_needs_samples_on_both_sides():
    with pytest.raises(ValueError, match="profile has no samples: the baseline"):
        diff_profiles(Profile({}), Profile({("a",): 1}))
    with pytest.raises(ValueError, match="profile has no samples: the current"):
        diff_profiles(Profile({("a",): 1}), Profile({}))


def test_diff_folded_round_trip():
    diff = diff_profiles(Profile({("main", "a"): 5, ("main", "b"): 1}), Profile({("main", "a"): 7}))
    text = to_diff_folded(diff)
    assert text == "main;a 5 7\nmain;b 1 0\n"
    again = parse_diff_folded(text)
    assert isinstance(again, DiffProfile) and again == diff
    with pytest.raises(ValueError, match="line 1"):
        parse_diff_folded("main;a 5\n")


def test_real_diff_serialize_grew():
    base = parse_perf_script(REQUEST_HANDLE.read_text())
    cur = parse_perf_script(SLOW_SERIALIZE.read_text())
    diff = diff_profiles(base, cur)
    grown = max(diff.rows(), key=lambda r: r.share_delta)
    assert grown.stack[-1] == "minilib_serialize_response"
    assert grown.share_delta > 0.1
