"""Accounts and roles, managed by system administrators (and the CLI)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from email_validator import EmailNotValidError, validate_email

from portal.access.levels import Role
from portal.audit.trail import record
from portal.auth.models import User
from portal.auth.passwords import hash_password, password_problems
from portal.auth.sessions import revoke_user
from portal.config import Settings
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError
from portal.core.text import control_problem
from portal.dialogue import unread
from portal.db import utcnow
from portal.orgs.models import Organisation
# The lists live with organisations, which the clearance console (portal.access) may import.
from portal.orgs.services import organisations, users

__all__ = ["change_role", "create_user", "organisations", "users"]


def create_user(session: Session, settings: Settings, *, email: str, name: str, role: str, org: Organisation,
                password: str | None, actor: User | None, ip: str | None = None) -> User:
    from portal.auth.services import argon2_params

    try:
        email = validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise ServiceError(_("Enter an e-mail address in the correct format, like name@example.co.jp."),
                           field="email", reason="bad_email") from None
    name = (name or "").strip()
    if not name:
        raise ServiceError(_("Enter the person's name."), field="name", reason="name_missing")
    if (text_problem := control_problem(name)):
        raise ServiceError(text_problem, field="name", reason="control_character")
    r = Role.parse(role or "")
    if r is None:
        raise ServiceError(_("Choose a role from the list."), field="role", reason="unknown_role")
    if r.is_company == org.is_government:
        raise ServiceError(_("This role does not belong in this organisation: government roles are for government bodies, company roles for companies."),
                           field="role", reason="role_org_mismatch")
    if session.execute(select(User.id).where(func.lower(User.email) == email)).first():
        raise ServiceError(_("An account with this e-mail address already exists."), field="email",
                           reason="duplicate_email")
    pw_hash = None
    if password is not None:
        problems = password_problems(password, email=email, name=name)
        if problems:
            raise ServiceError(" ".join(problems), field="password", reason="weak_password")
        pw_hash = hash_password(password, argon2_params(settings))
    user = User(email=email, name=name, role=r.value, organisation_id=org.id, password_hash=pw_hash,
                password_changed_at=utcnow() if pw_hash else None)
    session.add(user)
    session.flush()
    # A case worker starts with every message in the cases unread (they have no read mark).
    unread.rebuild_user(session, user.id)
    record(session, "account.create", actor=actor, source_ip=ip, target_type="user", target_id=user.id,
           org_id=org.id, details={"role": r.value})
    return user


def change_role(session: Session, *, target: User, role: str, actor: User | None, ip: str | None = None) -> None:
    r = Role.parse(role or "")
    if r is None:
        raise ServiceError(_("Choose a role from the list."), field="role", reason="unknown_role")
    if actor is not None and actor.id == target.id:
        raise ServiceError(_("You cannot change your own role."), reason="self")
    if r.is_company == target.organisation.is_government:
        raise ServiceError(_("This role does not belong in this organisation: government roles are for government bodies, company roles for companies."),
                           field="role", reason="role_org_mismatch")
    if target.role == r.value:
        return
    old = target.role
    target.role = r.value
    session.flush()
    unread.rebuild_user(session, target.id)  # the rows follow the role (kept, other channels, none)
    revoke_user(session, target.id)
    record(session, "account.role.change", actor=actor, source_ip=ip, target_type="user", target_id=target.id,
           org_id=target.organisation_id, details={"from": old, "to": r.value})


def scanning_summary(session: Session, settings: Settings) -> dict:
    """For METI IT: files by malware-scan state over the whole portal (counts only, never
    which case) and the scanner's health (portal.clamd.health)."""
    from portal import clamd
    from portal.attachments import scanning

    return {"counts": scanning.counts(session),
            "scanner": clamd.health(settings.clamd_socket, settings.clamd_database_dir)}
