"""Opening a database: schema versions, migrations, and errors people can act on."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text, update

from perfd.errors import EXIT_STORAGE, StorageError
from perfd.model import RunStart
from perfd.store import SCHEMA_VERSION, ResultStore, current_version, make_engine, upgrade
from perfd.store import tables as t
from perfd.store.migrations import MIGRATIONS


def make_start() -> RunStart:
    return RunStart(
        suite="core",
        commit_sha="c" * 40,
        machine_id="m1",
        config_hash="cfg",
        build_hash="bld",
        started_at=datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        pid=1,
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def set_version(path: Path, value: str) -> None:
    engine = create_engine(sqlite_url(path))
    with engine.begin() as conn:
        conn.execute(update(t.schema_meta).values(value=value))
    engine.dispose()


def describe_schema(engine: Engine) -> dict[str, Any]:
    """Tables, columns, indexes and constraints as plain data, for comparing two schemas."""
    insp = inspect(engine)
    schema: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("primary_key"))
                for c in insp.get_columns(table)
            ],
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
            "fks": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    (fk.get("options") or {}).get("ondelete"),
                )
                for fk in insp.get_foreign_keys(table)
            ),
        }
    return schema


# ---------------------------------------------------------------------------- versions


def test_migrations_are_numbered_in_order() -> None:
    versions = [version for version, _, _ in MIGRATIONS]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert versions[-1] == SCHEMA_VERSION
    assert all(description for _, description, _ in MIGRATIONS)


def test_migrations_build_exactly_the_tables_of_tables_py(tmp_path: Path) -> None:
    migrated = make_engine(sqlite_url(tmp_path / "migrated.db"))
    assert upgrade(migrated) == (0, SCHEMA_VERSION)
    declared = make_engine(sqlite_url(tmp_path / "declared.db"))
    t.metadata.create_all(declared)
    assert describe_schema(migrated) == describe_schema(declared)
    migrated.dispose()
    declared.dispose()


def test_empty_database_is_created_and_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "deep" / "dir" / "perfd.db")
    engine = make_engine(url)
    assert current_version(engine) is None
    engine.dispose()

    store = ResultStore.open(url)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.upgrade() == (SCHEMA_VERSION, SCHEMA_VERSION)
    store.close()
    assert (tmp_path / "deep" / "dir" / "perfd.db").is_file()


def test_empty_database_without_auto_upgrade_asks_for_db_upgrade(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no perfd schema yet: run `perfd db upgrade`"):
        ResultStore.open(sqlite_url(tmp_path / "perfd.db"), auto_upgrade=False)


def test_database_from_a_newer_perfd_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "perfd.db"
    ResultStore.open(sqlite_url(path)).close()
    set_version(path, str(SCHEMA_VERSION + 1))

    with pytest.raises(StorageError) as err:
        ResultStore.open(sqlite_url(path))
    assert f"schema version {SCHEMA_VERSION + 1} > {SCHEMA_VERSION}" in str(err.value)
    assert str(err.value).endswith("upgrade perfd")
    assert err.value.exit_code == EXIT_STORAGE

    store = ResultStore.open(sqlite_url(path), check_schema=False)
    with pytest.raises(StorageError, match="upgrade perfd"):
        store.upgrade()
    store.close()


@pytest.mark.parametrize("auto_upgrade", [True, False])
def test_older_non_empty_database_needs_db_upgrade(tmp_path: Path, auto_upgrade: bool) -> None:
    path = tmp_path / "perfd.db"
    ResultStore.open(sqlite_url(path)).close()
    set_version(path, str(SCHEMA_VERSION - 1))

    with pytest.raises(StorageError) as err:
        ResultStore.open(sqlite_url(path), auto_upgrade=auto_upgrade)
    message = str(err.value)
    assert f"database at schema version {SCHEMA_VERSION - 1}, perfd needs {SCHEMA_VERSION}" in (
        message
    )
    assert "run `perfd db upgrade`" in message


def test_database_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    with pytest.raises(StorageError, match=r"holds tables but no perfd schema \(users\)"):
        ResultStore.open(sqlite_url(path))
    with pytest.raises(StorageError, match="not a perfd database"):
        upgrade(create_engine(sqlite_url(path)))


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    store = ResultStore.open(sqlite_url(tmp_path / "perfd.db"), busy_timeout_ms=1234)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
    store.close()


# ---------------------------------------------------------------------------- errors


def test_directory_that_cannot_be_created_is_reported(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "regular-file"
    not_a_dir.write_text("")
    for path in (not_a_dir / "perfd.db", not_a_dir / "sub" / "perfd.db"):
        with pytest.raises(StorageError, match=f"database is not writable: {path}"):
            ResultStore.open(sqlite_url(path))


def test_read_only_database_can_be_read_but_not_written(tmp_path: Path) -> None:
    path = tmp_path / "perfd.db"
    ResultStore.open(sqlite_url(path)).close()
    url = f"sqlite:///file:{path}?mode=ro&uri=true"

    store = ResultStore.open(url)
    assert store.list_runs() == []
    with pytest.raises(StorageError) as err:
        store.begin_run(make_start())
    assert str(err.value) == (
        f"recording the start of a run: database is not writable: {path}"
    )
    store.close()


def test_read_only_empty_database_cannot_get_a_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with pytest.raises(StorageError, match=f"database is not writable: {path}"):
        ResultStore.open(f"sqlite:///file:{path}?mode=ro&uri=true")


def test_missing_read_only_file_cannot_be_opened(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(StorageError, match=f"cannot open database file: {path}"):
        ResultStore.open(f"sqlite:///file:{path}?mode=ro&uri=true")


def test_locked_database_is_reported_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "perfd.db"
    store = ResultStore.open(sqlite_url(path), busy_timeout_ms=100)
    run_id = store.begin_run(make_start())
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(StorageError) as err:
            store.fail_run(run_id, "boom")
        assert time.monotonic() - started < 3
        assert str(err.value) == (
            f"recording the failure of run {run_id}: database is locked by another process "
            f"(waited 0.1 s): sqlite:///{path}"
        )
        # Readers are not blocked by a writer in WAL mode.
        assert store.get_run(run_id).info.status.value == "RUNNING"
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.fail_run(run_id, "boom")
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "not a url at all://user:s3cret@",
        "nosuchdialect://user:s3cret@db.example.com/perfd",
        "postgresql+nosuchdriver://user:s3cret@db.example.com/perfd",
    ],
)
def test_bad_url_is_reported_with_the_password_masked(url: str) -> None:
    with pytest.raises(StorageError) as err:
        ResultStore.open(url)
    message = str(err.value)
    assert "database URL" in message
    assert "s3cret" not in message
    assert "***" in message


def test_postgresql_errors_mask_the_password() -> None:
    # Without psycopg (an optional extra) the error names the missing driver; with it, the
    # connection to port 1 is refused. Either way the password stays hidden.
    with pytest.raises(StorageError) as err:
        ResultStore.open("postgresql://perfd:s3cret@127.0.0.1:1/perfd")
    message = str(err.value)
    assert "s3cret" not in message
    assert "postgresql+psycopg://perfd:***@127.0.0.1:1/perfd" in message


def test_schema_meta_without_a_version_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "perfd.db"
    ResultStore.open(sqlite_url(path)).close()
    engine = create_engine(sqlite_url(path))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM schema_meta"))
    with pytest.raises(StorageError, match="schema_meta holds no valid schema_version"):
        current_version(engine)
    engine.dispose()
