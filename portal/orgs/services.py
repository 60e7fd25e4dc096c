"""Organisations, their members and invitations."""
from __future__ import annotations

import hashlib
import secrets
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.access.levels import COMPANY_ROLES, Role
from portal.audit.trail import record
from portal.auth.models import Invitation, User
from portal.auth.passwords import password_problems
from portal.auth.sessions import revoke_user
from portal.config import Settings
from portal.core.i18n import gettext as _
from portal.core.links import absolute_url
from portal.core.service import ServiceError
from portal.core.text import control_problem
from portal.db import utcnow
from portal.mail import outbox
from portal.orgs import corporate_number
from portal.orgs.models import Organisation


def create_organisation(session: Session, *, name: str, number: str, address: str,
                        is_government: bool = False, actor=None, ip: str | None = None) -> Organisation:
    name = (name or "").strip()
    if not name:
        raise ServiceError(_("Enter the organisation's name."), field="name", reason="name_missing")
    for field, value, lines in (("name", name, False), ("address", address, True)):
        if (text_problem := control_problem(value, multiline=lines)):
            raise ServiceError(text_problem, field=field, reason="control_character")
    if (wrong := corporate_number.problem(number)) is not None:
        raise ServiceError(wrong[1], field="corporate_number", reason=wrong[0])
    number = corporate_number.clean(number)
    if session.execute(select(Organisation.id).where(Organisation.corporate_number == number)).first():
        raise ServiceError(_("An organisation with this corporate number already exists."),
                           field="corporate_number", reason="duplicate_corporate_number")
    org = Organisation(name=name, corporate_number=number, address=(address or "").strip(),
                       is_government=is_government)
    session.add(org)
    session.flush()
    record(session, "org.create", actor=actor, source_ip=ip, target_type="organisation", target_id=org.id,
           details={"corporate_number": number})
    return org


def organisations(session: Session) -> list[Organisation]:
    return list(session.execute(select(Organisation).order_by(Organisation.is_government.desc(), Organisation.name)).scalars())


def users(session: Session, *, q: str | None = None, limit: int = 200) -> list[User]:
    """Everyone, by organisation (the admin and clearance consoles), optionally matching ``q``."""
    stmt = select(User).order_by(User.organisation_id, User.name).limit(limit)
    if q:
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where(func.lower(User.email).like(like) | func.lower(User.name).like(like))
    return list(session.execute(stmt).scalars())


def members(session: Session, org_id: int) -> list[User]:
    return list(session.execute(select(User).where(User.organisation_id == org_id).order_by(User.name)).scalars())


def pending_invitations(session: Session, org_id: int) -> list[Invitation]:
    return list(session.execute(
        select(Invitation).where(Invitation.organisation_id == org_id, Invitation.accepted_at.is_(None),
                                 Invitation.revoked_at.is_(None), Invitation.expires_at > utcnow())
        .order_by(Invitation.created_at.desc())).scalars())


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(session: Session, settings: Settings, *, inviter: User, email: str, name: str, role: str,
           ip: str | None, org: Organisation | None = None) -> Invitation:
    """Invite someone to ``org`` (default: the inviter's own). The policy has decided that the
    inviter may invite into it; an org_admin may only give company roles. The link is built on
    PORTAL_BASE_URL, never on the request's Host; only the token's hash is stored."""
    org = org or inviter.organisation
    r = Role.parse(role or "")
    if r is None or (inviter.role == Role.ORG_ADMIN and r not in COMPANY_ROLES):
        raise ServiceError(_("Choose a role from the list."), field="role", reason="unknown_role")
    if r.is_company == org.is_government:
        raise ServiceError(_("This role does not belong in this organisation: government roles are for government bodies, company roles for companies."),
                           field="role", reason="role_org_mismatch")
    if (text_problem := control_problem(name)):
        raise ServiceError(text_problem, field="name", reason="control_character")
    email = email.strip().lower()
    if session.execute(select(User.id).where(func.lower(User.email) == email)).first():
        raise ServiceError(_("An account with this e-mail address already exists."), field="email",
                           reason="duplicate_email")
    token = secrets.token_urlsafe(32)
    inv = Invitation(token_hash=_token_hash(token), organisation_id=org.id, email=email,
                     name=name.strip(), role=r.value, invited_by_id=inviter.id,
                     expires_at=utcnow() + timedelta(days=settings.invitation_days))
    session.add(inv)
    session.flush()
    outbox.queue(
        session, email,
        "【技術移転事前報告ポータル】アカウントへの招待 / Invitation to the TTR portal",
        f"{inviter.organisation.name} の {inviter.name} さんがあなたを {org.name} のメンバーとして招待しました。\n"
        f"次のリンクからパスワードを設定してください（{settings.invitation_days}日間有効、一度だけ使えます）。\n"
        f"{absolute_url(settings.base_url, 'orgs.accept', token=token)}\n\n"
        f"You have been invited to the portal by {inviter.name} ({inviter.organisation.name}).\n"
        f"Set your password with the link above. It works once and expires in {settings.invitation_days} days.\n",
    )
    record(session, "org.member.invite", actor=inviter, source_ip=ip, target_type="invitation", target_id=inv.id,
           org_id=org.id, details={"role": r.value})
    return inv


