"""Engine, declarative base and the per-request session.

Services only flush; the request handler (or CLI command) commits once at the end.
On SQLite every transaction begins IMMEDIATE so that a read-then-write (the audit chain,
the reference counter) can never act on a stale snapshot.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timezone

from flask import current_app, g, has_request_context, request
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012 - SQLAlchemy's declarative setting


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


log = logging.getLogger(__name__)

# Set by the gunicorn configuration (portal/serving/gunicorn_conf.py) to the number of threads
# of each worker process: every thread may hold one connection at a time, so the pool holds one
# per thread and a few more for a request that opens a second one (/healthz checks the database
# on its own connection). The bound is exact: servers x workers x (size + POOL_OVERFLOW) is the
# most a deployment opens, which must fit PostgreSQL's max_connections.
POOL_SIZE_VARIABLE = "PORTAL_DB_POOL_SIZE"
POOL_OVERFLOW = 4
# A thread that finds every connection taken waits this long, then the request answers 503.
POOL_TIMEOUT_SECONDS = 10


def _pool_options(url: str) -> dict:
    raw = os.environ.get(POOL_SIZE_VARIABLE, "").strip()
    if not raw or ":memory:" in url or url == "sqlite://":
        return {}
    try:
        size = int(raw)
    except ValueError:
        raise ValueError(f"{POOL_SIZE_VARIABLE} must be a whole number, not {raw!r}") from None
    if size <= 0:
        raise ValueError(f"{POOL_SIZE_VARIABLE} must be positive, not {size}")
    return {"pool_size": size, "max_overflow": POOL_OVERFLOW, "pool_timeout": POOL_TIMEOUT_SECONDS}


def make_engine(url: str, **kwargs) -> Engine:
    kwargs = {**_pool_options(url), **kwargs}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE itself.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if ":memory:" not in url and url != "sqlite://":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # A long read (an export) asks for a deferred transaction: in WAL mode it reads a
            # snapshot without holding the write lock that every other request needs.
            if conn.get_execution_options().get("read_only_snapshot"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    # LIFO: a request's second checkout gets back the connection its first one returned a
    # moment ago, which _ping_once_per_request need not ping again.
    if "poolclass" not in kwargs:  # a NullPool (backups, one-off commands) has no order
        kwargs["pool_use_lifo"] = True
    engine = create_engine(url, **kwargs)
    _ping_once_per_request(engine)
    return engine


_PINGED_IN = "portal.db.pinged"  # the request's token, in its WSGI environ


def _ping_once_per_request(engine: Engine) -> None:
    """SQLAlchemy's pre-ping, once per request and connection rather than on every checkout.

    The ping is what lets the first request after a database restart succeed on a pooled
    connection the restart broke (tests/test_db_outage.py): every request still pings the first
    connection it takes. A request that takes one again (the session read is autocommitted and
    hands its connection back, portal.auth.sessions) gets the same connection and skips the
    ping: a restart in between is the database going away during a request, which answers the
    503 page as it always has. Outside a request (CLI, jobs) every checkout pings."""

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy):
        token = request.environ.get(_PINGED_IN) if has_request_context() else None
        if token is not None and record.info.get("pinged_for") is token:
            return
        if has_request_context() and request.environ.pop(_RETRIED_INSTEAD, False):
            # The caller's statement is its own ping (``first_statement_retried``).
            if token is None:
                token = request.environ[_PINGED_IN] = object()
            record.info["pinged_for"] = token
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:
            # The pool drops this connection and checks out (or opens) another one.
            raise sa_exc.DisconnectionError(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
        if token is None and has_request_context():
            token = request.environ[_PINGED_IN] = object()
        record.info["pinged_for"] = token


_RETRIED_INSTEAD = "portal.db.retried_instead_of_pinged"


def first_statement_retried() -> None:
    """The next checkout in this request is not pinged: the caller runs one statement that
    changes nothing and runs it again itself if the connection turns out broken (a database
    restart), which saves the ping's round trip on every signed-in request (the session read,
    portal.auth.sessions). The caller clears it with ``first_statement_done``."""
    request.environ[_RETRIED_INSTEAD] = True


def first_statement_done() -> None:
    request.environ.pop(_RETRIED_INSTEAD, None)


def init_app(app) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)

    @app.teardown_appcontext
    def _close_session(exc):
        s: Session | None = g.pop("db_session", None)
        if s is not None:
            try:
                if exc is not None or s.in_transaction():
                    s.rollback()
                s.close()
            except Exception as e:  # a connection lost with the database is dropped
                if not unavailable(e):
                    raise
                s.invalidate()


def engine() -> Engine:
    return current_app.extensions["db_engine"]


def session() -> Session:
    """The session of the current request or CLI command."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def opened_session() -> Session | None:
    """The current request's session if something opened it, else None (without opening one:
    a request that needs no ORM session, the signed-in floor, builds and closes none)."""
    return g.get("db_session")


def commit() -> None:
    session().commit()


def rollback() -> None:
    session().rollback()


# ---------------------------------------------------------------- the database is away

def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or used right now (down, restarting,
    refusing connections, every pooled connection taken, SQLite's file gone or locked) rather
    than that the request was wrong: the answer is the portal's 503 page, not a 500."""
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def mark_unavailable(exc: BaseException) -> None:
    """Remember for the rest of the request that the database is away, so that nothing else
    (the session cookie's save, the signed-in user's loader) tries it again."""
    if not g.get("database_unavailable"):
        g.database_unavailable = True
        log.warning("database unavailable: %s", str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
