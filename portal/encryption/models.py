"""What key retirement and the wraps in flight tell each other (``portal.encryption.leases``)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow


class KekLease(Base):
    """A data key being wrapped under ``kek_id`` whose row is not committed yet.

    Written and committed in its own short transaction before the wrap; deleted by the
    transaction that commits the wrapped key, or ignored once ``expires_at`` has passed."""

    __tablename__ = "kek_leases"

    id: Mapped[int] = mapped_column(primary_key=True)
    kek_id: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    holder: Mapped[str] = mapped_column(String(100))  # host and process, for `portal keys status`
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class KekRetirement(Base):
    """A KEK that is being (or has been) retired: no new data key is wrapped under it."""

    __tablename__ = "kek_retirements"

    kek_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]
