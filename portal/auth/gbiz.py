"""Accounts of people who sign in with GビズID: who a verified identity is here, and the rules.

- A linked account signs in if it is active, still holds a company role and the provider still
  names the 法人番号 it was linked with (a changed one is refused and audited: a person never
  moves to another company by a claim).
- A first sign-in links to the organisation METI registered with that 法人番号 (none: refused)
  and creates an account with the role its account type is given in the settings (Prime →
  org_admin, Member → filer, Entry refused, by default). Like every new account it holds no
  clearance until a security officer grants one (DESIGN §3).
- An existing account with the same e-mail address links only after its owner signs in with
  its password (``link_after_password``): an e-mail claim alone never opens an account.

Refusals raise ``GbizRefused`` before anything is written; the caller rolls back and records.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.audit.trail import record
from portal.auth.gbiz_claims import GbizIdentity
from portal.auth.models import GbizLink, User
from portal.auth.services import find_user, normalise_email
from portal.config import Settings
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError
from portal.db import utcnow
from portal.orgs.models import Organisation

PENDING_LINK_SECONDS = 600


class GbizRefused(ServiceError):
    """A GビズID sign-in the portal does not accept; ``message`` says what the person can do."""

    def __init__(self, message: str, reason: str, status: int = 403):
        super().__init__(message, reason=reason)
        self.status = status


@dataclass
class Outcome:
    kind: str  # signed_in | link_pending
    user: User


def role_for(settings: Settings, account_type: str) -> str:
    return {"prime": settings.oidc_prime_role, "member": settings.oidc_member_role,
            "entry": settings.oidc_entry_role}.get(account_type, "")


def _company_user(user: User) -> bool:
    role = user.role_enum
    return role is not None and role.is_company and not user.organisation.is_government


def sign_in(session: Session, settings: Settings, who: GbizIdentity, ip: str | None) -> Outcome:
    issuer = str(settings.oidc_issuer)
    link = session.execute(select(GbizLink).where(GbizLink.issuer == issuer, GbizLink.subject == who.subject)
                           ).scalar_one_or_none()
    if link is not None:
        return _linked(session, link, who, ip)
    role = role_for(settings, who.account_type)
    if not role:
        raise GbizRefused(_("A gBizID Entry account cannot be used here, because its holder's identity has not "
                        "been verified. Sign in with a gBizID Prime or Member account."), "account_type_refused")
    org = session.execute(select(Organisation).where(Organisation.corporate_number == who.corporate_number)
                          ).scalar_one_or_none()
    if org is None or org.is_government:
        raise GbizRefused(_("Your company (corporate number %(number)s) is not registered with this portal. Ask "
                        "the portal help desk at METI to register it, then sign in with gBizID again.",
                        number=who.corporate_number), "unregistered_corporate_number")
    existing = find_user(session, who.email)
    if existing is not None:
        if session.execute(select(GbizLink.id).where(GbizLink.user_id == existing.id)).first() is not None:
            # Already linked to another GビズID subject: one portal account, one GビズID.
            raise GbizRefused(_("An account with this e-mail address is already linked to another gBizID. Ask your "
                            "organisation administrator."), "email_linked_elsewhere")
        if not _company_user(existing):
            raise GbizRefused(_("This account signs in with its password and authenticator code, not with gBizID."),
                              "government_account")
        record(session, "auth.gbiz.link_pending", actor=existing, source_ip=ip, details=who.audit_details())
        return Outcome("link_pending", existing)
    try:
        # In a savepoint: the same person signing in twice at once (two tabs, a double click)
        # makes the second insert collide with the first; the second then signs in to the
        # account the first created instead of failing with an error page.
        with session.begin_nested():
            user = User(email=normalise_email(who.email), name=who.name, role=role, organisation_id=org.id,
                        password_hash=None, locale="ja")
            session.add(user)
            session.flush()
            session.add(GbizLink(user_id=user.id, issuer=issuer, subject=who.subject,
                                 corporate_number=who.corporate_number, account_type=who.account_type,
                                 last_signin_at=utcnow(), last_acr=who.acr, last_amr=who.amr))
            session.flush()
    except IntegrityError:
        link = session.execute(select(GbizLink).where(GbizLink.issuer == issuer, GbizLink.subject == who.subject)
                               ).scalar_one_or_none()
        if link is not None:
            return _linked(session, link, who, ip)
        raise GbizRefused(_("Signing in did not complete because the account changed at the same moment. "
                            "Sign in with gBizID again."), "concurrent_signin", 409) from None
    record(session, "account.create", actor=user, source_ip=ip, target_type="user", target_id=user.id,
           details={"via": "gbiz", "role": role, **who.audit_details()})
    return Outcome("signed_in", user)


def _linked(session: Session, link: GbizLink, who: GbizIdentity, ip: str | None) -> Outcome:
    user = session.get(User, link.user_id)
    if user is None or not user.active:
        raise GbizRefused(_("This account has been disabled. Ask your organisation administrator."), "disabled")
    if link.corporate_number != who.corporate_number:
        # Recorded on its own as well as the refusal: someone should look at it.
        raise GbizRefused(_("gBizID now names another company for this account. The portal does not move an account "
                        "between companies: ask METI's help desk."), "corporate_number_changed")
    if not _company_user(user):
        raise GbizRefused(_("This account signs in with its password and authenticator code, not with gBizID."),
                      "government_account")
    if who.account_type == "entry":
        # Entry accounts are never identity-proofed, whatever the account was linked as.
        raise GbizRefused(_("A gBizID Entry account cannot be used here, because its holder's identity has not "
                        "been verified. Sign in with a gBizID Prime or Member account."), "account_type_refused")
    link.account_type = who.account_type
    link.last_signin_at = utcnow()
    link.last_acr, link.last_amr = who.acr, who.amr
    record(session, "auth.gbiz.signin", actor=user, source_ip=ip, details=who.audit_details())
    return Outcome("signed_in", user)


# ---------------------------------------------------------------- linking an existing account

def pending_link(who: GbizIdentity) -> dict:
    """What the session keeps while the owner of an existing account proves it with the password."""
    return {**asdict(who), "since": time.time()}


def link_after_password(session: Session, settings: Settings, user: User, pending: dict, ip: str | None) -> bool:
    """The owner of ``user`` just signed in with the password after a GビズID sign-in named the
    same e-mail address: link them, if everything still holds."""
    if time.time() - float(pending.get("since", 0)) > PENDING_LINK_SECONDS:
        return False
    fields = {k: pending.get(k) for k in GbizIdentity.__dataclass_fields__}
    who = GbizIdentity(**fields)
    issuer = str(settings.oidc_issuer)
    reason = None
    if normalise_email(user.email) != normalise_email(who.email):
        reason = "email_differs"
    elif not _company_user(user):
        reason = "government_account"
    elif user.organisation.corporate_number != who.corporate_number:
        reason = "corporate_number_differs"
    elif session.execute(select(GbizLink.id).where(
            (GbizLink.user_id == user.id) | ((GbizLink.issuer == issuer) & (GbizLink.subject == who.subject)))
            ).first() is not None:
        reason = "already_linked"
    if reason is not None:
        record(session, "auth.gbiz.link", actor=user, outcome="denied", reason=reason, source_ip=ip,
               details=who.audit_details())
        return False
    session.add(GbizLink(user_id=user.id, issuer=issuer, subject=who.subject, corporate_number=who.corporate_number,
                         account_type=who.account_type, last_signin_at=utcnow(), last_acr=who.acr, last_amr=who.amr))
    record(session, "auth.gbiz.link", actor=user, source_ip=ip, target_type="user", target_id=user.id,
           details=who.audit_details())
    return True
