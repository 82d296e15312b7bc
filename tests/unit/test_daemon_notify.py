"""sd_notify over a real AF_UNIX datagram socket, and the watchdog interval."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from perfd.daemon.notify import notify, watchdog_interval_s


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(5)
    with sock:
        yield sock


def test_ready_reaches_a_path_socket(receiver: socket.socket, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    receiver.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))

    assert notify("READY=1") is True
    assert receiver.recv(4096) == b"READY=1"


def test_abstract_address(receiver: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"perfd-test-{uuid.uuid4().hex}"
    receiver.bind("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)

    assert notify("STATUS=measuring core", "WATCHDOG=1") is True
    assert receiver.recv(4096) == b"STATUS=measuring core\nWATCHDOG=1"


def test_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    assert notify("READY=1") is False
    assert notify("READY=1", environ={"NOTIFY_SOCKET": ""}) is False


def test_gone_socket_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "missing")})


@pytest.mark.parametrize("state", ["READY", "STATUS=two\nlines"])
def test_malformed_state(state: str) -> None:
    with pytest.raises(ValueError, match="one KEY=VALUE line"):
        notify(state, environ={})


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")

    assert watchdog_interval_s() == 1.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}) == 1.0


@pytest.mark.parametrize("environ", [
    {},
    {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)},  # a child inherited it
    {"WATCHDOG_USEC": "0"},
    {"WATCHDOG_USEC": "sixty"},
])
def test_no_watchdog(environ: dict[str, str]) -> None:
    assert watchdog_interval_s(environ) is None
