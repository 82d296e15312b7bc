"""`perfd daemon`: the long-running service of a benchmark machine.

Threads: the main loop (signals, reloads, systemd watchdog pings, the /healthz tick), the
worker (one job at a time), the HTTP server (waitress), APScheduler's scheduler (cron tiers
and polling; it only enqueues) and the config-file watcher (watchdog).

- Start: load and validate the whole ConfigSet (an invalid one: exit 2, nothing started);
  mark runs a previous daemon left RUNNING as interrupted; bind HTTP; tell systemd READY=1
  only once /healthz answers; build the schedules; catch up missed nightly/weekly tiers;
  start the worker.
- Reload (SIGHUP, or a changed file under the config directory or suites directory,
  debounced): load and validate the new ConfigSet whole; if it is invalid, the running one
  stays, the error (file:line) is logged and ``perfd_config_reload_success`` shows 0. A good
  one replaces the snapshot and the schedules; a job already running finishes on the
  snapshot it started with. The storage URL, machine id and HTTP address take effect at the
  next restart (the store, the job leases and the bound port belong to the process).
- Stop (SIGTERM, SIGINT): STOPPING=1; no new job is claimed; the job in hand gets
  ``stop_timeout_s`` to finish, else it is put back in the queue and the process exits —
  its benchmark processes die with it (they are started with PR_SET_PDEATHSIG) and its run,
  left RUNNING, is marked interrupted at the next start. kill -9 is the same without the
  grace: the job's lease expires and it is claimed again.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import waitress
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from perfd import __version__
from perfd.config import ConfigSet, load_config_set
from perfd.context import Services
from perfd.daemon import notify
from perfd.daemon.http import Api, Health
from perfd.daemon.metrics import DaemonStatus, PerfdCollector, metrics_registry, render
from perfd.daemon.triggers import Poller, Schedules, catch_up, enqueue_tier
from perfd.daemon.worker import Worker
from perfd.errors import ConfigError, PerfdError
from perfd.events import Event
from perfd.flows.run import recover_interrupted

log = logging.getLogger("perfd.daemon")
# A burst of file events (an editor's save) is read once, this long after the last one.
RELOAD_DEBOUNCE_S = 0.5
TICK_S = 0.25


@dataclass
class _ReloadState:
    success: bool = True
    at: float | None = None  # time.time() of the last reload attempt


def _tell(*states: str) -> None:
    """Tell systemd (when it listens); a socket that fails is logged, never fatal."""
    try:
        notify.notify(*states)
    except BlockingIOError:  # its queue is full: this datagram is lost, the next one may not be
        log.debug("systemd's notify queue is full: %s not sent", ", ".join(states))
    except OSError as exc:
        log.warning("could not notify systemd of %s: %s", ", ".join(states), exc)


class _Changed(FileSystemEventHandler):
    """Any YAML created, modified or moved into place (editors save by rename) asks for a
    reload."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("created", "modified", "moved"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if any(str(p).endswith((".yaml", ".yml")) for p in paths if p):
            self.daemon.request_reload(debounce=True)


