"""Clearances: granted, renewed and revoked by a security officer, never by their holder.
A grant is immutable; a renewal or a change of compartments supersedes it."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.access.levels import Level
from portal.access.models import Clearance
from portal.access.subject import current_clearance
from portal.audit.trail import record
from portal.auth.models import User
from portal.auth.sessions import revoke_user
from portal.catalogue.models import Technology
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError
from portal.db import utcnow

DEFAULT_YEARS = 10


def default_expiry(today: date) -> date:
    try:
        return today.replace(year=today.year + DEFAULT_YEARS)
    except ValueError:  # 29 February
        return today.replace(year=today.year + DEFAULT_YEARS, day=28)


def _all_current(session: Session, user_id: int) -> list[Clearance]:
    """Every grant still in force. Normally one; two concurrent grants can leave two, and a
    revocation or a new grant must end them all, or an older one would come back to life."""
    return list(session.execute(
        select(Clearance).where(Clearance.user_id == user_id, Clearance.superseded_at.is_(None),
                                Clearance.revoked_at.is_(None))
    ).scalars())


def history(session: Session, user_id: int) -> list[Clearance]:
    return list(session.execute(
        select(Clearance).where(Clearance.user_id == user_id).order_by(Clearance.granted_at.desc(), Clearance.id.desc())
    ).scalars())


def grant(session: Session, *, target: User, level: str, compartments: list[str], expires_on: date | None,
          reason: str, actor: User | None, today: date, ip: str | None = None) -> Clearance:
    """Grant (or renew, or change) ``target``'s clearance. The policy has already decided that
    ``actor`` may; here the content of the grant is checked. Self-grants are refused here too,
    so that no path (CLI included) can grant oneself anything."""
    if actor is not None and actor.id == target.id:
        raise ServiceError(_("You cannot change your own clearance."), reason="self")
    lvl = Level.parse(level or "")
    if lvl is None:
        raise ServiceError(_("Choose a clearance level from the list."), field="level", reason="unknown_level")
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(_("Enter the reason for this grant."), field="reason", reason="reason_missing")
    expires_on = expires_on or default_expiry(today)
    if expires_on <= today:
        raise ServiceError(_("The expiry date must be in the future."), field="expires_on", reason="expiry_in_past")
    codes = sorted(set(compartments or []))
    techs = list(session.execute(select(Technology).where(Technology.code.in_(codes))).scalars()) if codes else []
    if len(techs) != len(codes):
        raise ServiceError(_("Choose compartments from the list of designated technologies."), field="compartments",
                           reason="unknown_compartment")
    previous = current_clearance(session, target.id)
    now = utcnow()
    for old in _all_current(session, target.id):
        old.superseded_at = now
    c = Clearance(user_id=target.id, level=lvl.value, expires_on=expires_on, reason=reason,
                  granted_by_id=actor.id if actor else None, granted_at=now, compartments=techs)
    session.add(c)
    session.flush()
    narrowed = previous is not None and narrows(previous, lvl, set(codes), expires_on)
    if narrowed:
        # Access that shrinks ends the sessions that knew it, as a revocation does. A grant that
        # only widens takes effect on the next request anyway (the subject is read per request):
        # signing the person out everywhere would only cost them their work.
        revoke_user(session, target.id)
    record(session, "clearance.renew" if previous else "clearance.grant", actor=actor, source_ip=ip,
           target_type="user", target_id=target.id, org_id=target.organisation_id,
           details={"level": lvl.value, "compartments": codes, "expires_on": expires_on.isoformat(),
                    "previous_level": previous.level if previous else None,
                    "previous_compartments": [t.code for t in previous.compartments] if previous else [],
                    "sessions_revoked": narrowed})
    return c


def narrows(previous: Clearance, level: Level, compartments: set[str], expires_on: date) -> bool:
    """Whether a new grant takes away anything ``previous`` allowed: a lower level, a
    compartment dropped, or an earlier expiry."""
    old_level = Level.parse(previous.level)
    return (old_level is None or level < old_level
            or bool({t.code for t in previous.compartments} - compartments)
            or expires_on < previous.expires_on)


def revoke(session: Session, *, target: User, reason: str, actor: User, ip: str | None = None) -> Clearance:
    if actor.id == target.id:
        raise ServiceError(_("You cannot change your own clearance."), reason="self")
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(_("Enter the reason for the revocation."), field="reason", reason="reason_missing")
    c = current_clearance(session, target.id)
    if c is None:
        raise ServiceError(_("This person holds no clearance to revoke."), reason="no_clearance")
    now = utcnow()
    for cur in _all_current(session, target.id):
        cur.revoked_at = now
        cur.revoked_by_id = actor.id
        cur.revoke_reason = reason
    revoke_user(session, target.id)
    record(session, "clearance.revoke", actor=actor, source_ip=ip, target_type="user", target_id=target.id,
           org_id=target.organisation_id, details={"level": c.level})
    return c
