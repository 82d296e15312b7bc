"""SQL storage of benchmark runs and alerts: tables, migrations and the ResultStore API.

Modules, one concern each: ``engine`` (URLs, SQLite settings, transactions, read
snapshots, error mapping), ``tables`` and ``migrations`` (the schema and its versions),
``runs``, ``series``, ``alerts``, ``budgets``, ``references`` and ``jobs`` (SQL of their
concern, functions of a Connection), ``reader`` (reads through one snapshot) and ``store`` (the
ResultStore facade). The values they return are defined in ``perfd.records`` and
re-exported here.
"""

from perfd.records import (
    ACTIVE_STATES,
    ALERT_KINDS,
    ALERT_STATES,
    CONFIDENCES,
    JOB_ACTIVE_STATES,
    JOB_KINDS,
    JOB_PRIORITY,
    JOB_STATES,
    TERMINAL_STATES,
    Alert,
    AlertDraft,
    AlertEvent,
    BudgetRecord,
    Job,
    JobDraft,
    LinkMeasure,
    LinkRecord,
    ProcessInfo,
    QueueStats,
    RatioRecord,
    ReferenceRecord,
    RunDetail,
    RunInfo,
    SeriesKey,
    SeriesPoint,
)
from perfd.store.engine import DEFAULT_BUSY_TIMEOUT_MS, make_engine, mask_url
from perfd.store.migrations import SCHEMA_VERSION, current_version, upgrade
from perfd.store.reader import Reader
from perfd.store.store import ResultStore

__all__ = [
    "ACTIVE_STATES",
    "ALERT_KINDS",
    "ALERT_STATES",
    "CONFIDENCES",
    "DEFAULT_BUSY_TIMEOUT_MS",
    "JOB_ACTIVE_STATES",
    "JOB_KINDS",
    "JOB_PRIORITY",
    "JOB_STATES",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "Alert",
    "AlertDraft",
    "AlertEvent",
    "BudgetRecord",
    "Job",
    "JobDraft",
    "LinkMeasure",
    "LinkRecord",
    "ProcessInfo",
    "QueueStats",
    "RatioRecord",
    "Reader",
    "ReferenceRecord",
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
