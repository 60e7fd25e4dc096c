from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.access.levels import Role
from portal.db import Base, utcnow
from portal.orgs.models import Organisation
from portal.encryption.sealed import Ciphertext, Sealed


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)
    disabled_at: Mapped[datetime | None]
    locale: Mapped[str] = mapped_column(String(8), default="ja")
    # Sealed: a database dump alone does not yield anyone's second factor.
    # Deferred: read (and decrypted) only by the sign-in and 2FA flows, not on every request or
    # with every message author.
    _totp_secret: Mapped[bytes | None] = mapped_column("totp_secret", Ciphertext(), deferred=True)
    totp_secret = Sealed[str | None]("_totp_secret")
    totp_enabled_at: Mapped[datetime | None]
    # The last accepted TOTP time step: a code from that step or earlier is a replay.
    totp_last_counter: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation] = relationship(lazy="joined")

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def role_enum(self) -> Role | None:
        return Role.parse(self.role)

    @property
    def totp_enabled(self) -> bool:
        return self.totp_enabled_at is not None

    def policy_target(self):
        from portal.access.policy import UserTarget

        return UserTarget(self.id, self.organisation_id)

    @property
    def audit_target(self) -> tuple[str, int]:
        return ("user", self.id)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class UserSession(Base):
    """Server-side session; the cookie carries a random token whose SHA-256 is the id."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    data: Mapped[str] = mapped_column(Text, default="{}")
    source_ip: Mapped[str | None] = mapped_column(String(64))


class LoginFailure(Base):
    """One failed sign-in step, counted per account and source, per address and per account
    for throttling (portal.auth.throttle). ``at`` alone is indexed for the purge."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_kind_key_at", "kind", "key", "at"),
                      Index("ix_login_failures_at", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # pair (account and source, hashed) | account | address
    key: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None]


class Invitation(Base):
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    invited_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    organisation: Mapped[Organisation] = relationship(lazy="joined")


class GbizLink(Base):
    """A portal account signed in through GビズID (OpenID Connect): the provider's subject, and
    the company (法人番号) and account type it was linked with. The 法人番号 never changes
    here: a sign-in that claims another one is refused (portal.auth.gbiz)."""

    __tablename__ = "gbiz_links"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    corporate_number: Mapped[str] = mapped_column(String(13))
    account_type: Mapped[str] = mapped_column(String(16))  # prime | member
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_signin_at: Mapped[datetime | None]
    # The provider's own second factor at the last sign-in (DESIGN: a GビズID account's 2FA is
    # the provider's): authentication context class and methods, as the ID token said.
    last_acr: Mapped[str | None] = mapped_column(String(255))
    last_amr: Mapped[str | None] = mapped_column(String(255))
