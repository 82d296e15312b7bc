from pathlib import Path

from perfd.runner.fingerprint import HostProbe


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def probe(tmp_path: Path) -> HostProbe:
    return HostProbe(sys_root=tmp_path / "sys", proc_root=tmp_path / "proc",
                     compiler=lambda: "cc (Debian 12.2.0-14) 12.2.0", hostname=lambda: "bench-01")


def test_reads_a_tuned_machine(tmp_path):
    write(tmp_path, "proc/sys/kernel/osrelease", "6.1.0-26-amd64\n")
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")
    write(tmp_path, "proc/meminfo", "MemTotal:       24576000 kB\n")
    write(tmp_path, "proc/loadavg", "0.15 0.10 0.05 1/200 1234\n")
    write(tmp_path, "sys/devices/system/cpu/online", "0-3\n")
    write(tmp_path, "sys/devices/system/cpu/cpu2/cpufreq/scaling_governor", "performance\n")
    write(tmp_path, "sys/devices/system/cpu/intel_pstate/no_turbo", "1\n")
    write(tmp_path, "sys/devices/system/cpu/smt/active", "0\n")
    write(tmp_path, "sys/devices/system/cpu/isolated", "2-3\n")
    fp = probe(tmp_path).fingerprint(cpus=(2,))
    assert fp.kernel == "6.1.0-26-amd64"
    assert fp.cpu_model == "AMD EPYC 7B13"
    assert fp.cpu_count == 4
    assert fp.governor == "performance"
    assert fp.boost is False
    assert fp.smt is False
    assert fp.isolated_cpus == "2-3"
    assert fp.memory_total_bytes == 24576000 * 1024
    assert fp.load_avg_1m == 0.15


def test_unreadable_values_are_unknown_not_guessed(tmp_path):
    fp = probe(tmp_path).fingerprint()
    assert fp.kernel is None and fp.governor is None and fp.boost is None and fp.smt is None


def test_load_average_does_not_change_the_fingerprint_but_governor_does(tmp_path):
    write(tmp_path, "proc/loadavg", "0.15 0.10 0.05 1/200 1234\n")
    write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n")
    first = probe(tmp_path).fingerprint()
    write(tmp_path, "proc/loadavg", "3.50 0.10 0.05 1/200 1234\n")
    assert probe(tmp_path).fingerprint().fingerprint_hash == first.fingerprint_hash
    write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "powersave\n")
    assert probe(tmp_path).fingerprint().fingerprint_hash != first.fingerprint_hash


STAT = """cpu  100 0 50 1000 5 0 2 40 0 0
cpu0 60 0 30 500 3 0 1 10 0 0
cpu1 40 0 20 500 2 0 1 30 0 0
intr 12345
"""


def test_cpu_times_sum_steal_and_total_ticks_of_the_pinned_cpus(tmp_path):
    write(tmp_path, "proc/stat", STAT)
    p = probe(tmp_path)
    assert p.cpu_times((1,)) == (30, 40 + 20 + 500 + 2 + 1 + 30)
    assert p.cpu_times((0, 1)) == (40, 1197)
    assert p.cpu_times() == (40, 100 + 50 + 1000 + 5 + 2 + 40)
    assert p.cpu_times((7,)) is None  # a CPU /proc/stat does not list
    assert probe(tmp_path / "nothing").cpu_times() is None
