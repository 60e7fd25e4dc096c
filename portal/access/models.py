from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.catalogue.models import Technology
from portal.db import Base, utcnow

clearance_compartments = Table(
    "clearance_compartments",
    Base.metadata,
    Column("clearance_id", ForeignKey("clearances.id", ondelete="CASCADE"), primary_key=True),
    Column("technology_id", ForeignKey("technologies.id"), primary_key=True),
)


class Clearance(Base):
    """One grant of a personal clearance. Grants are never edited: a renewal or a change of
    compartments is a new grant that supersedes the old one, so the history is the table."""

    __tablename__ = "clearances"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    level: Mapped[str] = mapped_column(String(16))
    expires_on: Mapped[date]
    reason: Mapped[str] = mapped_column(Text)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    compartments: Mapped[list[Technology]] = relationship(
        secondary=clearance_compartments, lazy="selectin", order_by=Technology.code
    )

    @property
    def is_current(self) -> bool:
        return self.superseded_at is None and self.revoked_at is None

    def valid_on(self, on: date) -> bool:
        return self.is_current and on <= self.expires_on
