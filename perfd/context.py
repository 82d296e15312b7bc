"""Services: what every flow works with, built once per process by the CLI or the daemon.

One config snapshot, one store, one repository cache (each mirror fetched once per process,
under a lock shared with other perfd processes), one builder (each build directory locked
while it is built or cleaned up), the machine lock, the host probe, a clock and the event
sink. Tests build their own Services with fakes (STYLE rule 7) instead of patching globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from perfd.config import ConfigSet, SuiteConfig
from perfd.events import EventSink, discard
from perfd.locks import MachineLock, default_machine_lock_path
from perfd.runner.build import Builder
from perfd.runner.fingerprint import HostProbe
from perfd.runner.git import Repository, RepositoryCache
from perfd.store import ResultStore


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Services:
    config: ConfigSet
    store: ResultStore
    repos: RepositoryCache
    builder: Builder
    machine: MachineLock
    probe: HostProbe = field(default_factory=HostProbe)
    events: EventSink = discard
    clock: Callable[[], datetime] = utc_now

    @classmethod
    def create(cls, config: ConfigSet, *, db_url: str | None = None, store: ResultStore | None = None,
               events: EventSink = discard, wait_for_machine: bool = True,
               machine_lock_path: Path | None = None, probe: HostProbe | None = None,
               clock: Callable[[], datetime] = utc_now) -> Services:
        """Services for one config snapshot; the store from db_url or the config's storage
        URL unless one is handed in. Raises StorageError."""
        data_dir = config.data_dir
        return cls(
            config=config,
            store=store or ResultStore.open(db_url or config.storage_url, clock=clock),
            repos=RepositoryCache(data_dir / "mirrors"),
            builder=Builder(data_dir / "builds"),
            machine=MachineLock(machine_lock_path or default_machine_lock_path(data_dir),
                                wait=wait_for_machine, events=events),
            probe=probe or HostProbe(),
            events=events,
            clock=clock,
        )

    @property
    def machine_id(self) -> str:
        return self.config.machine_id

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def suite(self, name_or_path: str | Path) -> SuiteConfig:
        """A suite of the snapshot by name, or one YAML file by path. Raises ConfigError."""
        return self.config.suite(name_or_path)

    def repository(self, suite: SuiteConfig, override: str | None = None) -> Repository:
        """The suite's repository (or ``override``), opened once per process."""
        return self.repos.get(override or suite.repository_location())

    def close(self) -> None:
        self.store.close()
