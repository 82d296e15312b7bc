"""Engines and transactions: URLs, SQLite settings, write transactions, read snapshots, and
the mapping of database errors to ``StorageError``.

Every other module of the store gets a ``Connection`` from here: ``write_transaction`` for
changes, ``read_snapshot`` for reads that must agree with each other.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from perfd.errors import StorageError

DEFAULT_BUSY_TIMEOUT_MS = 5000

# Engine execution option carrying the busy timeout, so error messages can say how long
# a locked database was waited for.
BUSY_TIMEOUT_OPTION = "perfd_busy_timeout_ms"

# Connection execution option asking for a write transaction. On SQLite the store's engine
# then starts it with BEGIN IMMEDIATE: the write lock is taken (waiting up to the busy
# timeout) before anything is read, so a read-then-write transaction can never fail
# half-way with "database is locked".
WRITE_TRANSACTION = "perfd_write_transaction"


# ----------------------------------------------------------------------------- URLs


def mask_url(url: str | URL) -> str:
    """The URL as it may be shown to people: password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def sqlite_path(url: URL) -> str | None:
    """File path of a SQLite URL (``file:`` URIs included); None for in-memory."""
    database = url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return database[len("file:") :].split("?", 1)[0] or None
    return database


# ----------------------------------------------------------------------------- engines


def make_engine(url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    """A SQLAlchemy engine for ``url``; for SQLite creates the file's directory and sets
    WAL, busy timeout and foreign keys on every connection. Raises StorageError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"invalid database URL {mask_url(url)}: expected dialect://user:password@host/name "
            "or sqlite:///path/to/file.db"
        ) from None
    if busy_timeout_ms < 0:
        raise ValueError(f"busy_timeout_ms: must be >= 0, got {busy_timeout_ms}")
    is_sqlite = parsed.get_backend_name() == "sqlite"
    path = sqlite_path(parsed) if is_sqlite else None
    is_uri = (parsed.database or "").startswith("file:")  # sqlite:///file:...?uri=true
    if path is not None and not is_uri:
        parent = Path(path).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"database is not writable: {path} (cannot create directory {parent}: "
                f"{exc.strerror or exc})"
            ) from exc
    if parsed.drivername == "postgresql":
        # perfd depends on psycopg 3 (extra "postgres"), not on SQLAlchemy's default psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {"execution_options": {BUSY_TIMEOUT_OPTION: busy_timeout_ms}}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except ImportError as exc:
        raise StorageError(
            f"cannot use database URL {mask_url(parsed)}: its driver is not installed ({exc}); "
            "for PostgreSQL install perfd[postgres]"
        ) from exc
    except ArgumentError as exc:
        raise StorageError(f"cannot use database URL {mask_url(parsed)}: {exc}") from exc
    if is_sqlite:
        _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the driver, decides where transactions begin (the driver's own
        # handling skips DDL and SAVEPOINT); see _on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
                # A long-lived daemon keeps its connections open, so the WAL file is not
                # deleted; after a checkpoint, shrink it instead of keeping a big run's size.
                cursor.execute(f"PRAGMA journal_size_limit = {64 * 2**20}")
            except sqlite3.OperationalError as exc:
                # A read-only database that is not in WAL mode can still be read.
                if "readonly" not in str(exc):
                    raise
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A plain (deferred) BEGIN for reads: in WAL mode its snapshot is taken by the first
        # SELECT and kept until the transaction ends, which is what read_snapshot relies on.
        writing = conn.get_execution_options().get(WRITE_TRANSACTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


# ----------------------------------------------------------------------------- transactions


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside a write transaction: commits on success, rolls back on error."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_TRANSACTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection inside one read-only transaction: every query sees the database as of
    the first one (SQLite WAL: deferred BEGIN; PostgreSQL: REPEATABLE READ, READ ONLY)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # READ COMMITTED, PostgreSQL's default, takes a new snapshot per statement.
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        transaction = conn.begin()
        try:
            yield conn
        finally:
            # Nothing was written: a rollback ends the transaction and releases the snapshot
            # (which holds back SQLite's WAL checkpoints) without any commit-time work.
            transaction.rollback()


# ----------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class DatabaseErrors:
    """Turns SQLAlchemy errors into StorageError messages naming the action and the
    database (password masked) and saying what to check."""

    url: str  # masked
    where: str  # the file for SQLite, else the masked URL
    busy_timeout_ms: int | None

    @classmethod
    def for_engine(cls, engine: Engine) -> DatabaseErrors:
        """The error mapping for ``engine``'s database."""
        url = mask_url(engine.url)
        path = sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
        timeout = engine.get_execution_options().get(BUSY_TIMEOUT_OPTION)
        return cls(url=url, where=path or url, busy_timeout_ms=timeout)

    @contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Re-raise SQLAlchemy errors of the block as StorageError("<action>: <cause>")."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise StorageError(f"{action}: {self.describe(exc)}") from exc

    def describe(self, exc: SQLAlchemyError) -> str:
        """What went wrong with the database, in words people can act on."""
        cause = getattr(exc, "orig", None) or exc
        text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        lowered = text.lower()
        if "locked" in lowered:
            waited = (
                f"waited {self.busy_timeout_ms / 1000:g} s"
                if self.busy_timeout_ms is not None
                else "busy timeout expired"
            )
            return f"database is locked by another process ({waited}): {self.url}"
        if "readonly" in lowered or "read-only" in lowered:
            return f"database is not writable: {self.where}"
        if "unable to open database file" in lowered:
            return (
                f"cannot open database file: {self.where} "
                "(does its directory exist, and may perfd write there?)"
            )
        if isinstance(exc, IntegrityError):
            return f"database refused the data ({text}): {self.url}"
        return f"database error ({text}): {self.url}"
