"""Locks across processes: the machine lock and per-directory file locks.

Both are ``flock(2)`` locks on a file. The kernel drops a flock when the last descriptor of
its holder closes, which includes a holder killed with SIGKILL, so a dead process can never
leave a lock held and there is no stale-lock cleanup to get wrong.

The **machine lock** makes "two benchmarks never run at once on one machine" true across
every perfd process (CLI, daemon, accuracy benchmarks): whoever builds or runs a harness
holds it. Its file also says who holds it (pid and what it is doing), so a second caller
can tell the person why it waits. It is re-entrant within a process, so a flow that holds it
can call another flow that takes it too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from perfd.errors import MachineBusyError, StorageError
from perfd.events import Event, EventSink, MachineAcquired, MachineWaiting, discard

LOCK_PATH_ENV = "PERFD_MACHINE_LOCK"
# /run/lock is a machine-wide tmpfs (mode 1777) on Debian and systemd hosts: every perfd on
# the machine, whatever its data dir, meets there.
SYSTEM_LOCK_PATH = Path("/run/lock/perfd-machine.lock")
POLL_S = 0.2


def default_machine_lock_path(data_dir: Path) -> Path:
    """$PERFD_MACHINE_LOCK, else /run/lock/perfd-machine.lock, else <data_dir>/machine.lock."""
    if os.environ.get(LOCK_PATH_ENV):
        return Path(os.environ[LOCK_PATH_ENV])
    if SYSTEM_LOCK_PATH.parent.is_dir() and os.access(SYSTEM_LOCK_PATH.parent, os.W_OK):
        return SYSTEM_LOCK_PATH
    return data_dir / "machine.lock"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds the machine, as its lock file says."""

    pid: int | None
    what: str
    since: float | None = None


def _open_lock_file(path: Path) -> tuple[int, bool]:
    """(descriptor, writable) of the lock file, created world-writable so any user's perfd
    can take the lock (flock works on a read-only descriptor too)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the directory of lock file {path}: {exc}") from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except PermissionError:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
        except OSError as exc:
            raise StorageError(f"cannot open lock file {path}: {exc}") from None
    except OSError as exc:
        raise StorageError(f"cannot open lock file {path}: {exc}") from None
    with contextlib.suppress(OSError):  # someone else's file: usable as it is
        os.fchmod(fd, 0o666)
    return fd, True


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


class MachineLock:
    """One benchmarking process group at a time on this machine (see the module docstring)."""

    def __init__(self, path: Path, *, wait: bool = True, events: EventSink = discard,
                 poll_s: float = POLL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.wait = wait
        self._events = events
        self._poll_s = poll_s
        self._clock = clock
        self._mutex = threading.RLock()  # threads of this process queue here, not on flock
        self._fd: int | None = None
        self._writable = False
        self._depth = 0
        self._what: list[str] = []

    def holder(self) -> Holder | None:
        """What the lock file says about its holder (None when it says nothing readable)."""
        try:
            data = json.loads(self.path.read_text() or "null")
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        pid = data.get("pid")
        since = data.get("since")
        return Holder(pid if isinstance(pid, int) else None, str(data.get("what") or "another perfd"),
                      since if isinstance(since, (int, float)) else None)

    @contextmanager
    def hold(self, what: str, *, wait: bool | None = None) -> Iterator[MachineLock]:
        """Hold the machine while the block runs; ``what`` is shown to anyone who waits.

        Waits (reporting MachineWaiting once) unless ``wait`` (default: the lock's own
        setting) is False, then raises MachineBusyError naming the holder."""
        wait = self.wait if wait is None else wait
        if not self._mutex.acquire(blocking=wait):
            raise MachineBusyError("the machine is busy with another benchmark of this process")
        try:
            if self._depth == 0:
                self._acquire(what, wait)
            else:
                self._write_holder(what)
            self._depth += 1
            self._what.append(what)
            try:
                yield self
            finally:
                self._what.pop()
                self._depth -= 1
                if self._depth == 0:
                    self._release()
                else:
                    self._write_holder(self._what[-1])
        finally:
            self._mutex.release()

    def describe(self, what: str) -> None:
        """Say more precisely what the holder is doing (e.g. once the run id is known)."""
        with self._mutex:
            if self._depth and self._what:
                self._what[-1] = what
                self._write_holder(what)

    @property
    def held(self) -> bool:
        return self._depth > 0

    def _acquire(self, what: str, wait: bool) -> None:
        fd, self._writable = _open_lock_file(self.path)
        started = self._clock()
        waited = False
        try:
            while not _try_flock(fd):
                holder = self.holder() or Holder(None, "another perfd process")
                if not wait:
                    pid = f" (pid {holder.pid})" if holder.pid else ""
                    raise MachineBusyError(
                        f"the machine is busy: {holder.what}{pid} holds it ({self.path}); "
                        "run again without --no-wait to wait for it")
                if not waited:
                    self._events(MachineWaiting(holder.what, holder.pid))
                    waited = True
                time.sleep(self._poll_s)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if waited:
            self._events(MachineAcquired(self._clock() - started))
        self._write_holder(what)

    def _write_holder(self, what: str) -> None:
        if self._fd is None or not self._writable:
            return
        text = json.dumps({"pid": os.getpid(), "what": what, "since": time.time()})
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text.encode(), 0)
        except OSError:
            pass  # the lock itself is held; only the courtesy note could not be written

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._writable:
                os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor drops the flock


def _print_event(event: Event) -> None:
    print(f"perfd: {event.message}", file=sys.stderr, flush=True)


@contextmanager
def holding_machine(what: str, data_dir: Path = Path(".perfd")) -> Iterator[MachineLock]:
    """Hold this machine's lock for a tool outside the CLI (perfd's own benchmarks), waiting
    and saying so on stderr like the CLI does."""
    with MachineLock(default_machine_lock_path(data_dir), events=_print_event).hold(what) as lock:
        yield lock


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive flock on ``path`` (created if needed) for the block; waits for other holders.

    For short critical sections between perfd processes: one build directory, one mirror."""
    fd, _ = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