class Daemon:
    def __init__(self, config_path: Path | None, *, cwd: Path, stop_timeout_s: float = 30.0,
                 machine_lock_path: Path | None = None) -> None:
        self.config_path = config_path
        self.cwd = cwd
        self.stop_timeout_s = stop_timeout_s
        self.machine_lock_path = machine_lock_path
        config = self._load()  # ConfigError: nothing started
        # The API token and webhook secret are read once and taken out of the environment,
        # which build steps (code of the repository under test) and benchmarks inherit.
        http = config.daemon.http
        self._secrets = {name: os.environ.pop(name) for name in (http.token_env,
                                                                  http.webhook_secret_env)
                         if name in os.environ}
        self._services = Services.create(config, events=self._event,
                                         machine_lock_path=machine_lock_path)
        self.started = time.time()
        self.reload_state = _ReloadState(True, self.started)
        self.health = Health(clock=time.monotonic)
        self.health.last_tick = time.monotonic()
        self.worker = Worker(self.services)
        self.poller = Poller(self.services)
        self.schedules = Schedules(self._run_tier, self._poll)
        collector = PerfdCollector(self._services.store, config.machine_id, self.status)
        self.registry = metrics_registry(collector)
        self.api = Api(self.services, metrics=lambda: render(self.registry), health=self.health,
                       wake=self.worker.wake.set, environ=self._secrets.get)
        self._stop = threading.Event()
        self._reload_at: float | None = None
        self._lock = threading.Lock()
        self.server: waitress.server.BaseWSGIServer | None = None
        self.observer: Observer | None = None  # type: ignore[valid-type]

    # -- what the other threads read

    def services(self) -> Services:
        with self._lock:
            return self._services

    def status(self) -> DaemonStatus:
        return DaemonStatus(started_timestamp=self.started,
                            reload_success=self.reload_state.success,
                            reload_timestamp=self.reload_state.at,
                            poll_failures=dict(self.poller.failures), version=__version__)

    # -- lifecycle

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code."""
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        services = self.services()
        for run_id in recover_interrupted(services):
            log.warning("run %d was left RUNNING by a stopped perfd: marked interrupted", run_id)
        host, port = services.config.daemon.http.address()
        self.server = waitress.create_server(self.api, host=host, port=port, threads=4,
                                             ident="perfd", clear_untrusted_proxy_headers=True)
        threading.Thread(target=self.server.run, name="perfd-http", daemon=True).start()
        bound = f"http://{host}:{self.server.effective_port}"
        self._wait_healthy(bound)
        self.schedules.start()
        self.health.schedules = tuple(self.schedules.apply(services.config))
        self._watch(services.config)
        try:
            catch_up(services, datetime.now(UTC))
        except PerfdError as exc:
            log.error("catch-up of missed tiers: %s", exc)
        worker_stop = threading.Event()
        worker = threading.Thread(target=self.worker.run_forever, args=(worker_stop,),
                                  name="perfd-worker", daemon=True)
        worker.start()
        log.info("perfd %s serving %s (machine %s)", __version__, bound, services.machine_id)
        _tell("READY=1", f"STATUS=serving {bound}")
        self._main_loop()
        _tell("STOPPING=1")
        log.info("stopping: waiting up to %.0f s for the job in hand", self.stop_timeout_s)
        worker_stop.set()
        self.worker.wake.set()
        worker.join(self.stop_timeout_s)
        if worker.is_alive():
            job = self.worker.abandon("the daemon was stopped")
            log.warning("abandoned job %s: back in the queue", job.id if job else "?")
        self._shutdown()
        return 0

    def _main_loop(self) -> None:
        interval = notify.watchdog_interval_s()
        last_ping = 0.0
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            self.health.last_tick = now
            if self._reload_at is not None and now >= self._reload_at:
                self._reload_at = None
                self.reload()
            if interval is not None and now - last_ping >= interval and self.health.alive():
                _tell("WATCHDOG=1")
                last_ping = now

    def _wait_healthy(self, base: str) -> None:
        """READY only once the port answers: ask /healthz until it does (10 s at most)."""
        self.health.last_tick = time.monotonic()
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise PerfdError(f"the HTTP port {base} does not answer: {exc}") from exc
            time.sleep(0.05)

    def _shutdown(self) -> None:
        self.schedules.shutdown()
        if self.observer is not None:
            self.observer.stop()
        if self.server is not None:
            self.server.close()
        self.services().close()
        log.info("stopped")

    # -- reloads

    def request_reload(self, *, debounce: bool = False) -> None:
        self._reload_at = time.monotonic() + (RELOAD_DEBOUNCE_S if debounce else 0.0)

    def reload(self) -> bool:
        """Validate the new config whole and swap it in; keep the old one if it is invalid."""
        _tell("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        self.reload_state.at = time.time()
        try:
            config = self._load()
        except ConfigError as exc:
            self.reload_state.success = False
            log.error("reload refused, the running config stays:\n%s", exc)
            _tell("READY=1", "STATUS=reload refused: invalid config")
            return False
        old = self.services()
        for what in ("storage_url", "machine_id", "http"):
            if getattr(config.daemon, what) != getattr(old.config.daemon, what):
                log.warning("reload: %s changed; it takes effect at the next restart", what)
        fresh = Services.create(config, store=old.store, events=self._event,
                                machine_lock_path=self.machine_lock_path)
        with self._lock:
            self._services = fresh
        self.health.schedules = tuple(self.schedules.apply(config))
        self.reload_state.success = True
        log.info("reloaded: %d suites, %d schedules", len(config.suites),
                 len(config.daemon.schedules))
        _tell("READY=1", "STATUS=reloaded")
        return True

    def _load(self) -> ConfigSet:
        return load_config_set(self.config_path, cwd=self.cwd)

    def _watch(self, config: ConfigSet) -> None:
        dirs = {self.config_path.resolve().parent if self.config_path else self.cwd,
                config.daemon.suites_dir}
        self.observer = Observer()
        handler = _Changed(self)
        for d in dirs:
            if Path(d).is_dir():
                self.observer.schedule(handler, str(d), recursive=False)
        self.observer.daemon = True
        self.observer.start()

    # -- triggers (APScheduler's thread)

    def _run_tier(self, tier: str) -> None:
        try:
            queued = enqueue_tier(self.services(), tier, "schedule")
        except PerfdError as exc:
            log.error("%s tier: %s", tier, exc)
            return
        log.info("%s tier: %d job(s) queued", tier, sum(q.created for q in queued))
        self.worker.wake.set()

    def _poll(self) -> None:
        queued = self.poller.poll()
        if any(q.created for q in queued):
            log.info("poll: %d new job(s)", sum(q.created for q in queued))
            self.worker.wake.set()

    # -- signals and events

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.request_reload()

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _event(self, event: Event) -> None:
        log.info("%s", event.message)


def main(config_path: Path | None, *, cwd: Path, stop_timeout_s: float) -> int:
    """`perfd daemon`: log to stderr (journald adds the time), serve, return an exit code."""
    faulthandler.enable()  # every thread's stack in the journal if the watchdog aborts us
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("waitress").setLevel(logging.WARNING)
    return Daemon(config_path, cwd=cwd, stop_timeout_s=stop_timeout_s).run()
