"""Server-side, revocable sessions (CONVENTIONS §8).

The cookie holds 32 random bytes; the database row is keyed by their SHA-256, so a leaked
database does not yield live cookies. Idle and absolute timeouts are enforced here, a new
id is issued at sign-in (``regenerate``), and ``revoke_user`` ends every session of a user.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import timedelta

from flask import g
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from werkzeug.datastructures import CallbackDict

from portal import db
from portal.auth import principal
from portal.auth.models import UserSession
from portal.db import utcnow

log = logging.getLogger(__name__)

COOKIE_NAME = "ttr_session"
API_PREFIX = "/api/"
# How often an unchanged session's last-seen time is written: the idle timeout is 30 minutes,
# so a minute of slack costs nothing and saves a write and a commit on almost every request.
TOUCH_INTERVAL = timedelta(seconds=60)


class ServerSession(CallbackDict, SessionMixin):
    def __init__(self, initial=None, token: str | None = None, new: bool = True):
        def on_update(s):
            s.modified = True

        super().__init__(initial, on_update)
        self.token = token
        self.new = new
        self.modified = False
        self.regenerate_requested = False
        self.destroyed = False

    def regenerate(self) -> None:
        """Issue a new id (at sign-in and privilege changes); the old row is deleted."""
        self.regenerate_requested = True
        self.modified = True

    def destroy(self) -> None:
        self.clear()
        self.destroyed = True
        self.modified = True


def digest(token: str) -> str:
    """The session row's id for a cookie's token."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


_digest = digest


class DatabaseSessionInterface(SessionInterface):
    def open_session(self, app, request):
        # Nothing read for an earlier request may serve this one (an app context can outlive
        # a request in tests and CLI code).
        for key in ("principal", "subject", "status_labels"):
            g.pop(key, None)
        if request.path.startswith(API_PREFIX):
            # The API authenticates by bearer token alone (portal.core.guard): a cookie the
            # client happens to send is never read, so it can neither sign it in nor be forged.
            return ServerSession()
        token = request.cookies.get(COOKIE_NAME)
        if not token or len(token) > 100:
            return ServerSession()
        try:
            return self._load(app, token)
        except Exception as e:
            if not db.unavailable(e):
                raise
            # Raised here, it would escape Flask's error handlers (the session opens before
            # them): the request goes on signed out, and anything but /healthz, /livez and
            # static files answers the portal's 503 page (portal.core.errors). The cookie is
            # kept: the session is still good once the database is back.
            db.mark_unavailable(e)
            return ServerSession()

    def _load(self, app, token: str) -> ServerSession:
        db.first_statement_retried()
        try:
            loaded = _read_principal(token)
        except DBAPIError as e:
            if not e.connection_invalidated:
                raise
            # A pooled connection that a database restart broke (SQLAlchemy's read; the pool
            # now replaces every connection as old as it): the read changes nothing, so it runs
            # once more, on a connection that is pinged as usual.
            opened = db.opened_session()
            if opened is not None:
                opened.rollback()
            loaded = _read_principal(token)
        finally:
            db.first_statement_done()
        if loaded is None:
            return ServerSession()
        row, who = loaded
        now = utcnow()
        cfg = app.config
        if (now - row.last_seen_at > timedelta(minutes=cfg["SESSION_IDLE_MINUTES"])
                or now - row.created_at > timedelta(hours=cfg["SESSION_ABSOLUTE_HOURS"])):
            s = db.session()
            s.execute(delete(UserSession).where(UserSession.id == _digest(token)))
            s.commit()
            g.session_expired = row.user_id is not None
            return ServerSession()
        try:
            data = json.loads(row.data)
        except ValueError:
            data = {}
        g.principal = who
        sess = ServerSession(data, token=token, new=False)
        sess.last_seen_at = row.last_seen_at
        g.session_row_created = row.created_at
        return sess

    def save_session(self, app, session: ServerSession, response):
        if g.get("database_unavailable"):
            return  # nothing can be written, and the cookie stays as it was
        try:
            self._save(app, session, response)
        except Exception as e:
            if not db.unavailable(e):
                raise
            # The database went away after the view: what the view committed stands and its
            # page is shown (without a new cookie); a page that was already an error becomes
            # the portal's 503 page, which says to try again.
            db.mark_unavailable(e)
            db.session().invalidate()
            if response.status_code >= 400:
                from portal.core.errors import become_unavailable

                become_unavailable(response)

    def _save(self, app, session: ServerSession, response) -> None:
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        secure = app.config["SESSION_COOKIE_SECURE"]
        opened = db.opened_session()  # a request that wrote nothing may have opened none
        if opened is not None and opened.in_transaction():
            # The view did not commit: whatever it did is discarded before we write.
            opened.rollback()
        if not session.modified and session.token is None:
            return
        now = utcnow()
        last_seen = getattr(session, "last_seen_at", None)
        if (not session.modified and session.token is not None and last_seen is not None
                and now - last_seen < TOUCH_INTERVAL):
            return  # nothing changed and the idle clock was reset less than a minute ago: no write
        s = db.session()
        if session.destroyed or (not session and session.token and session.modified):
            if session.token:
                s.execute(delete(UserSession).where(UserSession.id == _digest(session.token)))
                s.commit()
            response.delete_cookie(COOKIE_NAME, domain=domain, path=path, secure=secure,
                                   httponly=True, samesite="Lax")
            return
        user_id = session.get("_user_id")
        user_id = int(user_id) if user_id is not None and str(user_id).isdigit() else None
        payload = json.dumps(dict(session), separators=(",", ":"), default=str)
        if session.token is None or session.regenerate_requested:
            if session.token is not None:
                s.execute(delete(UserSession).where(UserSession.id == _digest(session.token)))
            session.token = secrets.token_urlsafe(32)
            s.add(UserSession(id=_digest(session.token), user_id=user_id, created_at=now,
                              last_seen_at=now, data=payload, source_ip=_client_ip()))
        else:
            touched = s.execute(update(UserSession).where(UserSession.id == _digest(session.token))
                                .values(last_seen_at=now, data=payload, user_id=user_id))
            if not touched.rowcount:  # revoked during this request
                s.commit()
                response.delete_cookie(COOKIE_NAME, domain=domain, path=path, secure=secure,
                                       httponly=True, samesite="Lax")
                return
        s.commit()
        response.set_cookie(COOKIE_NAME, session.token, httponly=True, secure=secure,
                            samesite="Lax", path=path, domain=domain)


