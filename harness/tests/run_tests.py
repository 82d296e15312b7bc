#!/usr/bin/env python3
"""Black-box tests of a harness test binary built from tests/test_benchmarks.c.

usage: run_tests.py [--sanitized] [--bad-registration BAD_BINARY] BINARY

Runs BINARY with various command lines and checks its exit status, stdout
(list, table, JSON) and stderr. With --sanitized, any sanitizer report fails
the test. BAD_BINARY (from tests/test_bad_registration.c) must refuse to run. Exits 0 when every check passes, 1 otherwise. Standard library only.
"""

import json
import math
import os
import re
import select
import subprocess
import sys
import tempfile
import time

EXIT_USAGE = 100
FORMAT_VERSION = "1.2"
NESTED_CHAIN = "run_nested;profile_nested_outer;profile_nested_inner"
FOLDED_LINE = re.compile(r"^(\S(?:.*\S)?) ([1-9][0-9]*)$")
COUNTER_NAMES = ("cycles", "instructions", "cache_misses", "branch_misses")
ODD_NAME = 'odd/name "with quotes" and \\backslash'
SLEEP_NAME = "sleep/nanosleep-200us"
ALL_NAMES = [
    "trivial/sum",
    "lifecycle/count",
    "fail/explicit",
    "fail/setup",
    "fail/early-return",
    ODD_NAME,
    "memory/touch",
    "profile/nested",
    SLEEP_NAME,
]
FAILING = {"fail/explicit", "fail/setup", "fail/early-return"}
# On-CPU all the time: thread CPU time per op must not exceed the wall time by
# more than the clock reads bracketing the window (tiny per op at FAST).
CPU_BOUND = set(ALL_NAMES) - FAILING - {SLEEP_NAME}
CPU_SLACK_FACTOR, CPU_SLACK_NS = 1.05, 200.0
# The invalid byte \xff must come out as U+FFFD.
EXPLICIT_MESSAGE = 'boom "quoted" back\\slash\nnew line\ttab \x01 ctrl caf\u00e9 bad\ufffd, 3'
FAST = ["--min-time", "0.002", "--warmup", "1"]
TURNS_RUN = ["--filter", "^trivial/sum$", "--json", "--samples", "5", *FAST]
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


