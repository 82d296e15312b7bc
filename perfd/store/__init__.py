"""SQL storage of benchmark runs: tables, migrations and the ResultStore API."""

from perfd.store.migrations import SCHEMA_VERSION, current_version, upgrade
from perfd.store.store import (
    DEFAULT_BUSY_TIMEOUT_MS,
    ProcessInfo,
    ResultStore,
    RunDetail,
    RunInfo,
    make_engine,
    mask_url,
)

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "SCHEMA_VERSION",
    "ProcessInfo",
    "ResultStore",
    "RunDetail",
    "RunInfo",
    "current_version",
    "make_engine",
    "mask_url",
    "upgrade",
]
