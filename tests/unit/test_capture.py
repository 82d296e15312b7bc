"""Profile capture against small fake programs: the harness sampler path, a fake perf, probes
and every failure (crash, hang, empty or malformed profile, missing profiler)."""

import sys
import textwrap
from pathlib import Path

import pytest

from perfd.errors import EvidenceError, HarnessError, UsageError
from perfd.evidence.capture import (
    CaptureResult,
    benchmark_process_only,
    capture_profile,
    harness_argv,
    perf_available,
)
from perfd.evidence.profile import Profile

FOLDED_OK = "main;run_batch.isra.0;run_handle;minilib_handle_request;minilib_parse_request 30\n" \
            "main;run_batch.isra.0;run_handle;minilib_handle_request;minilib_validate_request 5\n"

# A stand-in for a harness binary built with --profile support. MODE is baked in per test.
FAKE_HARNESS = '''\
import json, os, signal, sys, time
MODE = {mode!r}
FOLDED = {folded!r}
args = sys.argv[1:]
def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default
if MODE == "old" and "--profile" in args:
    print("perfd-harness: error: unknown option '--profile'", file=sys.stderr)
    sys.exit(100)
if MODE == "crash":
    os.kill(os.getpid(), signal.SIGSEGV)
if MODE == "hang":
    time.sleep(60)
path = opt("--profile")
if path and MODE != "nofile":
    with open(path, "w") as f:
        f.write(FOLDED)
name = opt("--filter").strip("^$").replace("\\\\", "")
failed = MODE == "fail"
bench = {{"name": name, "status": "error" if failed else "ok",
          "error": "setup could not find its input" if failed else None,
          "iterations_per_sample": None if failed else 1000,
          "samples_ns": [] if failed else [100.0] * int(opt("--samples", "10")), "counters": {{}}}}
ctx = {{"harness_version": "1.1.0", "host": "fake", "pinned_cpu": None,
        "timer": {{"clock": "CLOCK_MONOTONIC", "resolution_ns": 1, "overhead_ns": 20.0}},
        "counters": {{"requested": False, "available": [], "unavailable": {{}}}}}}
if path:
    ctx["profile"] = {{"path": path, "samples": 35, "hz": int(opt("--profile-hz", "999")), "dropped": 0}}
print(json.dumps({{"format": "perfd-harness", "version": "1.1", "context": ctx, "benchmarks": [bench]}}))
sys.exit(1 if failed else 0)
'''

# A stand-in for perf: `record ... -- cmd` runs cmd and writes a placeholder data file,
# `script` prints perf script text naming the binary as comm. MODE "forbidden" fails like
# perf does under perf_event_paranoid=3.
FAKE_PERF = '''\
import os, subprocess, sys
MODE = {mode!r}
args = sys.argv[1:]
if MODE == "forbidden":
    print("Error: Access to performance monitoring and observability operations is limited.",
          file=sys.stderr)
    print("Consider adjusting /proc/sys/kernel/perf_event_paranoid setting", file=sys.stderr)
    sys.exit(255)
if args[0] == "record" and MODE == "toofast" and "true" not in args:
    print("Maximum frequency rate (10,000 Hz) exceeded.", file=sys.stderr)
    sys.exit(255)
if args[0] == "record":
    out = args[args.index("-o") + 1]
    open(out, "w").write("PERFILE2")
    sys.exit(subprocess.run(args[args.index("--") + 1:]).returncode)
if args[0] == "script":
    sys.stdout.write(open({script!r}).read())
'''

PERF_SCRIPT = """\
perf-exec 4100 [000]  10.000001:    1001001 cpu-clock:
\tffffffff81000000 exc_page_fault+0x10 ([kernel.kallsyms])

{comm} 4100 [000]  10.001001:    1001001 cpu-clock:
\t    80f8 minilib_parse_request+0x238 (/tmp/{comm})
\t    aff5 minilib_handle_request+0x25 (/tmp/{comm})
\t    57a9 run_handle+0x49 (/tmp/{comm})
\t    3de8 main+0x1958 (/tmp/{comm})
\t   2724a __libc_start_call_main+0x7a (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    1a2b _start+0x21 (/tmp/{comm})

{comm} 4100 [000]  10.002001:    1001001 cpu-clock:
\t    8d12 minilib_validate_request+0x2c2 (/tmp/{comm})
\t    b038 minilib_handle_request+0x68 (/tmp/{comm})
\t    57a9 run_handle+0x49 (/tmp/{comm})
\t    3de8 main+0x1958 (/tmp/{comm})
\t   2724a __libc_start_call_main+0x7a (/usr/lib/x86_64-linux-gnu/libc.so.6)

{comm} 4100 [000]  10.003001:    1001001 cpu-clock:
\t    1d00 _dl_relocate_object+0x10 (/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)
"""


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n" + body)
    path.chmod(0o755)
    return path


