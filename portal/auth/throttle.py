"""Sign-in throttling per account and per source address, kept in the database so that
it holds across processes and servers."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from portal.auth.models import LoginFailure
from portal.db import utcnow


def retry_after(session: Session, *, account: str, address: str | None,
                max_account: int, max_address: int, window: timedelta) -> datetime | None:
    """When the next attempt is allowed, or None if one is allowed now."""
    now = utcnow()
    since = now - window
    worst: datetime | None = None
    for kind, key, limit in (("account", account, max_account), ("address", address, max_address)):
        if not key:
            continue
        count, _oldest = session.execute(
            select(func.count(), func.min(LoginFailure.at)).where(
                LoginFailure.kind == kind, LoginFailure.key == key, LoginFailure.at > since)
        ).one()
        if count >= limit:
            # Blocked until enough failures age out of the window.
            nth_oldest = session.execute(
                select(LoginFailure.at).where(
                    LoginFailure.kind == kind, LoginFailure.key == key, LoginFailure.at > since)
                .order_by(LoginFailure.at).offset(count - limit).limit(1)
            ).scalar_one()
            until = nth_oldest + window
            if worst is None or until > worst:
                worst = until
    return worst


def note_failure(session: Session, *, account: str, address: str | None) -> None:
    session.add(LoginFailure(kind="account", key=account))
    if address:
        session.add(LoginFailure(kind="address", key=address))
    session.flush()


def clear_account(session: Session, account: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.kind == "account", LoginFailure.key == account))


def purge_old(session: Session, window: timedelta) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - window))
