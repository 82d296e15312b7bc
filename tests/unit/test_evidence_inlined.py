"""Inlined frames in profiles: perf's own inline lines, addr2line's answers folded in, self
counts and hotspots that keep the host function whole, and how flamegraphs draw them."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from perfd.evidence.capture import inline_table
from perfd.evidence.flamegraph import render_diff_flamegraph, render_flamegraph, warm_colour
from perfd.evidence.hotspots import hotspots
from perfd.evidence.profile import (
    INLINED_SUFFIX,
    Profile,
    diff_profiles,
    is_inlined,
    parse_addr2line,
    parse_folded,
    parse_perf_script,
    perf_script_addresses,
    to_folded,
)

BIN = "/tmp/b/bench_minilib"

# perf script --no-inline: two samples in minilib_crc32's code (one inside crc_update's loop,
# one in its own prologue) and one in the parser, called from code inlined into handle.
SCRIPT = f"""\
bench_minilib 4100 [001]  10.001001:    1001001 cpu-clock:
\t    1234 minilib_crc32+0x54 ({BIN})
\t    5008 run_crc+0x48 ({BIN})
\t    3de8 main+0x1958 ({BIN})
\t   2724a __libc_start_call_main+0x7a (/usr/lib/x86_64-linux-gnu/libc.so.6)

bench_minilib 4100 [001]  10.002001:    1001001 cpu-clock:
\t    1200 minilib_crc32+0x20 ({BIN})
\t    5008 run_crc+0x48 ({BIN})
\t    3de8 main+0x1958 ({BIN})

bench_minilib 4100 [001]  10.003001:    1001001 cpu-clock:
\t    63e5 minilib_parse_request+0x815 ({BIN})
\t    8d05 minilib_handle_request+0x25 ({BIN})
\t    3de8 main+0x1958 ({BIN})
"""

# addr2line -a -f -i -e bench_minilib 0x1234 0x1200 0x5007 0x3de7 0x63e5 0x8d04: innermost first,
# the real function last; 0x8d04 is the call in minilib_handle_request, inlined from a helper.
ADDR2LINE = """\
0x0000000000001234
crc_update
/src/crc32.c:41
minilib_crc32
/src/crc32.c:55
0x0000000000001200
minilib_crc32
/src/crc32.c:50
0x0000000000005007
run_crc
/suite/bench_minilib.c:47
0x0000000000003de7
main
/harness/perfd_harness.c:900
0x00000000000063e5
parse_header
/src/request.c:160
parse_into
/src/request.c:230
minilib_parse_request
/src/request.c:262
0x0000000000008d04
parse_then_validate
/src/request.c:600
minilib_handle_request
/src/request.c:610
0x0000000000009999
??
??:0
"""


def test_parse_addr2line_keeps_inlined_functions_outermost_first():
    assert parse_addr2line(ADDR2LINE) == {
        0x1234: ("crc_update",),
        0x63E5: ("parse_into", "parse_header"),
        0x8D04: ("parse_then_validate",),
    }
    assert parse_addr2line("") == {}


def test_addresses_to_look_up_are_leaves_as_sampled_and_callers_at_the_call():
    assert perf_script_addresses(SCRIPT, {BIN}) == {
        0x1234, 0x5007, 0x3DE7, 0x1200, 0x63E5, 0x8D04}
    assert perf_script_addresses(SCRIPT, {"/other"}) == set()


def test_inlined_frames_follow_the_function_they_were_inlined_into():
    table = {(BIN, a): chain for a, chain in parse_addr2line(ADDR2LINE).items()}
    profile = parse_perf_script(SCRIPT, inlined=table)
    assert to_folded(profile) == (
        "__libc_start_call_main;main;run_crc;minilib_crc32;crc_update (inlined) 1\n"
        "main;minilib_handle_request;parse_then_validate (inlined);minilib_parse_request;"
        "parse_into (inlined);parse_header (inlined) 1\n"
        "main;run_crc;minilib_crc32 1\n"
    )
    # without the table: the same samples, the inlined code charged to its host
    assert to_folded(parse_perf_script(SCRIPT)) == (
        "__libc_start_call_main;main;run_crc;minilib_crc32 1\n"
        "main;minilib_handle_request;minilib_parse_request 1\n"
        "main;run_crc;minilib_crc32 1\n"
    )
    # the line-by-line reader (space-indented callchains) does the same
    spaced = SCRIPT.replace("\t", "        ")
    assert parse_perf_script(spaced, inlined=table) == profile


def test_perf_script_inline_lines_become_inlined_frames():
    """perf script --inline prints the inlined functions of an address as extra callchain
    lines whose dso is "(inlined)", innermost first, before the real function's line."""
    text = f"""\
bench_minilib 4100 [001]  10.003001:    1001001 cpu-clock:
\t    63e5 parse_header (inlined)
\t    63e5 parse_into (inlined)
\t    63e5 minilib_parse_request+0x815 ({BIN})
\t    3de8 main+0x1958 ({BIN})
"""
    assert to_folded(parse_perf_script(text)) == (
        "main;minilib_parse_request;parse_into (inlined);parse_header (inlined) 1\n")


