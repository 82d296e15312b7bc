"""MachineLock and file_lock in one process: re-entry, the holder note, waiting, threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from perfd.errors import MachineBusyError
from perfd.events import MachineAcquired, MachineWaiting
from perfd.locks import LOCK_PATH_ENV, MachineLock, default_machine_lock_path, file_lock


def test_holder_note_is_written_updated_and_cleared(tmp_path: Path) -> None:
    lock = MachineLock(tmp_path / "m.lock")
    assert lock.holder() is None
    with lock.hold("a run of suite x"):
        assert lock.held
        assert lock.holder().what == "a run of suite x"
        lock.describe("run 7 of suite x")
        assert lock.holder().what == "run 7 of suite x"
        with lock.hold("profiling x / y"):  # re-entrant: the nested holder is shown
            assert lock.holder().what == "profiling x / y"
        assert lock.holder().what == "run 7 of suite x"
    assert not lock.held
    assert lock.holder() is None


def test_a_second_lock_on_the_same_file_waits_then_reports(tmp_path: Path) -> None:
    path = tmp_path / "m.lock"
    events = []
    holder = MachineLock(path)
    waiter = MachineLock(path, events=events.append, poll_s=0.01)
    release = threading.Event()
    got = threading.Event()

    def hold() -> None:
        with holder.hold("run 3 of suite a"):
            got.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    got.wait(5)
    with pytest.raises(MachineBusyError, match=r"run 3 of suite a \(pid \d+\) holds it"), \
            waiter.hold("b", wait=False):
        pass
    timer = threading.Timer(0.2, release.set)
    timer.start()
    with waiter.hold("run 4 of suite b"):
        assert waiter.holder().what == "run 4 of suite b"
    t.join()
    assert isinstance(events[0], MachineWaiting) and events[0].holder == "run 3 of suite a"
    assert events[0].message.startswith("waiting for the machine: run 3 of suite a (pid ")
    assert isinstance(events[1], MachineAcquired) and events[1].waited_s > 0.1
    assert len(events) == 2  # one message while waiting, not one per poll


def test_file_lock_serialises_threads(tmp_path: Path) -> None:
    order: list[str] = []

    def work(name: str) -> None:
        with file_lock(tmp_path / "build.lock"):
            order.append(f"{name} in")
            time.sleep(0.05)
            order.append(f"{name} out")

    threads = [threading.Thread(target=work, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


def test_default_path_prefers_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_PATH_ENV, str(tmp_path / "x.lock"))
    assert default_machine_lock_path(tmp_path / "data") == tmp_path / "x.lock"
    monkeypatch.delenv(LOCK_PATH_ENV)
    assert default_machine_lock_path(tmp_path / "data").name in ("perfd-machine.lock", "machine.lock")
