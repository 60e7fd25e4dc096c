from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow


class IdempotencyRecord(Base):
    """A POST made with an ``Idempotency-Key``, per token: the request's fingerprint, the status
    it got and the resource it made or acted on, so a retry does nothing twice and gets that
    resource as it is now. No body is kept: a report's content is sealed in its own row, never
    copied here in clear. Written in the request's own transaction, so it exists exactly when
    the action was committed."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("token_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    resource: Mapped[str] = mapped_column(String(40))  # "report:12", "attachment:5"…
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
