"""Who is asking, read in one statement at the start of every request with a session cookie.

The session row, its user, the user's organisation, the user's clearance grant in force and the
number of unread notifications come back as one row of plain values: one round trip instead of
six on every signed-in request, and none of the ORM's result processing (bench/profile_floor.py:
that was more than half of the signed-in floor). The user becomes an ORM object only when the
request asks who is signed in (Flask-Login's loader, ``user_for``), built from that row and
placed in the session's identity map as if a query had loaded it: what the row lacks (the
deferred columns) loads on first use, as a deferred column does. Nothing here is cached across
requests except what cannot change (a grant's compartments, see ``portal.access.subject``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, NamedTuple

from flask import g, session
from sqlalchemy import Connection, Engine, Integer, bindparam, literal, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from portal.access.models import Clearance
from portal.access.subject import GRANT_COLUMNS, current_grant_id
from portal.auth.models import User, UserSession
from portal.orgs.models import Organisation


class SessionRow(NamedTuple):
    user_id: int | None
    created_at: datetime
    last_seen_at: datetime
    data: str


# What the principal statement reads of a user and of their organisation: what the policy, the
# page layout and the account page use. The rest (password_changed_at, disabled_at, created_at,
# totp_last_counter, the sealed TOTP secret) is read by the few flows that need it, when they do.
USER_COLUMNS = (User.id, User.email, User.name, User.role, User.organisation_id, User.password_hash,
                User.active, User.locale, User.totp_enabled_at)
ORG_COLUMNS = (Organisation.id, Organisation.name, Organisation.is_government,
               Organisation.facility_clearance_from, Organisation.facility_clearance_until)
_SESSION = slice(0, 4)
_USER = slice(4, 4 + len(USER_COLUMNS))
_ORG = slice(_USER.stop, _USER.stop + len(ORG_COLUMNS))
_GRANT = slice(_ORG.stop, _ORG.stop + len(GRANT_COLUMNS))
_UNREAD = _GRANT.stop
_USER_NAMES = tuple(c.key for c in USER_COLUMNS)
_ORG_NAMES = tuple(c.key for c in ORG_COLUMNS)


@dataclass(frozen=True)
class Principal:
    user_id: int | None  # None: the session has nobody signed in (or its user is disabled)
    grant: tuple | None  # GRANT_COLUMNS of the grant in force, None without one
    unread_notifications: int
    # The user's and the organisation's columns as read, for ``user_for``.
    user_row: tuple | None = field(default=None, compare=False, repr=False)
    org_row: tuple | None = field(default=None, compare=False, repr=False)


# Notifications are the dialogue's, a package above this one: it hands over the correlated
# count of a user's unread notifications when the app starts (portal.dialogue.hooks.init_app),
# called with the users' id column. Without it the principal reads none.
_unread_notifications: Callable[[Any], Any] | None = None


def count_notifications_with(builder: Callable[[Any], Any]) -> None:
    global _unread_notifications
    _unread_notifications = builder
    _statement.cache_clear()
    _driver_form.cache_clear()


@lru_cache(maxsize=1)
def _statement():
    """Built once (the session id is bound at execution): a Core statement, so its rows are
    tuples and nothing is loaded into the ORM session."""
    unread = (_unread_notifications(User.id) if _unread_notifications is not None
              else literal(0, type_=Integer))
    return (select(UserSession.user_id, UserSession.created_at, UserSession.last_seen_at, UserSession.data,
                   *USER_COLUMNS, *ORG_COLUMNS, *GRANT_COLUMNS, unread)
            .outerjoin(User, User.id == UserSession.user_id)
            .outerjoin(Organisation, Organisation.id == User.organisation_id)
            .outerjoin(Clearance, Clearance.id == current_grant_id(User.id))
            .where(UserSession.id == bindparam("session_id")))


def load(conn: Connection, session_id: str) -> tuple[SessionRow, Principal] | None:
    """The session row and its principal, or None for no such session. A disabled user's
    session has no principal user: it is signed out on its very next request."""
    return _principal_of(conn.execute(_statement(), {"session_id": session_id}).first())


class _DriverForm(NamedTuple):
    sql: str
    params: dict
    processors: tuple  # (column index, SQLAlchemy's result processor) for the columns that have one


@lru_cache(maxsize=4)
def _driver_form(dialect) -> _DriverForm:
    """The statement as SQLAlchemy compiles it for ``dialect`` (the text it would send, its
    constant parameters) and each column's result processor, the ones SQLAlchemy applies. The
    processors are asked for without the driver's column type, which the principal's columns
    (integers, text, booleans, dates and UTC times) do not need."""
    statement = _statement()
    compiled = statement.compile(dialect=dialect)
    processors = ((i, c.type.dialect_impl(dialect).result_processor(dialect, None))
                  for i, c in enumerate(statement.selected_columns))
    return _DriverForm(compiled.string, dict(compiled.params), tuple((i, p) for i, p in processors if p is not None))


class DriverReadFailed(Exception):
    """The driver failed the read on a connection it had (a database restart broke it): that
    connection is dropped, and the caller reads again through SQLAlchemy."""


def load_autocommitted(engine: Engine, session_id: str) -> tuple[SessionRow, Principal] | None:
    """``load`` on a pooled PostgreSQL connection of its own in autocommit, the statement sent
    through the driver (psycopg): SQLAlchemy's execution around the same text, its Connection, its
    autocommit option and its result object, cost twice the driver's CPU on the one statement
    every signed-in request runs (bench/profile_floor.py --plain: 164 against 69 µs), and what
    comes back is the same row: the same compiled text, parameters and result processors.

    No connection to be had (the database away) raises SQLAlchemy's error, as its own checkout
    would, for the portal's outage handling; a driver error on the connection it had raises
    ``DriverReadFailed``."""
    form = _driver_form(engine.dialect)
    driver_error = engine.dialect.loaded_dbapi.Error
    try:
        pooled = engine.raw_connection()  # the pool's checkout, its events and its ping rules
    except driver_error as e:
        raise DBAPIError.instance(None, None, e, driver_error, dialect=engine.dialect) from e
    try:
        dbapi = pooled.dbapi_connection
        dbapi.autocommit = True
        try:
            row = dbapi.execute(form.sql, {**form.params, "session_id": session_id}).fetchone()
        finally:
            dbapi.autocommit = False  # as the pool hands it to the next checkout
    except driver_error as e:
        pooled.invalidate(e)
        raise DriverReadFailed(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
    except BaseException:
        pooled.invalidate()
        raise
    finally:
        pooled.close()
    if row is None:
        return None
    values = list(row)
    for i, process in form.processors:
        values[i] = process(values[i])
    return _principal_of(tuple(values))


def _principal_of(row) -> tuple[SessionRow, Principal] | None:
    if row is None:
        return None
    sess = SessionRow(*row[_SESSION])
    user_row = row[_USER]
    if user_row[0] is None or not user_row[6]:  # no user, or not active
        return sess, Principal(None, None, 0)
    grant = tuple(row[_GRANT]) if row[_GRANT.start] is not None else None
    return sess, Principal(user_row[0], grant, row[_UNREAD] or 0, user_row, tuple(row[_ORG]))


def signed_in_user_id() -> int | None:
    """The id of the user Flask-Login's loader would return for this request's session (see
    portal.auth.login), without building the user: for a request that never asked who is
    signed in (its response headers, its log line)."""
    p = g.get("principal")
    if p is None or p.user_id is None:
        return None
    return p.user_id if session.get("_user_id") == str(p.user_id) else None


def user_for(session: Session, p: Principal) -> User:
    """The principal's user as an ORM object in ``session``, built from the row read (no SQL),
    or the instance the session already holds."""
    existing = session.identity_map.get(identity_key(User, p.user_id))
    if existing is not None:
        return existing
    org = session.identity_map.get(identity_key(Organisation, p.org_row[0]))
    if org is None:
        org = _attached(session, Organisation(**dict(zip(_ORG_NAMES, p.org_row))))
    user = User(**dict(zip(_USER_NAMES, p.user_row)))
    user.organisation = org
    return _attached(session, user)


def _attached(session: Session, obj):
    # As if loaded by a query: no pending changes, the columns not given expired (loaded on use).
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def of(user) -> Principal | None:
    """The principal read for this request, if it is ``user``'s (not after a sign-in or out)."""
    p = g.get("principal")
    return p if p is not None and user is not None and p.user_id == getattr(user, "id", None) else None


def notifications_read() -> None:
    """The request marked the user's notifications read: the badge drawn later shows none."""
    p = g.get("principal")
    if p is not None:
        g.principal = replace(p, unread_notifications=0)