def fake_harness(tmp_path: Path, mode: str = "ok", folded: str = FOLDED_OK) -> Path:
    return script(tmp_path / "bench_minilib", FAKE_HARNESS.format(mode=mode, folded=folded))


def fake_perf(tmp_path: Path, mode: str = "ok", comm: str = "bench_minilib") -> Path:
    text = tmp_path / "perf-script.txt"
    text.write_text(PERF_SCRIPT.format(comm=comm))
    return script(tmp_path / "perf", FAKE_PERF.format(mode=mode, script=str(text)))


def capture(tmp_path: Path, binary: Path, **kw) -> CaptureResult:
    kw.setdefault("method", "harness")
    return capture_profile(binary, "request/handle", workdir=tmp_path / "evidence", timeout_s=20,
                           **kw)


def test_harness_argv_selects_exactly_one_benchmark():
    argv = harness_argv(Path("/b/bench"), "odd.name (v2)", samples=5, min_time_s=0.05, cpu=1,
                        extra_args=["--x"])
    assert argv == ["/b/bench", "--x", "--filter", r"^odd\.name \(v2\)$", "--samples", "5",
                    "--min-time", "0.05", "--cpu", "1"]
    with pytest.raises(ValueError, match="samples"):
        harness_argv(Path("b"), "n", samples=0, min_time_s=0.1, cpu=None)


def test_harness_method_reads_the_folded_file(tmp_path):
    binary = fake_harness(tmp_path)
    result = capture(tmp_path, binary, samples=4, min_time_s=0.02, cpu=0, frequency_hz=500)
    assert result.method == "harness"
    assert result.profile.source == "harness" and result.profile.total == 35
    assert result.profile.self_counts() == {"minilib_parse_request": 30, "minilib_validate_request": 5}
    folded = tmp_path / "evidence" / "harness.folded"
    assert result.command == (str(binary), "--filter", "^request/handle$", "--samples", "4",
                              "--min-time", "0.02", "--cpu", "0", "--json", "--profile", str(folded),
                              "--profile-hz", "500")
    assert folded.read_text() == FOLDED_OK
    # 4 samples x 1000 iterations x 100 ns = 0.4 ms of timed samples
    assert "35 samples in 0.00 s" in result.note and "500 Hz requested" in result.note
    assert result.duration_s > 0


