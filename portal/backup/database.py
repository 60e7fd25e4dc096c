"""The database part of a set: one snapshot, and its restore into an empty database.

- SQLite: the online backup API (``sqlite3.Connection.backup``) copies every page in one
  step under one read transaction; in WAL mode writers go on meanwhile and the copy is the
  database as of that transaction's start.
- PostgreSQL: a REPEATABLE READ transaction exports its snapshot (``pg_export_snapshot``);
  the registry is read in that transaction and ``pg_dump --snapshot`` dumps exactly the same
  state, in the custom format. ``pg_restore --single-transaction`` loads it into an empty
  database: all or nothing.

pg_dump must be of the server's major version: an older one refuses a newer server, and a
newer one writes a dump that its own pg_restore may not load into the older server (it
emits settings the older server does not know). The same goes for pg_restore and the
target server. ``--pg-bin`` names the directory of the right client tools.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from portal.db import make_engine


class DatabaseError(Exception):
    """The database cannot be backed up or restored as asked; the message says why and what to do."""


def kind(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    raise DatabaseError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise DatabaseError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


# ---------------------------------------------------------------- SQLite

def sqlite_snapshot(url: str, dest: Path) -> None:
    """Copy the live database to ``dest`` (which must not exist) in one consistent step."""
    path = sqlite_path(url)
    if not path.is_file():
        raise DatabaseError(f"{path}: no such database")
    # Read-write like the portal's own connections (a read-only one could not use the WAL
    # index while no other connection has it open); it only reads.
    src = sqlite3.connect(path, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # pages=-1: every page in one step, one read transaction
            # A self-contained file: no -wal beside it when it is read or restored.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    os.chmod(dest, 0o600)


@contextlib.contextmanager
def sqlite_reader(path: Path) -> Iterator[Connection]:
    """A read-only connection to a snapshot file."""
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
            conn.rollback()
    finally:
        engine.dispose()


def sqlite_is_empty(url: str) -> bool:
    path = sqlite_path(url)
    if not path.exists() or path.stat().st_size == 0:
        return True
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 0
    finally:
        con.close()


def sqlite_integrity(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------- PostgreSQL

def tool(name: str, pg_bin: str | None) -> str:
    found = shutil.which(name, path=pg_bin) if pg_bin else shutil.which(name)
    if not found:
        where = f" in {pg_bin}" if pg_bin else " on PATH"
        raise DatabaseError(f"{name} not found{where}: install the PostgreSQL client tools of the server's "
                            "major version (e.g. apt install postgresql-client-15) or pass --pg-bin DIR")
    return found


def tool_version(binary: str) -> tuple[str, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    m = re.search(r"(\d+)(?:\.(\d+))?", out)
    if not m:
        raise DatabaseError(f"cannot tell the version of {binary}: {out.strip()!r}")
    return m.group(0), int(m.group(1))


def server_major(conn: Connection) -> int:
    return int(conn.exec_driver_sql("SHOW server_version_num").scalar_one()) // 10000


def check_same_major(binary: str, server: int) -> str:
    version, major = tool_version(binary)
    name = Path(binary).name
    if major != server:
        raise DatabaseError(
            f"{name} {version} is not of the server's major version {server}: "
            + (f"{name} refuses a newer server" if major < server else
               f"a newer {name} emits settings a PostgreSQL {server} server may not know")
            + f"; install the PostgreSQL {server} client tools and pass --pg-bin /usr/lib/postgresql/{server}/bin")
    return version


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password (it goes in the environment, never on a command line)."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return u.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


@contextlib.contextmanager
def pg_snapshot(url: str) -> Iterator[tuple[Connection, str]]:
    """A read-only REPEATABLE READ transaction and the name of its exported snapshot: what is
    read on the connection and what ``pg_dump`` dumps are the same state, as long as the
    transaction stays open (until the block ends)."""
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            name = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            yield conn, name
            conn.rollback()
    finally:
        engine.dispose()


def pg_dump(url: str, snapshot: str, dest: Path, *, pg_bin: str | None) -> None:
    binary = tool("pg_dump", pg_bin)
    uri, env = _libpq(url)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    r = subprocess.run([binary, "--format=custom", f"--snapshot={snapshot}", f"--file={dest}", f"--dbname={uri}"],
                       env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise DatabaseError(f"pg_dump failed: {r.stderr.strip()[-2000:]}")


def pg_is_empty(conn: Connection) -> bool:
    return conn.exec_driver_sql(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')").scalar_one() == 0


def pg_restore(url: str, archive: Path, *, pg_bin: str | None) -> None:
    """Load ``archive`` into the (empty) database at ``url`` in one transaction. Objects
    belong to the restoring user (``--no-owner``): the target may use another role."""
    binary = tool("pg_restore", pg_bin)
    uri, env = _libpq(url)
    r = subprocess.run([binary, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
                        f"--dbname={uri}", str(archive)], env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise DatabaseError(f"pg_restore failed (nothing was restored): {r.stderr.strip()[-2000:]}")
