"""Capture a CPU profile of one benchmark: `perf record` when it works, else the harness sampler.

perf path: ``perf record -e cpu-clock -F <hz> --call-graph fp -o perf.data -- <binary> ...`` then
``perf script``, folded by :func:`perfd.evidence.profile.parse_perf_script`; only samples of the
benchmark's own process are kept. ``cpu-clock`` is a software event, so this works on VMs
without a PMU. Harness path: ``<binary> ... --profile harness.folded`` (SIGPROF + frame-pointer
walk inside the harness, see harness/README.md), read with
:func:`perfd.evidence.profile.parse_folded`.

Inlined frames (perf path): perfd looks the sampled addresses of the benchmark binary up in
its DWARF itself, with one batched ``addr2line -a -f -i -e <binary> <addr>...`` (caller frames
at their return address minus one, the call instruction), and folds the inlined functions in
as ``name (inlined)`` frames (see :mod:`perfd.evidence.profile`); ``perf script`` runs with
``--no-inline`` so that perf does not resolve them a second time, slowly, by itself. A binary
without debug information, or no addr2line, gives the same profile without them. The harness
sampler writes function names, not addresses: its profiles have no inlined frames, and
attribution follows the static helpers in the source instead (:mod:`perfd.evidence.attribution`).

Both paths cut stacks at the outermost ``main`` (the harness writes them that way; perf's
``_start;__libc_start_main...`` frames above it are dropped), so profiles from either method
have the same roots.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from perfd.errors import EvidenceError, HarnessError, UsageError
from perfd.evidence.profile import (
    InlineTable,
    Profile,
    parse_addr2line,
    parse_folded,
    parse_perf_script,
    perf_script_addresses,
    to_folded,
)
from perfd.model import HarnessOutput
from perfd.runner.execute import ere_escape, harness_failure
from perfd.runner.parse import parse_harness_json
from perfd.runner.procs import Completed, run_process

METHODS = ("auto", "perf", "harness")
PROBE_TIMEOUT_S = 30.0
HARNESS_MAX_HZ = 10000  # PROFILE_MAX_HZ in harness/perfd_harness.c
PERF_DATA = "perf.data"
PERF_FOLDED = "perf.folded"
HARNESS_FOLDED = "harness.folded"
# Linux keeps the first 15 bytes of the executable's name as the process's comm.
TASK_COMM_LEN = 15
PERF_MISSING = "perf is not installed{where}: install linux-perf, or use profiler: harness"
ADDR2LINE_BATCH = 4000  # addresses per addr2line command line (~80 kB of argv)
NO_SAMPLES = "the profile has no samples: the benchmark ran for too short a time; raise min_time_s"


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """A captured profile and how it was obtained."""

    profile: Profile
    method: str  # "perf" or "harness"
    command: tuple[str, ...]  # the profiled command line
    note: str  # e.g. why perf was not used, the harness sampler's effective rate
    duration_s: float  # wall time of the capture (profiled run + folding)

    def __post_init__(self) -> None:
        if self.method not in ("perf", "harness"):
            raise ValueError(f"CaptureResult.method: must be 'perf' or 'harness', got {self.method!r}")
        if not self.duration_s >= 0:
            raise ValueError(f"CaptureResult.duration_s: must be >= 0, got {self.duration_s!r}")


def harness_argv(
    binary: Path,
    benchmark: str,
    *,
    samples: int,
    min_time_s: float,
    cpu: int | None,
    extra_args: Sequence[str] = (),
    warmup: int | None = None,
) -> list[str]:
    """argv running exactly one benchmark of a harness binary (its name matched exactly)."""
    if samples < 1:
        raise ValueError(f"samples: must be >= 1, got {samples}")
    if not min_time_s >= 0:
        raise ValueError(f"min_time_s: must be >= 0, got {min_time_s!r}")
    argv = [str(binary), *extra_args, "--filter", f"^{ere_escape(benchmark)}$",
            "--samples", str(samples), "--min-time", repr(float(min_time_s))]
    if warmup is not None:
        argv += ["--warmup", str(warmup)]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    return argv


def c_locale_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment with LC_ALL=C, so perf prints '.' decimal points and English messages."""
    out = dict(os.environ if env is None else env)
    out["LC_ALL"] = "C"
    return out


