"""Who is asking, read in one statement at the start of every request with a session cookie.

The session row, its user and the user's organisation land in the ORM session (so Flask-Login's
loader and ``user.organisation`` find them without SQL), together with the user's clearance
grant in force and the number of unread notifications: one round trip instead of six on every
signed-in page. Nothing here is cached across requests except what cannot change (a grant's
compartments, see ``portal.access.subject``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable

from flask import g
from sqlalchemy import Integer, bindparam, literal, select
from sqlalchemy.orm import Session, defer, joinedload

from portal.access.models import Clearance
from portal.access.subject import GRANT_COLUMNS, current_grant_id
from portal.auth.models import User, UserSession
from portal.orgs.models import Organisation


@dataclass(frozen=True)
class Principal:
    user_id: int | None
    grant: tuple | None  # GRANT_COLUMNS of the grant in force, None without one
    unread_notifications: int
    # Held for the request: the ORM session's identity map keeps only weak references, and
    # Flask-Login's loader must find the user there.
    user: User | None = field(default=None, compare=False, repr=False)


# Notifications are the dialogue's, a package above this one: it hands over the correlated
# count of a user's unread notifications when the app starts (portal.dialogue.hooks.init_app),
# called with the users' id column. Without it the principal reads none.
_unread_notifications: Callable[[Any], Any] | None = None


def count_notifications_with(builder: Callable[[Any], Any]) -> None:
    global _unread_notifications
    _unread_notifications = builder
    _statement.cache_clear()


@lru_cache(maxsize=1)
def _statement():
    """Built once (the session id is bound at execution); the user's organisation comes with
    it through ``User.organisation``'s joined loading."""
    unread = (_unread_notifications(User.id) if _unread_notifications is not None
              else literal(0, type_=Integer))
    return (select(UserSession, User, *GRANT_COLUMNS, unread)
            .outerjoin(User, User.id == UserSession.user_id)
            .outerjoin(Clearance, Clearance.id == current_grant_id(User.id))
            .where(UserSession.id == bindparam("session_id"))
            # Every column read costs on every request (bench/profile_floor.py: the result's
            # set-up and rows grow with them); these are read by the few flows that need them
            # (sign-in, account administration), which load them then. The password hash stays:
            # the account page says whether one is set.
            .options(defer(UserSession.source_ip), defer(User.password_changed_at),
                     defer(User.disabled_at), defer(User.created_at), defer(User.totp_last_counter),
                     joinedload(User.organisation).load_only(
                         Organisation.name, Organisation.is_government, Organisation.facility_clearance_from,
                         Organisation.facility_clearance_until)))


def load(session: Session, session_id: str) -> tuple[UserSession, Principal] | None:
    row = session.execute(_statement(), {"session_id": session_id}).first()
    if row is None:
        return None
    user = row[1]
    grant = tuple(row[2:6]) if row[2] is not None else None
    return row[0], Principal(user.id if user is not None else None, grant, row[6] or 0, user)


def of(user) -> Principal | None:
    """The principal read for this request, if it is ``user``'s (not after a sign-in or out)."""
    p = g.get("principal")
    return p if p is not None and user is not None and p.user_id == getattr(user, "id", None) else None


def notifications_read() -> None:
    """The request marked the user's notifications read: the badge drawn later shows none."""
    p = g.get("principal")
    if p is not None:
        g.principal = replace(p, unread_notifications=0)
