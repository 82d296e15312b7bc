"""A real Prometheus and a real Alertmanager for tests (Debian's `prometheus` and
`prometheus-alertmanager`, which scripts/install-test-deps.sh installs), each on a free
loopback port with its state in a temporary directory, and a webhook receiver that keeps
what Alertmanager delivers."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.daemon_process import free_port, wait_for

MISSING = "{} not found (Debian package {}): run scripts/install-test-deps.sh"


def binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AssertionError(MISSING.format(name, package))
    return found


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


class _Server:
    """A child process answering HTTP on ``port``; its log beside its state directory."""

    def __init__(self, argv: list[str], workdir: Path, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = workdir / "log.txt"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(argv, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(f"{self.base}/-/ready", ready, timeout_s, every_s=0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class Prometheus(_Server):
    """``prometheus`` with ``config`` (a prometheus.yml as a dict; rule files are copied
    next to it under their names)."""

    def __init__(self, workdir: Path, config: dict[str, Any], rule_files: dict[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        for name, text in rule_files.items():
            (workdir / name).write_text(text)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        super().__init__([binary("prometheus", "prometheus"),
                          f"--config.file={workdir / 'prometheus.yml'}",
                          f"--storage.tsdb.path={workdir / 'data'}",
                          f"--web.listen-address=127.0.0.1:{port}"], workdir, port)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar as one item) ``expr`` gives now. Raises
        AssertionError when Prometheus refuses the expression."""
        url = f"{self.base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            body = _get_json(url)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"Prometheus refused {expr!r}: {exc.read().decode()}") from None
        result = body["data"]["result"]
        if body["data"]["resultType"] in ("scalar", "string"):
            return [{"value": result}]
        return list(result)

    def alerts(self) -> list[dict[str, Any]]:
        return list(_get_json(f"{self.base}/api/v1/alerts")["data"]["alerts"])

    def targets_up(self) -> bool:
        active = _get_json(f"{self.base}/api/v1/targets")["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


class Alertmanager(_Server):
    """``prometheus-alertmanager`` with ``config`` (an alertmanager.yml as a dict), alone
    (no cluster)."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        super().__init__([binary("prometheus-alertmanager", "prometheus-alertmanager"),
                          f"--config.file={workdir / 'alertmanager.yml'}",
                          f"--storage.path={workdir / 'data'}",
                          f"--web.listen-address=127.0.0.1:{port}",
                          "--cluster.listen-address="], workdir, port)


class Receiver:
    """An HTTP server keeping every JSON body POSTed to it, by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
