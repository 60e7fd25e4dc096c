"""Builds the policy's view of a user from the database, once per request.

Clearance grants are immutable (a renewal or a change of compartments is a new grant), so a
grant's compartments are cached per grant id in the process; which grant is current, the
role, the account state and the organisation's facility clearance are read on every request.
"""
from __future__ import annotations

import threading
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.access.models import Clearance, clearance_compartments
from portal.access.policy import Subject
from portal.catalogue.models import Technology

# (grant id, granted_at) -> (codes, technology ids); granted_at guards against a reused id.
_compartments: dict[tuple, tuple[frozenset[str], frozenset[int]]] = {}
_lock = threading.Lock()
_CACHE_LIMIT = 10_000


GRANT_COLUMNS = (Clearance.id, Clearance.granted_at, Clearance.level, Clearance.expires_on)


def current_clearance(session: Session, user_id: int) -> Clearance | None:
    return session.execute(select(Clearance).where(Clearance.id == current_grant_id(user_id))).scalar_one_or_none()


def current_grant_id(user_id):
    """The id of the user's grant in force (the newest neither superseded nor revoked) as a
    scalar subquery; ``user_id`` may be a column (a correlated subquery)."""
    return (select(Clearance.id)
            .where(Clearance.user_id == user_id, Clearance.superseded_at.is_(None), Clearance.revoked_at.is_(None))
            .order_by(Clearance.granted_at.desc(), Clearance.id.desc())
            .limit(1).correlate_except(Clearance).scalar_subquery())


def compartments_of(session: Session, grant_id: int, granted_at) -> tuple[frozenset[str], frozenset[int]]:
    """A grant's compartment codes and technology ids (neither can change: the grant is
    immutable, and a technology a clearance names cannot be deleted)."""
    key = (grant_id, granted_at)
    hit = _compartments.get(key)
    if hit is None:
        rows = session.execute(
            select(Technology.code, Technology.id)
            .join(clearance_compartments, clearance_compartments.c.technology_id == Technology.id)
            .where(clearance_compartments.c.clearance_id == grant_id)).all()
        hit = (frozenset(r[0] for r in rows), frozenset(r[1] for r in rows))
        with _lock:
            if len(_compartments) >= _CACHE_LIMIT:
                _compartments.clear()
            _compartments[key] = hit
    return hit


def subject_for(session: Session, user, today: date, grant: tuple | None | bool = False) -> Subject:
    """``grant`` holds the current grant's GRANT_COLUMNS when the caller already read them (the
    request's principal), None when the user has none, False to read them here."""
    if grant is False:
        row = session.execute(select(*GRANT_COLUMNS).where(Clearance.id == current_grant_id(user.id))).first()
        grant = tuple(row) if row else None
    codes, ids = compartments_of(session, grant[0], grant[1]) if grant else (frozenset(), frozenset())
    org = user.organisation
    return Subject(
        user_id=user.id,
        role=user.role,
        org_id=user.organisation_id,
        active=user.active,
        clearance_level=grant[2] if grant else None,
        clearance_expires_on=grant[3] if grant else None,
        compartments=codes,
        compartment_ids=ids,
        org_facility_valid=org.facility_clearance_valid(today) if org is not None else False,
    )