def find_invitation(session: Session, token: str) -> Invitation | None:
    if not token or len(token) > 100:
        return None
    inv = session.execute(select(Invitation).where(Invitation.token_hash == _token_hash(token))).scalar_one_or_none()
    if inv is None or inv.accepted_at or inv.revoked_at or inv.expires_at <= utcnow():
        return None
    return inv


def accept_invitation(session: Session, settings: Settings, inv: Invitation, password: str, confirm: str,
                      ip: str | None) -> User:
    from portal.auth.services import argon2_params
    from portal.auth.passwords import hash_password

    problems = password_problems(password, email=inv.email, name=inv.name)
    if password != confirm:
        raise ServiceError(_("The passwords do not match."), field="confirm_password", reason="mismatch")
    if problems:
        raise ServiceError(" ".join(problems), field="new_password", reason="weak_password")
    if session.execute(select(User.id).where(func.lower(User.email) == inv.email)).first():
        raise ServiceError(_("An account with this e-mail address already exists."), reason="duplicate_email")
    user = User(email=inv.email, name=inv.name, role=inv.role, organisation_id=inv.organisation_id,
                password_hash=hash_password(password, argon2_params(settings)), password_changed_at=utcnow())
    session.add(user)
    inv.accepted_at = utcnow()
    session.flush()
    record(session, "org.member.join", actor=user, source_ip=ip, target_type="invitation", target_id=inv.id)
    return user


def set_active(session: Session, *, target: User, active: bool, actor: User, ip: str | None) -> None:
    if target.active == active:
        return
    target.active = active
    target.disabled_at = None if active else utcnow()
    if not active:
        revoke_user(session, target.id)
    record(session, "account.enable" if active else "account.disable", actor=actor, source_ip=ip,
           target_type="user", target_id=target.id, org_id=target.organisation_id)


def set_facility_clearance(session: Session, *, org: Organisation, valid_from: date | None,
                           valid_until: date | None, actor: User, ip: str | None) -> None:
    if (valid_from is None) != (valid_until is None):
        raise ServiceError(_("Enter both dates, or neither to remove the facility clearance."),
                           field="valid_until", reason="incomplete_dates")
    if valid_from and valid_until and valid_until < valid_from:
        raise ServiceError(_("The end date must be on or after the start date."), field="valid_until",
                           reason="end_before_start")
    org.facility_clearance_from = valid_from
    org.facility_clearance_until = valid_until
    # Members' access may change at once: make them sign in again.
    for member in members(session, org.id):
        revoke_user(session, member.id)
    record(session, "org.facility_clearance.set", actor=actor, source_ip=ip, target_type="organisation",
           target_id=org.id, org_id=org.id,
           details={"from": valid_from.isoformat() if valid_from else None,
                    "until": valid_until.isoformat() if valid_until else None})
