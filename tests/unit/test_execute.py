import random
import signal
import sys
from pathlib import Path

import pytest

from perfd.errors import HarnessError
from perfd.runner.execute import (
    HarnessRunner,
    Measure,
    PlannedProcess,
    ere_escape,
    plan_rounds,
    run_in_turns,
)
from perfd.runner.procs import run_process

FAKE = Path(__file__).parent.parent / "fixtures" / "fake_harness.py"


def measure(name="fake/one", reps=3, timeout_s=10.0, cpus=()):
    return Measure(name, warmup=0, samples=4, min_time_s=0.001, repetitions=reps, cpus=cpus,
                   timeout_s=timeout_s, counters=False)


def runner(mode, **env):
    return HarnessRunner(FAKE, env={"FAKE_HARNESS_MODE": mode, "PATH": "/usr/bin:/bin", **env})


def test_rounds_spread_every_benchmark_over_the_whole_run():
    plan = plan_rounds([measure("a", 3), measure("b", 3), measure("c", 1)], random.Random(1))
    rounds = [[p.benchmark.name for p in plan if p.round_index == r] for r in range(3)]
    assert sorted(rounds[0]) == ["a", "b", "c"]
    assert sorted(rounds[1]) == sorted(rounds[2]) == ["a", "b"]
    assert [p.repetition for p in plan if p.benchmark.name == "a"] == [0, 1, 2]


def test_cpus_rotate_over_repetitions():
    plan = plan_rounds([measure("a", 3, cpus=(2, 3))], random.Random(0))
    assert [p.cpu for p in plan] == [2, 3, 2]


def test_ere_escape():
    assert ere_escape("a.b(c)[d]+") == r"a\.b\(c\)\[d\]\+"
    assert ere_escape("compute/crc32") == "compute/crc32"


def test_ok_process_is_parsed():
    proc, ctx = runner("ok").run_one(PlannedProcess(measure(), 0, 0, None))
    assert proc.samples.samples_ns == (100.0, 101.0, 102.0, 103.0)
    assert ctx.timer_overhead_ns == 20.0
    assert runner("ok").list_benchmarks() == ["fake/one", "fake/two"]


@pytest.mark.parametrize("mode, message", [
    ("crash", "harness was killed by SIGSEGV"),
    ("garbage", "not JSON"),
    ("empty", "printed nothing"),
    ("version2", "version 2.0 is not supported"),
    ("bench_error", "exited with status 1: benchmark 'fake/one' failed inside the harness: setup failed"),
    ("wrong_name", "harness reported other/name"),
])
def test_each_failure_names_its_cause(mode, message):
    with pytest.raises(HarnessError) as err:
        runner(mode).run_one(PlannedProcess(measure(), 1, 1, None))
    assert message in str(err.value)
    assert "benchmark 'fake/one' (process 2 of 3)" in str(err.value)


def test_crash_includes_stderr_tail():
    with pytest.raises(HarnessError, match="about to crash"):
        runner("crash").run_one(PlannedProcess(measure(), 0, 0, None))


def test_hang_is_killed_with_its_process_group():
    with pytest.raises(HarnessError, match=r"timed out after 0.5 s \(per-process timeout\)"):
        runner("hang").run_one(PlannedProcess(measure(timeout_s=0.5), 0, 0, None))


def test_timeout_kills_grandchildren_too(tmp_path):
    # sh forks sleep; killing only sh would leave sleep holding the pipe open.
    done = run_process(["sh", "-c", "sleep 30 & sleep 30"], timeout_s=0.3)
    assert done.timed_out and done.duration_s < 10


def test_missing_binary_is_a_harness_error(tmp_path):
    with pytest.raises(HarnessError, match="cannot start harness"):
        HarnessRunner(tmp_path / "nope").list_benchmarks()


def test_signal_names(tmp_path):
    done = run_process([sys.executable, "-c", f"import os; os.kill(os.getpid(), {signal.SIGABRT})"],
                       timeout_s=10)
    assert done.describe_failure() == "was killed by SIGABRT"


@pytest.mark.parametrize("first, order", [(0, ["0", "50"]), (1, ["50", "0"])])
def test_a_pair_takes_turns_in_the_order_asked(tmp_path, first, order):
    log = tmp_path / "order"
    pair = [runner("ok", FAKE_HARNESS_ORDER_LOG=str(log), FAKE_HARNESS_OFFSET=offset)
            for offset in ("0", "50")]
    results = run_in_turns(pair, PlannedProcess(measure(), 2, 2, None), first=first,
                           labels=("baseline", "current"))
    assert log.read_text().split() == order
    assert [r[0].samples.samples_ns[0] for r in results] == [100.0, 150.0]
    assert all(r[0].repetition == 2 for r in results)


def test_a_pair_whose_side_crashes_names_that_side_and_does_not_wait_for_it():
    # the crashing side holds the first turn: its partner must get EOF and finish alone
    pair = [runner("crash"), runner("ok")]
    with pytest.raises(HarnessError, match=r"process 1 of 3, baseline\): harness was killed by SIGSEGV"):
        run_in_turns(pair, PlannedProcess(measure(timeout_s=20.0), 0, 0, None), first=0,
                     labels=("baseline", "current"))


def test_a_hanging_side_is_killed_at_the_timeout():
    pair = [runner("ok"), runner("hang")]
    with pytest.raises(HarnessError, match=r"current\): harness timed out after 1 s"):
        run_in_turns(pair, PlannedProcess(measure(timeout_s=1.0), 0, 0, None), first=1,
                     labels=("baseline", "current"))