def _read_principal(token: str):
    """On PostgreSQL the principal is read in autocommit, on a connection of its own that goes
    straight back to the pool: a single statement is atomic by itself, so BEGIN and COMMIT
    around it would be two more round trips on every signed-in request (half of the floor,
    bench/profile_floor.py) and guard nothing, and the ORM session is not involved at all. It
    is sent through the driver (``principal.load_autocommitted``); should the driver fail on the
    connection it had (one a database restart broke), the read runs once more through
    SQLAlchemy, on a pinged connection. No connection to be had at all (the database gone) is
    raised at once as SQLAlchemy's error, which the portal's outage handling knows. It is still read afresh on every request, so a revocation, a role or a clearance
    change bites on the next one; the view's work runs in a transaction of its own. SQLite keeps
    its transaction: its BEGIN IMMEDIATE costs no round trip."""
    engine = db.engine()
    opened = db.opened_session()
    if (opened is not None and opened.in_transaction()) or engine.dialect.name != "postgresql":
        return principal.load(db.session().connection(), _digest(token))
    if engine.dialect.driver == "psycopg":
        try:
            return principal.load_autocommitted(engine, _digest(token))
        except principal.DriverReadFailed as e:
            # After a restart each pooled connection fails once here (SQLAlchemy's own read
            # would have dropped them all at once): the pinged read below serves the request.
            log.warning("session read on a broken pooled connection, read again: %s", e)
    with engine.connect() as conn:
        return principal.load(conn.execution_options(isolation_level="AUTOCOMMIT"), _digest(token))


def _client_ip() -> str | None:
    from flask import request

    # Behind PORTAL_BEHIND_PROXY this is a header's value: whatever it holds, it fits the column.
    return request.remote_addr[:64] if request.remote_addr else None


def revoke_user(session, user_id: int) -> int:
    """End every session of a user (password, 2FA, role, clearance or account changes)."""
    res = session.execute(delete(UserSession).where(UserSession.user_id == user_id))
    return res.rowcount or 0


def purge_expired(session, idle: timedelta, absolute: timedelta) -> None:
    now = utcnow()
    session.execute(delete(UserSession).where(
        (UserSession.last_seen_at < now - idle) | (UserSession.created_at < now - absolute)))


def active_count(session, user_id: int) -> int:
    return len(session.execute(select(UserSession.id).where(UserSession.user_id == user_id)).all())
