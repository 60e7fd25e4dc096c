"""Builds the policy's view of a user from the database, once per request."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.access.models import Clearance
from portal.access.policy import Subject


def current_clearance(session: Session, user_id: int) -> Clearance | None:
    return session.execute(
        select(Clearance)
        .where(Clearance.user_id == user_id, Clearance.superseded_at.is_(None), Clearance.revoked_at.is_(None))
        .order_by(Clearance.granted_at.desc(), Clearance.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def subject_for(session: Session, user, today: date) -> Subject:
    c = current_clearance(session, user.id)
    return Subject(
        user_id=user.id,
        role=user.role,
        org_id=user.organisation_id,
        active=user.active,
        clearance_level=c.level if c else None,
        clearance_expires_on=c.expires_on if c else None,
        compartments=frozenset(t.code for t in c.compartments) if c else frozenset(),
        org_facility_valid=user.organisation.facility_clearance_valid(today),
    )