def perf_available(
    perf: str = "perf", *, proc_root: Path = Path("/proc"), timeout_s: float = PROBE_TIMEOUT_S
) -> tuple[bool, str]:
    """Probe ``perf record -e cpu-clock -- true``: (True, "") or (False, why perf cannot be used)."""
    if shutil.which(perf) is None:
        return False, f"perf not found ({perf!r} is not an executable program)"
    with tempfile.TemporaryDirectory(prefix="perfd-perf-probe-") as tmp:
        argv = [perf, "record", "-q", "-e", "cpu-clock", "-o", str(Path(tmp) / "probe.data"),
                "--", "true"]
        try:
            done = run_process(argv, timeout_s=timeout_s, env=c_locale_env())
        except (FileNotFoundError, PermissionError) as exc:
            return False, f"perf cannot be started: {exc.strerror}"
    failure = done.describe_failure()
    if failure is None:
        return True, ""
    detail = _first_line(done.stderr)
    paranoid = _read_int(proc_root / "sys" / "kernel" / "perf_event_paranoid")
    # 2 still lets a user profile their own processes; 3 (a Debian/Android patch) forbids
    # perf_event_open for unprivileged users altogether.
    if paranoid is not None and (paranoid >= 3 or "paranoid" in done.stderr):
        return False, (f"perf_event_paranoid={paranoid} forbids perf record"
                       + (f" ({detail})" if detail else f" (perf {failure})"))
    return False, f"perf record -e cpu-clock failed: perf {failure}" + (f": {detail}" if detail else "")