def test_self_counts_keep_the_code_inlined_into_a_function_in_its_self_time():
    profile = parse_folded(
        "main;f;h (inlined);g (inlined) 6\n"
        "main;f;h (inlined) 2\n"
        "main;f 2\n"
        "main;k 10\n"
    )
    # f's symbol holds all of f's samples; h's own code 2, g's (inlined through h) 6
    assert profile.self_counts() == {"g (inlined)": 6, "h (inlined)": 2, "f": 10, "k": 10}
    assert profile.inclusive_counts()["h (inlined)"] == 8
    assert is_inlined("h (inlined)") and not is_inlined("f") and INLINED_SUFFIX == " (inlined)"


def test_hotspots_rank_the_host_first_and_name_the_inlined_part_that_grew():
    base = parse_folded("main;f;h (inlined) 20\nmain;f 30\nmain;k 50\n")
    cur = parse_folded("main;f;h (inlined) 50\nmain;f 30\nmain;k 50\n")
    rows = {h.function: h for h in hotspots(base, cur, baseline_latency_ns=100.0,
                                            current_latency_ns=130.0)}
    order = [h.function for h in hotspots(base, cur, baseline_latency_ns=100.0,
                                          current_latency_ns=130.0)]
    assert order[:2] == ["f", "h (inlined)"]
    assert round(rows["f"].est_time_delta_ns or 0, 6) == 30.0
    assert round(rows["h (inlined)"].est_time_delta_ns or 0, 6) == 30.0
    assert round(rows["k"].est_time_delta_ns or 0, 6) == 0.0


def frames(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {g.get("data-name"): g for g in root.iter("{http://www.w3.org/2000/svg}g")
            if g.get("class") == "f"}


def test_flamegraphs_draw_inlined_frames_above_their_host_in_italics():
    profile = parse_folded("main;f;h (inlined) 60\nmain;f 40\n")
    plain = frames(render_flamegraph(profile, title="t"))
    h, f = plain["h (inlined)"], plain["f"]
    assert h.get("font-style") == "italic" and f.get("font-style") is None
    h_rect, f_rect = h.find("{http://www.w3.org/2000/svg}rect"), f.find("{http://www.w3.org/2000/svg}rect")
    assert h_rect is not None and f_rect is not None
    assert float(h_rect.get("y", "0")) < float(f_rect.get("y", "0"))  # drawn above its host
    red, green, blue = warm_colour("h (inlined)")
    assert blue > red and h_rect.get("fill") == f"rgb({red},{green},{blue})"
    red, green, blue = warm_colour("f")
    assert red > blue

    before = parse_folded("main;f;h (inlined) 20\nmain;f 80\n")
    diff = frames(render_diff_flamegraph(diff_profiles(before, profile), title="d"))
    assert diff["h (inlined)"].get("font-style") == "italic"
    assert float(diff["h (inlined)"].get("data-delta", "0")) > 0.3
    assert Profile({("main", "f", "h (inlined)"): 1}).functions() == {"main", "f", "h (inlined)"}


# ---- addr2line, run by the perf capture -----------------------------------------------------


def fake_addr2line(tmp_path: Path, output: str, status: int = 0) -> Path:
    """A stand-in for addr2line that logs its argv and prints ``output``."""
    path = tmp_path / "addr2line"
    path.write_text(f"#!{sys.executable}\nimport sys\n"
                    f"open({str(tmp_path / 'argv')!r}, 'w').write(' '.join(sys.argv[1:]))\n"
                    f"sys.stdout.write({output!r})\nsys.stderr.write('no such file')\n"
                    f"sys.exit({status})\n")
    path.chmod(0o755)
    return path


def test_inline_table_asks_addr2line_once_for_the_binary_s_addresses(tmp_path):
    tool = fake_addr2line(tmp_path, ADDR2LINE)
    table, note = inline_table(SCRIPT, Path(BIN), addr2line=str(tool))
    assert note == ", inlined frames from DWARF (addr2line -i)"
    assert table[(BIN, 0x1234)] == ("crc_update",) and table[(BIN, 0x63E5)] == ("parse_into", "parse_header")
    argv = (tmp_path / "argv").read_text().split()
    assert argv[:6] == ["-a", "-f", "-i", "-C", "-e", BIN]
    assert sorted(int(a, 16) for a in argv[6:]) == [0x1200, 0x1234, 0x3DE7, 0x5007, 0x63E5, 0x8D04]


def test_inline_table_without_addr2line_or_debug_information_is_empty_and_says_why(tmp_path):
    table, note = inline_table(SCRIPT, Path(BIN), addr2line=str(tmp_path / "missing"))
    assert table == {} and note.startswith(", no inlined frames (") and "cannot be started" in note
    failing = fake_addr2line(tmp_path, "", 1)
    table, note = inline_table(SCRIPT, Path(BIN), addr2line=str(failing))
    assert table == {} and note == f", no inlined frames ({failing} exited with status 1: no such file)"
    unknown = fake_addr2line(tmp_path, "0x1234\n??\n??:0\n")
    table, note = inline_table(SCRIPT, Path(BIN), addr2line=str(unknown))
    assert table == {} and note == ", no inlined frames at the sampled addresses"
    assert inline_table(SCRIPT, Path("/elsewhere/bench"), addr2line=str(tmp_path / "missing")) == ({}, "")
