"""SQL storage of benchmark runs and alerts: tables, migrations and the ResultStore API."""

from perfd.store.alerts import (
    ACTIVE_STATES,
    ALERT_KINDS,
    ALERT_STATES,
    CONFIDENCES,
    TERMINAL_STATES,
    Alert,
    AlertDraft,
    AlertEvent,
)
from perfd.store.migrations import SCHEMA_VERSION, current_version, upgrade
from perfd.store.series import SeriesKey, SeriesPoint
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
    "ACTIVE_STATES",
    "ALERT_KINDS",
    "ALERT_STATES",
    "CONFIDENCES",
    "DEFAULT_BUSY_TIMEOUT_MS",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "Alert",
    "AlertDraft",
    "AlertEvent",
    "ProcessInfo",
    "ResultStore",
    "RunDetail",
    "RunInfo",
    "SeriesKey",
    "SeriesPoint",
    "current_version",
    "make_engine",
    "mask_url",
    "upgrade",
]