def capture_profile(
    binary: Path,
    benchmark: str,
    *,
    method: str = "auto",
    samples: int = 10,
    min_time_s: float = 0.05,
    cpu: int | None = None,
    extra_args: Sequence[str] = (),
    timeout_s: float = 300,
    workdir: Path,
    perf: str = "perf",
    frequency_hz: int = 999,
    addr2line: str = "addr2line",
) -> CaptureResult:
    """Profile one benchmark of a harness binary; method auto | perf | harness.

    Files land in ``workdir`` (``perf.folded`` or ``harness.folded``; perf.data is removed).
    Raises UsageError for a bad method, EvidenceError when the profiler is missing or the
    profile is empty or malformed, HarnessError when the benchmark fails, crashes or hangs.
    """
    if method not in METHODS:
        raise UsageError(f"profiler method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 1 <= frequency_hz <= HARNESS_MAX_HZ:
        raise ValueError(f"frequency_hz: must be 1..{HARNESS_MAX_HZ}, got {frequency_hz}")
    argv = harness_argv(binary, benchmark, samples=samples, min_time_s=min_time_s, cpu=cpu,
                        extra_args=extra_args)
    if not binary.is_file():
        raise HarnessError(f"benchmark binary {binary} does not exist (build the suite first)")
    workdir.mkdir(parents=True, exist_ok=True)
    note = ""
    if method != "harness":
        ok, reason = perf_available(perf)
        if method == "perf" and not ok:
            if shutil.which(perf) is None:
                raise EvidenceError(PERF_MISSING.format(where=f" ({perf!r} not found)"))
            raise EvidenceError(f"perf cannot be used: {reason}; use profiler: harness")
        method = "perf" if ok else "harness"
        if not ok:
            note = f"perf not used: {reason}; sampled inside the harness instead"
    started = time.monotonic()
    if method == "perf":
        profile, command, inline_note = _capture_perf(
            binary, benchmark, argv, workdir=workdir, perf=perf, frequency_hz=frequency_hz,
            timeout_s=timeout_s, addr2line=addr2line)
        note = (f"perf record -e cpu-clock (software clock) at {frequency_hz} Hz, frame-pointer "
                f"stacks{inline_note}")
    else:
        profile, command, rate_note = _capture_harness(binary, benchmark, argv, workdir=workdir,
                                                       frequency_hz=frequency_hz, timeout_s=timeout_s)
        note = f"{note}; {rate_note}" if note else rate_note
    if profile.is_empty:
        raise EvidenceError(f"profiling {benchmark!r} with {method}: {NO_SAMPLES}")
    return CaptureResult(profile=profile, method=method, command=tuple(command), note=note,
                         duration_s=time.monotonic() - started)


# ---- perf --------------------------------------------------------------------------------------


def _capture_perf(
    binary: Path, benchmark: str, argv: list[str], *, workdir: Path, perf: str, frequency_hz: int,
    timeout_s: float, addr2line: str,
) -> tuple[Profile, list[str], str]:
    data = workdir / PERF_DATA
    command = [perf, "record", "-q", "-e", "cpu-clock", "-F", str(frequency_hz), "--call-graph", "fp",
               "-o", str(data), "--", *argv, "--json"]
    missing = PERF_MISSING.format(where=f" ({perf!r} not found)")
    try:
        done = _run(command, timeout_s, missing=missing)
        if done.returncode > 0 and not done.timed_out and not done.stdout.strip():
            # perf itself (sample rate above perf_event_max_sample_rate, no permission) or a
            # harness usage error: either way nothing ran; stderr says which.
            raise EvidenceError(f"profiling {benchmark!r}: perf record -- {binary.name} "
                                f"{done.describe_failure()} without any benchmark output"
                                + done.stderr_section())
        _check_benchmark_run(done, benchmark, "perf", timeout_s)
        script = _run([perf, "script", "--no-inline", "-i", str(data)], timeout_s, missing=missing)
    finally:
        data.unlink(missing_ok=True)
        Path(str(data) + ".old").unlink(missing_ok=True)
    failure = script.describe_failure()
    if failure:
        raise EvidenceError(f"profiling {benchmark!r}: perf script {failure}" + script.stderr_section())
    inlined, inline_note = inline_table(script.stdout, binary, addr2line=addr2line,
                                        timeout_s=timeout_s)
    profile = benchmark_process_only(
        parse_perf_script(script.stdout, keep_process=True, inlined=inlined),
        binary.name[:TASK_COMM_LEN])
    (workdir / PERF_FOLDED).write_text(to_folded(profile), encoding="utf-8")
    return profile, command, inline_note


def inline_table(script_text: str, binary: Path, *, addr2line: str = "addr2line",
                 timeout_s: float = PROBE_TIMEOUT_S) -> tuple[InlineTable, str]:
    """The functions inlined at the addresses ``perf script`` text shows in ``binary``, from its
    DWARF (``addr2line -a -f -i``), and a note for the capture's description: ", inlined
    frames from DWARF" or ", no inlined frames (<why>)". Never raises: without them the
    profile is the same, only coarser."""
    dsos = {str(binary), str(binary.resolve())}
    addresses = sorted(perf_script_addresses(script_text, dsos))
    if not addresses:
        return {}, ""
    found: dict[int, tuple[str, ...]] = {}
    env = c_locale_env()
    env["DEBUGINFOD_URLS"] = ""  # never fetch debug information over the network
    for start in range(0, len(addresses), ADDR2LINE_BATCH):
        batch = addresses[start:start + ADDR2LINE_BATCH]
        argv = [addr2line, "-a", "-f", "-i", "-C", "-e", str(binary), *(f"{a:#x}" for a in batch)]
        try:
            done = run_process(argv, timeout_s=timeout_s, env=env)
        except (FileNotFoundError, PermissionError) as exc:
            return {}, f", no inlined frames ({addr2line} cannot be started: {exc.strerror})"
        failure = done.describe_failure()
        if failure:
            return {}, f", no inlined frames ({addr2line} {failure}: {_first_line(done.stderr)})"
        found.update(parse_addr2line(done.stdout))
    if not found:
        return {}, ", no inlined frames at the sampled addresses"
    table = {(dso, address): chain for address, chain in found.items() for dso in dsos}
    return table, ", inlined frames from DWARF (addr2line -i)"


def benchmark_process_only(profile: Profile, comm: str) -> Profile:
    """Keep the samples whose root frame (the process's comm) is ``comm``; cut above main.

    ``parse_perf_script(..., keep_process=True)`` puts the comm first. ``perf record`` also
    samples itself before exec ("perf-exec"), which is not the benchmark.
    """
    kept: list[tuple[tuple[str, ...], int]] = []
    for stack, count in profile.stacks.items():
        if stack[0] != comm or len(stack) < 2:
            continue
        frames = stack[1:]
        if "main" in frames:
            frames = frames[frames.index("main"):]
        kept.append((frames, count))
    return Profile.from_samples(kept, source=profile.source)


# ---- harness sampler ---------------------------------------------------------------------------


def _capture_harness(
    binary: Path, benchmark: str, argv: list[str], *, workdir: Path, frequency_hz: int,
    timeout_s: float,
) -> tuple[Profile, list[str], str]:
    folded = workdir / HARNESS_FOLDED
    folded.unlink(missing_ok=True)
    command = [*argv, "--json", "--profile", str(folded), "--profile-hz", str(frequency_hz)]
    done = _run(command, timeout_s, missing=f"cannot start the benchmark binary {binary}: no such file")
    if done.returncode == 100 and "--profile" in done.stderr and "unknown option" in done.stderr:
        raise EvidenceError(
            f"{binary} does not know --profile: rebuild it against perfd's harness "
            "(format 1.1 or later), or use profiler: perf" + done.stderr_section())
    output = _check_benchmark_run(done, benchmark, "the harness sampler", timeout_s)
    try:
        text = folded.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise EvidenceError(f"profiling {benchmark!r}: the harness wrote no profile {folded}: "
                            f"{exc.strerror}") from None
    try:
        profile = parse_folded(text, source="harness")
    except ValueError as exc:
        raise EvidenceError(f"profiling {benchmark!r}: {folded}: {exc}") from None
    return profile, command, _harness_rate_note(output, benchmark, frequency_hz)


def _harness_rate_note(output: HarnessOutput, benchmark: str, frequency_hz: int) -> str:
    """Samples and effective rate: ITIMER_PROF fires at most once per kernel tick."""
    info = output.context.raw.get("profile")
    benches = [b for b in output.benchmarks if b.name == benchmark]
    if not isinstance(info, Mapping) or not benches:
        return f"harness sampler at {frequency_hz} Hz requested"
    b = benches[0]
    seconds = sum(b.samples_ns) * b.iterations_per_sample / 1e9
    n = info.get("samples", 0)
    note = f"harness sampler: {n} samples in {seconds:.2f} s of timed samples"
    if seconds > 0 and isinstance(n, int):
        rate = n / seconds
        note += f" ({rate:.0f} Hz effective, {frequency_hz} Hz requested"
        if rate < 0.8 * frequency_hz:
            note += "; the kernel delivers CPU-time signals at most once per scheduler tick"
        note += ")"
    dropped = info.get("dropped", 0)
    if isinstance(dropped, int) and dropped > 0:
        note += f"; {dropped} samples dropped (buffer full)"
    return note


# ---- shared ------------------------------------------------------------------------------------


def _run(argv: Sequence[str], timeout_s: float, *, missing: str) -> Completed:
    try:
        return run_process(argv, timeout_s=timeout_s, env=c_locale_env())
    except FileNotFoundError:
        raise EvidenceError(missing) from None
    except PermissionError as exc:
        raise EvidenceError(f"cannot start {argv[0]}: {exc.strerror}") from None


def _check_benchmark_run(done: Completed, benchmark: str, how: str, timeout_s: float) -> HarnessOutput:
    """Raise HarnessError if the profiled run failed; return the parsed harness output."""
    where = f"profiling {benchmark!r} with {how}"
    failure = harness_failure(done, timeout_s)
    if failure is None:
        try:
            return parse_harness_json(done.stdout)
        except HarnessError as exc:
            raise HarnessError(f"{where}: {exc}" + done.stderr_section()) from None
    raise HarnessError(f"{where}: the benchmark {failure}" + done.stderr_section())


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
