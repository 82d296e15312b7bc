"""A real `perfd daemon` process for tests: started with a NOTIFY_SOCKET the test listens on,
talked to over its real HTTP port, stopped with real signals."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TOKEN = "test-token-0123456789"
SECRET = "test-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60.0,
             every_s: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


class DaemonProcess:
    """``perfd daemon`` in ``workdir`` (its perfd.yaml), with the test token and secret."""

    def __init__(self, workdir: Path, port: int, *, extra_env: dict[str, str] | None = None,
                 stop_timeout_s: float = 10.0) -> None:
        self.workdir = workdir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.notify_path = workdir / f"notify-{time.monotonic_ns()}.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(0.2)
        self.messages: list[str] = []
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), "PERFD_API_TOKEN": TOKEN,
               "PERFD_WEBHOOK_SECRET": SECRET, "PERFD_MACHINE_LOCK": str(workdir / "machine.lock"),
               "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        env.pop("PERFD_CONFIG", None)
        # beside the work directory: a log inside it would wake the config watcher per line
        self.log_path = workdir.parent / f"daemon-{workdir.name}-{time.monotonic_ns()}.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "perfd", "daemon", "--stop-timeout", str(stop_timeout_s)],
            cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def receive(self) -> list[str]:
        """Every notify datagram so far (each is newline-separated assignments)."""
        while self.notify.fileno() != -1:
            try:
                data = self.notify.recv(4096)
            except (TimeoutError, BlockingIOError):
                return self.messages
            self.messages += data.decode().splitlines()
        return self.messages

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited {self.proc.returncode}:\n{self.output()}")
            return "READY=1" in self.receive()

        wait_for("READY=1 from the daemon", ready, timeout_s, every_s=0.0)

    def request(self, method: str, path: str, body: Any = None, *,
                headers: dict[str, str] | None = None, token: str | None = TOKEN,
                raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if token and method != "GET":
            request.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload, got = response.status, response.read(), dict(response.headers)
                got = {k.lower(): v for k, v in got.items()}
        except urllib.error.HTTPError as exc:
            status, payload, got = exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}
        text = payload.decode()
        if got.get("content-type", "").startswith("application/json") and text:
            return status, json.loads(text), got
        return status, text, got

    def get(self, path: str, **kw: Any) -> Any:
        status, payload, _ = self.request("GET", path, **kw)
        assert status == 200, f"GET {path}: {status} {payload}"
        return payload

    def webhook(self, payload: dict[str, Any], *, secret: str | None = SECRET,
                event: str = "push") -> tuple[int, Any]:
        raw = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "Content-Type": "application/json"}
        if secret is not None:
            headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(
                secret.encode(), raw, hashlib.sha256).hexdigest()
        status, body, _ = self.request("POST", "/api/v1/hooks/github", raw=raw, headers=headers,
                                       token=None)
        return status, body

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/jobs?limit=500")["items"])

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"the daemon did not stop on {sig}:\n{self.output()}") from None
        self.receive()
        self.notify.close()
        self.notify_path.unlink(missing_ok=True)
        self.log.close()
        return self.proc.returncode

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.notify.close()
        self.notify_path.unlink(missing_ok=True)
        self.log.close()


def daemon_file(workdir: Path, port: int, **sections: str) -> Path:
    """A perfd.yaml in ``workdir``: state under state/, suites under suites/, and ``sections``
    (YAML text per top-level key, e.g. jobs="{lease_s: 3, heartbeat_s: 1}")."""
    lines = ["machine_id: daemon-test", "data_dir: state", "suites_dir: suites",
             f'http: {{listen: "127.0.0.1:{port}"}}']
    lines += [f"{key}: {value}" for key, value in sections.items()]
    path = workdir / "perfd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def daemon_workdir(work: Path, monkeypatch: pytest.MonkeyPatch, *, suites: dict[str, str] | None = None,
                   **sections: str) -> int:
    """Make ``work`` a daemon's working directory and the test's: ``suites/<name>.yaml`` for each
    suite text, a daemon file (:func:`daemon_file`, ``sections`` as there) on a free port, and
    the test process inside it (its cwd, no $PERFD_CONFIG, a machine lock of its own, so it
    never waits for another test's). Returns the port."""
    (work / "suites").mkdir(parents=True, exist_ok=True)
    for name, text in (suites or {}).items():
        (work / "suites" / f"{name}.yaml").write_text(text)
    monkeypatch.chdir(work)
    monkeypatch.delenv("PERFD_CONFIG", raising=False)
    monkeypatch.setenv("PERFD_MACHINE_LOCK", str(work / "machine.lock"))
    port = free_port()
    daemon_file(work, port, **sections)
    return port
