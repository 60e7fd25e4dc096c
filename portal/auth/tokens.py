"""API tokens (issue 19): an org_admin issues one for a member of their organisation, with
scopes, an expiry and optionally the addresses it may be used from. The token is shown once;
the database keeps its SHA-256 (the token is 256 random bits, so a slow hash adds nothing), so
a leaked database yields no usable token.

A token only stands in for the session cookie: the request it authenticates is decided by the
same policy on the same user (portal.core.guard), and a scope only narrows what the user could
do anyway.
"""
from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from portal.access.levels import Role
from portal.access.policy import Action
from portal.audit.trail import record
from portal.auth.models import User
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError
from portal.db import Base, utcnow

PREFIX = "ttr_"
SCOPES = ("reports:read", "reports:write", "messages", "informs")
# What each action a token may be used for needs; an action not listed (government work,
# administration) is never done with a token, whatever the user's role.
SCOPE_OF: dict[Action, str] = {
    Action.REPORT_LIST: "reports:read",
    Action.REPORT_VIEW: "reports:read",
    Action.ATTACHMENT_DOWNLOAD: "reports:read",
    Action.REPORT_CREATE: "reports:write",
    Action.REPORT_EDIT: "reports:write",
    Action.REPORT_SUBMIT: "reports:write",
    Action.REPORT_WITHDRAW: "reports:write",
    Action.ATTACHMENT_UPLOAD: "reports:write",
    Action.MESSAGE_READ: "messages",
    Action.MESSAGE_POST: "messages",
    Action.INFORM_VIEW: "informs",
    Action.INFORM_ACKNOWLEDGE: "informs",
}
MAX_DAYS = 366
MAX_ADDRESSES = 20


class ApiToken(Base):
    __tablename__ = "api_tokens"
    audit_target_type = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, so an administrator can tell tokens apart.
    hint: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(200))
    source_addresses: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")

    @property
    def audit_target(self) -> tuple[str, int]:
        return ("api_token", self.id)

    def policy_target(self):
        from portal.access.policy import OrgTarget

        return OrgTarget(self.organisation_id)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())

    @property
    def networks(self) -> list:
        return [ipaddress.ip_network(a, strict=False) for a in self.source_addresses.split()]

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "active"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------- administration

def parse_addresses(text: str) -> list[str]:
    """Addresses or networks (CIDR), separated by spaces, commas or lines; normalised."""
    out = []
    for part in (text or "").replace(",", " ").split():
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ServiceError(_("“%(value)s” is not an IP address or network.", value=part[:50]),
                               field="source_addresses", reason="bad_address") from None
    if len(out) > MAX_ADDRESSES:
        raise ServiceError(_("Enter at most %(n)d addresses.", n=MAX_ADDRESSES), field="source_addresses",
                           reason="too_many_addresses")
    return out


def issue(session: Session, *, org_id: int, user_id: int | None, name: str, scopes: list[str], days: int | None,
          addresses: str, actor: User, ip: str | None) -> tuple[ApiToken, str]:
    """A new token for a member of ``org_id``; returns the row and the token (shown once)."""
    name = (name or "").strip()
    if not name:
        raise ServiceError(_("Enter a name for the token, for example the system that will use it."), field="name",
                           reason="name_missing")
    if len(name) > 100:
        raise ServiceError(_("Enter at most %(n)d characters.", n=100), field="name", reason="too_long")
    user = session.get(User, user_id) if user_id else None
    if user is None or user.organisation_id != org_id or not user.active or not Role(user.role).is_company:
        raise ServiceError(_("Choose an active member of your organisation."), field="user_id", reason="bad_user")
    chosen = sorted(set(scopes or ()))
    if not chosen or any(s not in SCOPES for s in chosen):
        raise ServiceError(_("Choose at least one scope from the list."), field="scopes", reason="bad_scopes")
    if days is None or not 1 <= days <= MAX_DAYS:
        raise ServiceError(_("Enter a validity from 1 to %(n)d days.", n=MAX_DAYS), field="days", reason="bad_expiry")
    nets = parse_addresses(addresses)
    token = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(organisation_id=org_id, user_id=user.id, name=name, token_hash=digest(token), hint=token[:10],
                   scopes=" ".join(chosen), source_addresses=" ".join(nets), expires_at=now + timedelta(days=days),
                   created_at=now, created_by_id=actor.id)
    session.add(row)
    session.flush()
    record(session, "api.token.issue", actor=actor, source_ip=ip, target_type="api_token", target_id=row.id,
           org_id=org_id, details={"user_id": user.id, "scopes": chosen, "days": days, "addresses": nets})
    return row, token


def for_org(session: Session, org_id: int) -> list[ApiToken]:
    return list(session.execute(select(ApiToken).where(ApiToken.organisation_id == org_id)
                                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())).scalars())


def revoke(session: Session, token: ApiToken, *, actor: User, ip: str | None) -> None:
    if token.revoked_at is not None:
        return  # a second click: already done
    token.revoked_at, token.revoked_by_id = utcnow(), actor.id
    record(session, "api.token.revoke", actor=actor, source_ip=ip, target_type="api_token", target_id=token.id,
           org_id=token.organisation_id)


# ---------------------------------------------------------------- authentication

@dataclass(frozen=True)
class Verdict:
    """What a bearer token is worth for one request: ``token`` when it is known (refusals are
    recorded with its id), ``reason`` when it does not authenticate; ``status`` 401 for a token
    that is missing, unknown or no longer valid, 403 for a valid one used where it may not be."""
    token: ApiToken | None
    reason: str | None = None
    status: int = 401


def authenticate(session: Session, header: str | None, address: str | None, action: Action) -> Verdict:
    scheme, _sep, value = (header or "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return Verdict(None, "token_missing")
    if not value.startswith(PREFIX) or len(value) > 100:
        return Verdict(None, "token_unknown")
    token = session.execute(select(ApiToken).where(ApiToken.token_hash == digest(value))).scalar_one_or_none()
    if token is None:
        return Verdict(None, "token_unknown")
    state = token.state(utcnow())
    if state != "active":
        return Verdict(token, f"token_{state}")
    if not token.user.active or token.user.organisation_id != token.organisation_id:
        return Verdict(token, "user_disabled")
    if token.source_addresses:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return Verdict(token, "token_address", 403)
        if not any(ip in net for net in token.networks):
            return Verdict(token, "token_address", 403)
    needed = SCOPE_OF.get(action)
    if needed is None or needed not in token.scope_set:
        return Verdict(token, "insufficient_scope", 403)
    return Verdict(token)
