"""Fingerprint the machine a run happens on (kernel, CPU, governor, boost, SMT, isolation...).

The roots are passed in so tests can hand over a fixture tree instead of the real /sys.
A value that cannot be read is None ("unknown here"), never a guess.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from perfd.model import EnvFingerprint


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def compiler_version(cc: str = "cc") -> str | None:
    """First line of `cc --version`, or None if there is no such compiler."""
    try:
        out = subprocess.run(
            [cc, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.stdout.strip().splitlines()
    return first[0] if out.returncode == 0 and first else None


def cpu_model(proc_root: Path = Path("/proc")) -> str | None:
    """The CPU's model name from cpuinfo, None when it does not say."""
    for line in (_read(proc_root / "cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model"):
            return value.strip()
    return None


class HostProbe:
    def __init__(
        self,
        sys_root: Path = Path("/sys"),
        proc_root: Path = Path("/proc"),
        compiler: Callable[[], str | None] = compiler_version,
        hostname: Callable[[], str] = socket.gethostname,
    ) -> None:
        self.sys_root = sys_root
        self.proc_root = proc_root
        self._compiler = compiler
        self._hostname = hostname

    def fingerprint(self, cpus: tuple[int, ...] = ()) -> EnvFingerprint:
        """Read the environment; governor is that of the first pinned CPU (or cpu0)."""
        cpu_dir = self.sys_root / "devices/system/cpu"
        governor_cpu = cpus[0] if cpus else 0
        return EnvFingerprint(
            hostname=self._hostname(),
            kernel=_read(self.proc_root / "sys/kernel/osrelease"),
            cpu_model=self._cpu_model(),
            cpu_count=self._cpu_count(),
            governor=_read(cpu_dir / f"cpu{governor_cpu}/cpufreq/scaling_governor"),
            boost=self._boost(cpu_dir),
            smt=_flag(_read(cpu_dir / "smt/active")),
            isolated_cpus=_read(cpu_dir / "isolated"),
            nohz_full=_read(cpu_dir / "nohz_full"),
            compiler=self._compiler(),
            memory_total_bytes=self._memory_total(),
            load_avg_1m=self._load_avg(),
        )

    def cpu_times(self, cpus: tuple[int, ...] = ()) -> tuple[int, int] | None:
        """(steal, total) ticks of /proc/stat so far, summed over ``cpus`` (all CPUs when
        empty); None where /proc/stat cannot be read. Two readings give the share of the
        CPUs' time the hypervisor took between them."""
        text = _read(self.proc_root / "stat")
        if not text:
            return None
        wanted = {f"cpu{c}" for c in cpus} if cpus else {"cpu"}
        steal = total = 0
        found = False
        for line in text.splitlines():
            fields = line.split()
            if not fields or fields[0] not in wanted:
                continue
            ticks = [int(v) for v in fields[1:9] if v.isdigit()]
            if len(ticks) < 8:
                continue
            found = True
            steal += ticks[7]
            total += sum(ticks)
        return (steal, total) if found else None

    def _cpu_model(self) -> str | None:
        return cpu_model(self.proc_root)

    def _cpu_count(self) -> int:
        online = _read(self.sys_root / "devices/system/cpu/online")
        if online:
            count = 0
            for part in online.split(","):
                lo, _, hi = part.partition("-")
                count += int(hi) - int(lo) + 1 if hi else 1
            return count
        return os.cpu_count() or 1

    def _boost(self, cpu_dir: Path) -> bool | None:
        # acpi-cpufreq / amd-pstate expose "boost" (1 = on); intel_pstate exposes "no_turbo".
        boost = _flag(_read(cpu_dir / "cpufreq/boost"))
        if boost is not None:
            return boost
        no_turbo = _flag(_read(cpu_dir / "intel_pstate/no_turbo"))
        return None if no_turbo is None else not no_turbo

    def _memory_total(self) -> int | None:
        text = _read(self.proc_root / "meminfo") or ""
        for line in text.splitlines():
            if line.startswith("MemTotal:"):
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    return int(parts[1]) * 1024
        return None

    def _load_avg(self) -> float | None:
        text = _read(self.proc_root / "loadavg")
        try:
            return float(text.split()[0]) if text else None
        except ValueError:
            return None


def _flag(text: str | None) -> bool | None:
    if text in ("1", "on"):
        return True
    if text in ("0", "off", "forceoff", "notsupported", "notimplemented"):
        return False
    return None