class Checker:
    """Runs the binary and collects failed checks instead of stopping at the first."""

    def __init__(self, binary: str, sanitized: bool) -> None:
        self.binary = binary
        self.sanitized = sanitized
        self.failures: list[str] = []
        self.checks = 0

    def start(self, args: list[str], env_extra: dict[str, str] | None = None,
              pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        # Distinct exit codes so a sanitizer abort can never pass for a
        # benchmark-failure count.
        env["ASAN_OPTIONS"] = "exitcode=120:abort_on_error=0:detect_leaks=1"
        env["UBSAN_OPTIONS"] = "exitcode=121:print_stacktrace=1:halt_on_error=1"
        env.pop("PERFD_HARNESS_TEST_SOFTWARE_COUNTERS", None)
        if env_extra:
            env.update(env_extra)
        return subprocess.Popen([self.binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, pass_fds=pass_fds)

    def finish(self, popen: subprocess.Popen[bytes], args: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            raw_stdout, raw_stderr = popen.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            popen.kill()
            raw_stdout, raw_stderr = popen.communicate()
            self.check(False, f"{args}: still running after 60 s, killed")
        # stdout must be valid UTF-8 (JSON); stderr may echo raw bytes.
        try:
            stdout = raw_stdout.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.check(False, f"{args}: stdout is not valid UTF-8: {exc}")
            stdout = raw_stdout.decode("utf-8", errors="replace")
        proc = subprocess.CompletedProcess(popen.args, popen.returncode, stdout,
                                           raw_stderr.decode("utf-8", errors="replace"))
        self.check(
            not any(marker in proc.stderr for marker in SANITIZER_MARKERS),
            f"{args}: sanitizer report:\n{proc.stderr}",
        )
        return proc

    def run(self, args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.finish(self.start(args, env_extra), args)

    def check(self, condition: bool, message: str) -> None:
        self.checks += 1
        if not condition:
            self.failures.append(message)

    def json_run(self, args: list[str], expect_rc: int, env_extra: dict[str, str] | None = None) -> dict:
        proc = self.run(["--json", *args], env_extra)
        self.check(proc.returncode == expect_rc,
                   f"{args}: exit status {proc.returncode}, expected {expect_rc}; stderr:\n{proc.stderr}")
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            self.check(False, f"{args}: stdout is not JSON ({exc}):\n{proc.stdout}")
            return {}


def finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_thread_probes(c: Checker, b: dict, available: bool = True) -> None:
    """samples_cpu_ns / samples_involuntary_switches: [] when failed, else one
    value per sample (or null when the harness could not read them)."""
    name = b.get("name")
    for key in ("samples_cpu_ns", "samples_involuntary_switches"):
        c.check(key in b, f"{name}: lacks {key!r}")
    cpu, switches = b.get("samples_cpu_ns"), b.get("samples_involuntary_switches")
    if b.get("status") != "ok":
        c.check(cpu == [] and switches == [], f"{name}: failed but has {cpu!r} {switches!r}")
        return
    if not available:
        c.check(cpu is None and switches is None, f"{name}: unavailable but got {cpu!r} {switches!r}")
        return
    n = len(b.get("samples_ns") or [])
    c.check(isinstance(cpu, list) and len(cpu) == n, f"{name}: samples_cpu_ns {cpu!r} for {n} samples")
    c.check(isinstance(switches, list) and len(switches) == n,
            f"{name}: samples_involuntary_switches {switches!r} for {n} samples")
    c.check(all(finite_number(v) and v > 0 for v in cpu or []), f"{name}: samples_cpu_ns {cpu}")
    c.check(all(is_count(v) for v in switches or []), f"{name}: samples_involuntary_switches {switches}")


def test_list_and_filter(c: Checker) -> None:
    proc = c.run(["--list"])
    c.check(proc.returncode == 0, f"--list: exit status {proc.returncode}")
    c.check(proc.stdout.splitlines() == ALL_NAMES, f"--list printed {proc.stdout!r}")
    proc = c.run(["--list", "--filter", "^fail/"])
    c.check(proc.stdout.splitlines() == ["fail/explicit", "fail/setup", "fail/early-return"],
            f"--list --filter ^fail/ printed {proc.stdout!r}")
    proc = c.run(["--list", "--filter=^trivial/sum$"])
    c.check(proc.stdout.splitlines() == ["trivial/sum"], f"--filter= form printed {proc.stdout!r}")
    proc = c.run(["--list", "--filter", "quotes|(touch)$"])
    c.check(proc.stdout.splitlines() == [ODD_NAME, "memory/touch"], f"ERE filter printed {proc.stdout!r}")


def test_usage_errors(c: Checker) -> None:
    bad = [
        ["--bogus"],
        ["extra-positional"],
        ["--samples"],
        ["--samples", "0"],
        ["--samples", "abc"],
        ["--samples", "-1"],
        ["--samples", "5x"],
        ["--warmup", "1.5"],
        ["--min-time", "soon"],
        ["--min-time", "-0.1"],
        ["--min-time", "nan"],
        ["--filter", "("],
        ["--filter", "no-such-benchmark"],
        ["--cpu", "-1"],
        ["--cpu", "100000"],
        ["--cpu", "1023"],      # valid number, but not a CPU this machine has
        ["--json=yes"],
        ["--profile-hz", "100"],                              # without --profile
        ["--profile", "unused.folded"],                       # selects more than one benchmark
        ["--profile", "", "--filter", "^trivial"],
        ["--profile", "p.folded", "--profile-hz", "0", "--filter", "^trivial"],
        ["--profile", "p.folded", "--profile-hz", "100000", "--filter", "^trivial"],
        ["--profile", "/nonexistent-dir/p.folded", "--filter", "^trivial"],
    ]
    for args in bad:
        proc = c.run(args)
        c.check(proc.returncode == EXIT_USAGE, f"{args}: exit status {proc.returncode}, expected {EXIT_USAGE}")
        c.check(proc.stdout == "", f"{args}: printed to stdout: {proc.stdout!r}")
        c.check("error" in proc.stderr, f"{args}: no error message on stderr: {proc.stderr!r}")
    for args in (["--help"], ["--version"]):
        proc = c.run(args)
        c.check(proc.returncode == 0 and proc.stdout.strip() != "", f"{args}: rc {proc.returncode}, {proc.stdout!r}")


def check_document(c: Checker, doc: dict, samples: int, warmup: int, min_time_s: float) -> None:
    c.check(doc.get("format") == "perfd-harness", f"format is {doc.get('format')!r}")
    c.check(doc.get("version") == FORMAT_VERSION, f"version is {doc.get('version')!r}")
    ctx = doc.get("context", {})
    for key in ("harness_version", "host", "pid", "date", "cpu_model", "governor", "pinned_cpu",
                "timer", "counters", "settings"):
        c.check(key in ctx, f"context lacks {key!r}")
    c.check(isinstance(ctx.get("host"), str) and ctx.get("host") != "", "context.host is empty")
    c.check(ctx.get("pid", 0) > 0, "context.pid is not positive")
    date = ctx.get("date", "")
    c.check(isinstance(date, str) and len(date) == 20 and date.endswith("Z"), f"context.date is {date!r}")
    timer = ctx.get("timer", {})
    c.check(timer.get("clock") == "CLOCK_MONOTONIC", f"timer.clock is {timer.get('clock')!r}")
    c.check(finite_number(timer.get("resolution_ns")) and timer["resolution_ns"] > 0, f"timer {timer}")
    c.check(finite_number(timer.get("overhead_ns")) and timer["overhead_ns"] > 0, f"timer {timer}")
    settings = ctx.get("settings", {})
    c.check(settings == {"warmup": warmup, "samples": samples, "min_time_s": min_time_s},
            f"settings are {settings}")


def test_json_run(c: Checker) -> None:
    samples, min_time = 4, 0.002
    doc = c.json_run([*FAST, "--samples", str(samples)], expect_rc=len(FAILING))
    if not doc:
        return
    check_document(c, doc, samples, 1, min_time)
    ctx = doc["context"]
    c.check(ctx["pinned_cpu"] is None, f"pinned_cpu is {ctx['pinned_cpu']!r} without --cpu")
    c.check(ctx["counters"] == {"requested": False, "available": [], "unavailable": {}},
            f"counters without --counters: {ctx['counters']}")
    c.check("profile" not in ctx, f"context.profile without --profile: {ctx.get('profile')}")
    benches = doc.get("benchmarks", [])
    c.check([b.get("name") for b in benches] == ALL_NAMES, f"benchmark names {[b.get('name') for b in benches]}")
    for b in benches:
        name = b.get("name")
        for key in ("name", "status", "error", "iterations_per_sample", "samples_ns", "counters"):
            c.check(key in b, f"{name}: lacks {key!r}")
        check_thread_probes(c, b)
        if name in FAILING:
            c.check(b.get("status") == "error", f"{name}: status {b.get('status')!r}")
            c.check(isinstance(b.get("error"), str) and b["error"] != "", f"{name}: error {b.get('error')!r}")
            c.check(b.get("samples_ns") == [] and b.get("counters") == {}, f"{name}: has data {b}")
            continue
        c.check(b.get("status") == "ok" and b.get("error") is None, f"{name}: {b.get('status')} {b.get('error')}")
        values = b.get("samples_ns", [])
        iterations = b.get("iterations_per_sample")
        c.check(len(values) == samples, f"{name}: {len(values)} samples, expected {samples}")
        c.check(all(finite_number(v) and v > 0 for v in values), f"{name}: non-positive sample in {values}")
        c.check(isinstance(iterations, int) and iterations >= 1, f"{name}: iterations {iterations!r}")
        if values and isinstance(iterations, int):
            batch_s = sorted(values)[len(values) // 2] * iterations / 1e9
            # Calibration aims at >= min-time; warm samples may be a bit faster.
            c.check(batch_s >= 0.5 * min_time, f"{name}: median batch lasted {batch_s:.6f} s < min-time")
            c.check(batch_s < 100 * min_time, f"{name}: median batch lasted {batch_s:.6f} s, far above min-time")
        c.check(b.get("counters") == {}, f"{name}: counters {b.get('counters')} without --counters")
        cpu = b.get("samples_cpu_ns") or []
        pairs = list(zip(cpu, values))
        if name in CPU_BOUND:
            c.check(all(finite_number(t) and t <= w * CPU_SLACK_FACTOR + CPU_SLACK_NS for t, w in pairs),
                    f"{name}: CPU time above wall time: cpu {cpu} wall {values}")
        if name == SLEEP_NAME:
            c.check(len(pairs) == samples and all(finite_number(t) and t < 0.5 * w for t, w in pairs),
                    f"{name}: sleeping but CPU time {cpu} not well below wall time {values}")
    by_name = {b.get("name"): b for b in benches}
    c.check(by_name.get("fail/explicit", {}).get("error") == EXPLICIT_MESSAGE,
            f"fail/explicit message round-trips as {by_name.get('fail/explicit', {}).get('error')!r}")
    c.check(by_name.get("fail/setup", {}).get("error") == "setup could not find its input",
            "fail/setup message lost")
    c.check("returned before" in (by_name.get("fail/early-return", {}).get("error") or ""),
            "fail/early-return not detected")


def test_lifecycle(c: Checker) -> None:
    proc = c.run([*FAST, "--samples", "3", "--filter", "lifecycle|fail/setup"])
    c.check(proc.returncode == 1, f"lifecycle run: exit status {proc.returncode}, expected 1")
    lines = proc.stderr.splitlines()
    c.check(lines.count("test-lifecycle: setup_calls=1 teardown_calls=1") == 1,
            f"setup/teardown not called exactly once:\n{proc.stderr}")
    c.check(lines.count("test-setup-fail: teardown_calls=1") == 1,
            f"teardown after a failed setup not called once:\n{proc.stderr}")
    c.check("test-setup-fail: run was called" not in lines, "run called after setup failed")


def test_exit_status(c: Checker) -> None:
    for pattern, expected in (("^trivial", 0), ("fail/(explicit|setup)", 2), ("fail/", 3)):
        proc = c.run([*FAST, "--samples", "2", "--filter", pattern])
        c.check(proc.returncode == expected, f"--filter {pattern}: exit status {proc.returncode}, expected {expected}")


def test_table(c: Checker) -> None:
    proc = c.run([*FAST, "--samples", "2"])
    c.check(proc.returncode == len(FAILING), f"table run: exit status {proc.returncode}")
    for name in ALL_NAMES:
        c.check(name in proc.stdout, f"table lacks {name!r}:\n{proc.stdout}")
    explicit = [line for line in proc.stdout.splitlines() if line.startswith("fail/explicit")]
    c.check(len(explicit) == 1 and "ERROR" in explicit[0], f"failure not on one line:\n{proc.stdout}")
    c.check("fail/explicit" in proc.stderr, "failure not reported on stderr")
    sleep_rows = [line for line in proc.stdout.splitlines() if line.startswith(SLEEP_NAME)]
    c.check(len(sleep_rows) == 1 and "(off-CPU up to " in sleep_rows[0] and "involuntary switch" in sleep_rows[0],
            f"no off-CPU note for {SLEEP_NAME}:\n{proc.stdout}")


def test_thread_cpu_unavailable(c: Checker) -> None:
    """Both reads failing (test hook): null, never zeros, and a warning saying why."""
    env = {"PERFD_HARNESS_TEST_NO_THREAD_CPU": "1"}
    args = [*FAST, "--samples", "2", "--filter", f"^(trivial/sum|fail/setup|{SLEEP_NAME})$"]
    proc = c.run(["--json", *args], env)
    c.check(proc.returncode == 1, f"thread CPU unavailable: exit status {proc.returncode}\n{proc.stderr}")
    try:
        benches = json.loads(proc.stdout).get("benchmarks", [])
    except json.JSONDecodeError:
        benches = []
    c.check(len(benches) == 3, f"thread CPU unavailable: benchmarks {benches}")
    for b in benches:
        check_thread_probes(c, b, available=False)
        if b.get("status") == "ok":
            c.check(len(b.get("samples_ns", [])) == 2, f"{b.get('name')}: lost its samples_ns")
    for call in ("clock_gettime(CLOCK_THREAD_CPUTIME_ID)", "getrusage(RUSAGE_THREAD)"):
        c.check(proc.stderr.count(f"warning: {call}: ") == 1, f"no single warning for {call}:\n{proc.stderr}")
    proc = c.run(args, env)
    c.check(proc.returncode == 1 and "off-CPU" not in proc.stdout,
            f"table without thread CPU time: rc {proc.returncode}\n{proc.stdout}")


def test_min_time_zero(c: Checker) -> None:
    doc = c.json_run(["--min-time", "0", "--samples", "3", "--filter", "^memory/touch$"], expect_rc=0)
    bench = (doc.get("benchmarks") or [{}])[0]
    c.check(bench.get("iterations_per_sample") == 1, f"--min-time 0 gave {bench.get('iterations_per_sample')}")


def test_cpu_pinning(c: Checker) -> None:
    doc = c.json_run([*FAST, "--samples", "2", "--cpu", "0", "--filter", "^trivial"], expect_rc=0)
    c.check(doc.get("context", {}).get("pinned_cpu") == 0, f"pinned_cpu is {doc.get('context', {}).get('pinned_cpu')!r}")


def check_counter_document(c: Checker, doc: dict, samples: int) -> tuple[list[str], dict]:
    counters = doc.get("context", {}).get("counters", {})
    available = counters.get("available", [])
    unavailable = counters.get("unavailable", {})
    c.check(counters.get("requested") is True, f"counters.requested is {counters.get('requested')!r}")
    c.check(set(available) | set(unavailable) == set(COUNTER_NAMES), f"counters cover {available} {unavailable}")
    c.check(not set(available) & set(unavailable), f"counter both available and unavailable: {counters}")
    for name, reason in unavailable.items():
        c.check(isinstance(reason, str) and "errno" in reason, f"counter {name}: reason {reason!r}")
    for b in doc.get("benchmarks", []):
        check_thread_probes(c, b)
        per_bench = b.get("counters", {})
        if b.get("status") != "ok":
            c.check(per_bench == {}, f"{b.get('name')}: failed but has counters")
            continue
        c.check(sorted(per_bench) == sorted(available),
                f"{b.get('name')}: counters {sorted(per_bench)} but available {available}")
        for name, values in per_bench.items():
            c.check(len(values) == samples, f"{b.get('name')}: {name} has {len(values)} values")
            c.check(all(v is None or (finite_number(v) and v >= 0) for v in values),
                    f"{b.get('name')}: {name} values {values}")
    return available, unavailable


def test_counters(c: Checker) -> None:
    samples = 3
    args = [*FAST, "--samples", str(samples), "--counters", "--filter", "^(trivial|memory|fail/explicit)"]
    doc = c.json_run(args, expect_rc=1)
    available, _ = check_counter_document(c, doc, samples)
    c.check("test_software_substitutes" not in doc.get("context", {}).get("counters", {}),
            "real counters flagged as substitutes")
    print(f"  hardware counters on this machine: available={available}")

    # The available path, on any machine: software events stand in.
    doc = c.json_run(args, expect_rc=1, env_extra={"PERFD_HARNESS_TEST_SOFTWARE_COUNTERS": "1"})
    available, _ = check_counter_document(c, doc, samples)
    counters = doc.get("context", {}).get("counters", {})
    c.check(counters.get("test_software_substitutes") is True, "substitutes not flagged")
    if len(available) != len(COUNTER_NAMES):
        # Some sandboxes forbid even software events; then all must carry reasons.
        print(f"  software counter substitutes unavailable here: {counters.get('unavailable')}")
        return
    for b in doc.get("benchmarks", []):
        if b.get("status") == "ok":
            cycles = b["counters"]["cycles"]   # task-clock in ns: per op > 0
            c.check(all(finite_number(v) and v > 0 for v in cycles), f"{b['name']}: task-clock per op {cycles}")


def read_folded(c: Checker, path: str) -> list[tuple[list[str], int]]:
    """Parses a folded-stacks file, recording a failed check per malformed line."""
    stacks = []
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        c.check(False, f"profile {path}: cannot read it: {exc}")
        return stacks
    for number, line in enumerate(text.splitlines(), 1):
        m = FOLDED_LINE.match(line)
        frames = m.group(1).split(";") if m else []
        ok = m is not None and all(f != "" and f == f.strip() for f in frames)
        c.check(ok, f"profile line {number} is not 'frame;...;frame count': {line!r}")
        if ok:
            stacks.append((frames, int(m.group(2))))
    c.check(text == "" or text.endswith("\n"), "profile does not end with a newline")
    return stacks


def test_profile(c: Checker) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "nested.folded")
        args = ["--filter", "^profile/nested$", "--samples", "5", "--min-time", "0.04",
                "--warmup", "0", "--profile", path]
        doc = c.json_run(args, expect_rc=0)
        ctx = doc.get("context", {})
        info = ctx.get("profile", {})
        stacks = read_folded(c, path)
        total = sum(count for _, count in stacks)
        c.check(info.get("path") == path and info.get("hz") == 999 and info.get("dropped") == 0,
                f"context.profile is {info}")
        c.check(info.get("samples") == total, f"context.profile.samples {info.get('samples')} != {total} in the file")
        c.check(total >= 10, f"only {total} profile samples in 0.2 s of CPU time")
        bench = (doc.get("benchmarks") or [{}])[0]
        c.check(len(bench.get("samples_ns", [])) == 5, "profiled run lost its samples")
        check_thread_probes(c, bench)
        rooted = sum(count for frames, count in stacks if frames[0] == "main")
        chain = sum(count for frames, count in stacks if NESTED_CHAIN in ";".join(frames))
        leaf = sum(count for frames, count in stacks if frames[-1] == "profile_nested_inner")
        summary = "\n".join(f"  {';'.join(f)} {n}" for f, n in stacks)
        # The same expectations hold under ASan+UBSan: the walk reads frame
        # records, which ASan leaves in place (fake stacks are off by default).
        if total:
            c.check(rooted >= 0.9 * total, f"main is the root of only {rooted}/{total} samples:\n{summary}")
            c.check(chain >= 0.5 * total, f"{NESTED_CHAIN} in only {chain}/{total} samples:\n{summary}")
            c.check(leaf >= 0.5 * total, f"profile_nested_inner is the leaf of only {leaf}/{total}:\n{summary}")
            print(f"  profile: {total} samples, main root of {rooted}, {NESTED_CHAIN} in {chain}")

        # A lower rate, the table output, and a second run overwriting the file.
        proc = c.run(["--filter", "^profile/nested$", "--samples", "2", "--min-time", "0.02",
                      "--profile", path, "--profile-hz=100"])
        c.check(proc.returncode == 0, f"--profile with the table: exit status {proc.returncode}\n{proc.stderr}")
        lines = [line for line in proc.stdout.splitlines() if line.startswith("# profile:")]
        c.check(len(lines) == 1 and "at 100 Hz" in lines[0] and path in lines[0],
                f"table lacks the profile line:\n{proc.stdout}")
        again = read_folded(c, path)
        c.check(f"{sum(n for _, n in again)} samples" in (lines or [""])[0],
                f"table sample count differs from the file: {lines}")

        # A failing benchmark still writes a well-formed (possibly empty) profile.
        failing = os.path.join(tmp, "fail.folded")
        proc = c.run(["--filter", "^fail/explicit$", "--min-time", "0.002", "--profile", failing])
        c.check(proc.returncode == 1, f"--profile on a failing benchmark: exit status {proc.returncode}")
        c.check(os.path.exists(failing), "no profile file for a failing benchmark")
        read_folded(c, failing)


def test_turns_usage(c: Checker) -> None:
    for value in ("3", "4,4", "900,901", "a,b", "3,", ",4", "-1,4"):
        proc = c.run(["--turns", value])
        c.check(proc.returncode == EXIT_USAGE, f"--turns {value}: exit status {proc.returncode}")
        c.check(proc.stdout == "", f"--turns {value}: printed to stdout: {proc.stdout!r}")
        c.check("error: --turns:" in proc.stderr, f"--turns {value}: unclear message {proc.stderr!r}")


def turns_samples(c: Checker, label: str, proc: subprocess.CompletedProcess[str]) -> None:
    """A --turns run of TURNS_RUN must still be a complete, successful one."""
    c.check(proc.returncode == 0, f"{label}: exit status {proc.returncode}; stderr:\n{proc.stderr}")
    try:
        benches = json.loads(proc.stdout).get("benchmarks", [])
    except json.JSONDecodeError:
        benches = []
    values = benches[0].get("samples_ns", []) if len(benches) == 1 else []
    c.check(len(values) == 5, f"{label}: {len(values)} samples, expected 5:\n{proc.stdout}")


def test_turns_lock_step(c: Checker) -> None:
    """Two binaries wired crosswise wait for the token, then both finish."""
    one, two = os.pipe(), os.pipe()   # A reads one and writes two; B the other way round
    a_args = [*TURNS_RUN, "--turns", f"{one[0]},{two[1]}"]
    b_args = [*TURNS_RUN, "--turns", f"{two[0]},{one[1]}"]
    a = c.start(a_args, pass_fds=(one[0], two[1]))
    b = c.start(b_args, pass_fds=(two[0], one[1]))
    for fd in (one[0], two[1], two[0]):
        os.close(fd)
    time.sleep(1.0)   # alone, the run takes a few ms; without the token it must not start
    c.check(a.poll() is None and b.poll() is None,
            f"--turns: finished without the token (exit statuses {a.poll()}, {b.poll()})")
    try:
        os.write(one[1], b"t")
    except BrokenPipeError:
        pass   # A is gone already: reported above and below
    os.close(one[1])
    turns_samples(c, "--turns pair, A", c.finish(a, a_args))
    turns_samples(c, "--turns pair, B", c.finish(b, b_args))


def turns_partner(c: Checker, rounds: int, keep_reader: bool = True) -> tuple[subprocess.CompletedProcess[str], int]:
    """Plays the partner for up to `rounds` turns (each: give a token, wait for it
    to come back), then closes its ends. Without keep_reader the binary's OUT
    has no reader from the start. Returns the run and the tokens that came back."""
    to_bin, from_bin = os.pipe(), os.pipe()
    args = [*TURNS_RUN, "--turns", f"{to_bin[0]},{from_bin[1]}"]
    proc = c.start(args, pass_fds=(to_bin[0], from_bin[1]))
    os.close(to_bin[0])
    os.close(from_bin[1])
    if not keep_reader:
        os.close(from_bin[0])
    back = 0
    for _ in range(rounds):
        try:
            os.write(to_bin[1], b"t")
        except BrokenPipeError:
            break
        if not keep_reader:
            continue
        if not select.select([from_bin[0]], [], [], 30)[0]:
            c.check(False, f"--turns: no token back within 30 s after {back}")
            break
        if os.read(from_bin[0], 1) == b"":
            break
        back += 1
        if select.select([from_bin[0]], [], [], 0.05)[0]:   # only EOF may follow unasked
            extra = len(os.read(from_bin[0], 1))
            c.check(extra == 0, f"--turns: token {back + 1} sent without waiting for one")
            back += extra
            if not extra:
                break
    os.close(to_bin[1])
    done = c.finish(proc, args)
    if keep_reader:
        back += len(os.read(from_bin[0], 1024))   # all writers are gone: no blocking
        os.close(from_bin[0])
    return done, back


def test_turns_protocol(c: Checker) -> None:
    # One turn for setup+calibration+warmup, one per sample, one for teardown.
    proc, back = turns_partner(c, rounds=100)
    turns_samples(c, "--turns with the test as partner", proc)
    c.check(back == 5 + 2, f"--turns: {back} tokens came back, expected 7 for 5 samples")


def test_turns_partner_gone(c: Checker) -> None:
    # EOF on IN after three turns: carry on alone, send no more tokens.
    proc, back = turns_partner(c, rounds=3)
    turns_samples(c, "--turns, partner gone after 3 turns", proc)
    c.check(back == 3, f"--turns: {back} tokens after the partner left at 3")
    # OUT without a reader: EPIPE (not death by SIGPIPE), then alone.
    proc, _ = turns_partner(c, rounds=1, keep_reader=False)
    turns_samples(c, "--turns, no reader on OUT", proc)


def test_bad_registration(binary: str) -> list[str]:
    """A binary with a duplicated name must exit 100 naming both registrations."""
    proc = subprocess.run([binary, "--list"], capture_output=True, text=True, timeout=60)
    problems = []
    if proc.returncode != EXIT_USAGE:
        problems.append(f"duplicate registration: exit status {proc.returncode}, expected {EXIT_USAGE}")
    if proc.stdout != "":
        problems.append(f"duplicate registration printed to stdout: {proc.stdout!r}")
    if "registered twice" not in proc.stderr or proc.stderr.count("test_bad_registration.c:") != 2:
        problems.append(f"duplicate registration message unclear: {proc.stderr!r}")
    return problems


def main(argv: list[str]) -> int:
    args = argv[1:]
    sanitized = "--sanitized" in args
    args = [a for a in args if a != "--sanitized"]
    bad_binary = None
    if "--bad-registration" in args:
        at = args.index("--bad-registration")
        if at + 1 >= len(args):
            print(__doc__, file=sys.stderr)
            return 2
        bad_binary = args[at + 1]
        del args[at:at + 2]
    paths = args
    if len(paths) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    c = Checker(os.path.abspath(paths[0]), sanitized)
    started = time.monotonic()
    tests = [test_list_and_filter, test_usage_errors, test_json_run, test_lifecycle, test_exit_status,
             test_table, test_thread_cpu_unavailable, test_min_time_zero, test_cpu_pinning, test_counters, test_profile,
             test_turns_usage, test_turns_lock_step, test_turns_protocol, test_turns_partner_gone]
    for test in tests:
        before = len(c.failures)
        test(c)
        status = "ok" if len(c.failures) == before else "FAIL"
        print(f"{status:4} {test.__name__}")
    if bad_binary is not None:
        problems = test_bad_registration(os.path.abspath(bad_binary))
        c.checks += 1
        c.failures.extend(problems)
        print(f"{'FAIL' if problems else 'ok':4} test_bad_registration")
    elapsed = time.monotonic() - started
    label = "sanitized" if sanitized else "plain"
    if c.failures:
        print(f"\n{len(c.failures)} of {c.checks} checks failed ({label}, {paths[0]}):", file=sys.stderr)
        for failure in c.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"all {c.checks} checks passed ({label}, {elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
