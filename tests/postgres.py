"""A throwaway PostgreSQL server for the tests, without Docker.

``initdb`` into a temporary directory, a server listening on a Unix socket in that directory
only (no TCP port), a fresh database per test (empty, or a copy of a template made once per
session), stopped and deleted at the end of the session. The server binaries are Debian's
(``/usr/lib/postgresql/<version>/bin``, installed by ``scripts/install-test-deps.sh``);
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user
and its programs run through ``runuser``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

MISSING = "PostgreSQL server binaries not found: run scripts/install-test-deps.sh"
SUPERUSER = "postgres"
PORT = 5432  # only names the socket file: the socket directory is the cluster's own

# A throwaway cluster need not survive a crash: no fsync, no full-page writes, and its files
# in memory where there is a tmpfs (creating a database there takes ~8 ms instead of ~70 ms
# on this disk), so a fresh database per test stays cheap.
SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
MEMORY_DIR = Path("/dev/shm")
MEMORY_NEEDED_BYTES = 1 << 30  # a container's default 64 MB /dev/shm would fill up


def _cluster_parent() -> Path | None:
    """Where the cluster's directory goes: the tmpfs if it is usable and big enough, else
    the default temporary directory (None)."""
    try:
        usable = os.access(MEMORY_DIR, os.W_OK | os.X_OK)
        stat = os.statvfs(MEMORY_DIR)
    except OSError:
        return None
    return MEMORY_DIR if usable and stat.f_bavail * stat.f_frsize >= MEMORY_NEEDED_BYTES else None


def server_bindir() -> Path | None:
    """The newest Debian PostgreSQL server directory that has initdb, None if none."""
    found = [Path(p).parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]

    def version(bindir: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))

    return max(found, key=version, default=None)


class PostgresCluster:
    """One server; after ``start``, ``create_database`` gives the URL of a new database."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # Also the socket directory.
        self.base = Path(tempfile.mkdtemp(prefix="perfd-pg-", dir=_cluster_parent()))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = PORT
        self._names = itertools.count(1)
        self._templates: dict[str, str] = {}
        self._admin: psycopg.Connection | None = None
        # As root, the cluster and its programs belong to the postgres user.
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SUPERUSER)
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self._as_owner = ["runuser", "-u", SUPERUSER, "--"]

    def start(self) -> None:
        """initdb and start the server (waiting until it accepts connections). Raises
        RuntimeError with the server's log when either fails."""
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        options = f"-k {self.base} -p {self.port} -c listen_addresses='' {SERVER_OPTIONS}"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.log), "-w", "start")
        self._admin = psycopg.connect(host=str(self.base), port=self.port, user=SUPERUSER,
                                      dbname="postgres", autocommit=True)

    def create_database(self, *, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (see ``template``), made the way
        ``createdb`` makes one but through the open admin connection (no process per test);
        returns its SQLAlchemy URL."""
        assert self._admin is not None, "start() the cluster first"
        name = f"perfd_test_{next(self._names)}"
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template or "template1")
        )
        self._admin.execute(query)
        return self.url(name)

    def template(self, key: str, fill: Callable[[str], None]) -> str:
        """The name of a database made once per session by ``fill(url)``, which must close
        its connections; ``create_database(template=...)`` copies it (no connection may be
        open to it meanwhile)."""
        if key not in self._templates:
            url = self.create_database()
            fill(url)
            self._templates[key] = self.database_name(url)
        return self._templates[key]

    def url(self, name: str) -> str:
        """The SQLAlchemy URL of database ``name`` (over the Unix socket)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{name}?host={self.base}&port={self.port}"

    @staticmethod
    def database_name(url: str) -> str:
        return url.split("@/", 1)[1].split("?", 1)[0]

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``create_database``, closing connections a test left open."""
        assert self._admin is not None
        self._admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(self.database_name(url))
        ))

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the cluster's directory."""
        try:
            if self._admin is not None:
                self._admin.close()
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                          "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as_owner, *command], capture_output=True, text=True,
                              cwd=self.base)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{Path(command[0]).name} failed (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}{log}"
            )