@pytest.mark.parametrize(("mode", "error", "message"), [
    ("crash", HarnessError, "killed by SIGSEGV"),
    ("fail", HarnessError, "exited with status 1: benchmark 'request/handle' failed inside the harness: "
                           "setup could not find its input"),
    ("old", EvidenceError, "does not know --profile: rebuild it against perfd's harness"),
    ("nofile", EvidenceError, "the harness wrote no profile"),
])
def test_harness_method_failures(tmp_path, mode, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        capture(tmp_path, fake_harness(tmp_path, mode))


def test_a_hanging_benchmark_is_killed_at_the_timeout(tmp_path):
    binary = fake_harness(tmp_path, "hang")
    with pytest.raises(HarnessError, match="timed out after 1 s and was killed"):
        capture_profile(binary, "request/handle", method="harness", workdir=tmp_path, timeout_s=1)


def test_malformed_folded_file_names_the_line(tmp_path):
    binary = fake_harness(tmp_path, folded="main;f 3\nmain;;g 2\n")
    with pytest.raises(EvidenceError, match=r"harness\.folded: folded line 2: empty frame name"):
        capture(tmp_path, binary)
    binary = fake_harness(tmp_path, folded="main;f 3\nmain;g many\n")
    with pytest.raises(EvidenceError, match="folded line 2: sample count"):
        capture(tmp_path, binary)


def test_an_empty_profile_asks_for_a_longer_run(tmp_path):
    with pytest.raises(EvidenceError, match="the profile has no samples: the benchmark ran for too "
                                            "short a time; raise min_time_s"):
        capture(tmp_path, fake_harness(tmp_path, folded=""))


def test_bad_arguments(tmp_path):
    binary = fake_harness(tmp_path)
    with pytest.raises(UsageError, match="auto, perf, harness"):
        capture(tmp_path, binary, method="gprof")
    with pytest.raises(ValueError, match="frequency_hz"):
        capture(tmp_path, binary, frequency_hz=0)
    with pytest.raises(HarnessError, match="does not exist"):
        capture(tmp_path, tmp_path / "no-such-bench")


def test_perf_method_with_a_missing_perf_is_a_clear_error(tmp_path):
    with pytest.raises(EvidenceError, match="perf is not installed .*: install linux-perf, or use "
                                            "profiler: harness"):
        capture(tmp_path, fake_harness(tmp_path), method="perf", perf=str(tmp_path / "no-perf"))


def test_perf_method_when_perf_is_forbidden(tmp_path):
    perf = fake_perf(tmp_path, "forbidden")
    with pytest.raises(EvidenceError, match="perf cannot be used: perf_event_paranoid=.* forbids perf "
                                            "record .*use profiler: harness"):
        capture(tmp_path, fake_harness(tmp_path), method="perf", perf=str(perf))


def test_auto_falls_back_to_the_harness_with_the_reason(tmp_path):
    result = capture(tmp_path, fake_harness(tmp_path), method="auto", perf=str(tmp_path / "no-perf"))
    assert result.method == "harness" and result.profile.total == 35
    assert result.note.startswith("perf not used: perf not found (")
    assert "sampled inside the harness instead" in result.note


def test_perf_method_keeps_the_benchmark_process_and_removes_perf_data(tmp_path):
    perf = fake_perf(tmp_path)
    binary = fake_harness(tmp_path)
    result = capture(tmp_path, binary, method="auto", perf=str(perf), frequency_hz=250)
    assert result.method == "perf" and result.profile.source == "perf"
    assert result.command[:8] == (str(perf), "record", "-q", "-e", "cpu-clock", "-F", "250",
                                  "--call-graph")
    # perf-exec's sample is not the benchmark; frames above main are cut
    assert dict(result.profile.stacks) == {
        ("main", "run_handle", "minilib_handle_request", "minilib_parse_request"): 1,
        ("main", "run_handle", "minilib_handle_request", "minilib_validate_request"): 1,
        ("_dl_relocate_object",): 1,
    }
    evidence = tmp_path / "evidence"
    assert not (evidence / "perf.data").exists()
    assert "minilib_parse_request 1" in (evidence / "perf.folded").read_text()


def test_perf_record_failing_before_the_benchmark_runs_says_so(tmp_path):
    perf = fake_perf(tmp_path, "toofast")
    with pytest.raises(EvidenceError, match=r"perf record -- bench_minilib exited with status 255 "
                                            r"without any benchmark output\n.*\nMaximum frequency rate"):
        capture(tmp_path, fake_harness(tmp_path), method="perf", perf=str(perf), frequency_hz=10000)


def test_perf_comm_is_the_first_15_bytes_of_the_binary_name(tmp_path):
    long_name = "bench_minilib_with_a_long_name"
    perf = fake_perf(tmp_path, comm=long_name[:15])
    binary = fake_harness(tmp_path)
    binary = binary.rename(tmp_path / long_name)
    result = capture(tmp_path, binary, method="perf", perf=str(perf))
    assert result.profile.total == 3


def test_benchmark_process_only_cuts_above_main():
    profile = Profile({("bench", "_start", "__libc_start_main", "main", "f"): 3,
                       ("bench", "main", "g"): 1, ("perf-exec", "exc_page_fault"): 2,
                       ("bench", "_dl_start"): 1}, source="perf")
    kept = benchmark_process_only(profile, "bench")
    assert dict(kept.stacks) == {("main", "f"): 3, ("main", "g"): 1, ("_dl_start",): 1}
    assert kept.source == "perf"


def test_perf_available_probe(tmp_path):
    ok, reason = perf_available(str(tmp_path / "no-perf"))
    assert not ok and reason.startswith("perf not found")
    assert perf_available(str(fake_perf(tmp_path))) == (True, "")
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "perf_event_paranoid").write_text("3\n")
    ok, reason = perf_available(str(fake_perf(tmp_path, "forbidden")), proc_root=proc)
    assert not ok
    assert reason.startswith("perf_event_paranoid=3 forbids perf record (Error: Access to performance")


def test_perf_available_other_failures_say_what_perf_said(tmp_path):
    perf = script(tmp_path / "perf", textwrap.dedent('''\
        import sys
        print("event syntax error: 'cpu-clock'", file=sys.stderr)
        sys.exit(129)
    '''))
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "perf_event_paranoid").write_text("1\n")
    ok, reason = perf_available(str(perf), proc_root=proc)
    assert not ok
    assert reason == ("perf record -e cpu-clock failed: perf exited with status 129: "
                      "event syntax error: 'cpu-clock'")
