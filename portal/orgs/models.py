from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # 法人番号; government bodies also have one (METI: 4000012090001).
    corporate_number: Mapped[str] = mapped_column(String(13), unique=True)
    address: Mapped[str] = mapped_column(String(400), default="")
    is_government: Mapped[bool] = mapped_column(default=False)
    facility_clearance_from: Mapped[date | None]
    facility_clearance_until: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def facility_clearance_valid(self, on: date) -> bool:
        return (
            self.facility_clearance_from is not None
            and self.facility_clearance_until is not None
            and self.facility_clearance_from <= on <= self.facility_clearance_until
        )

    def policy_target(self):
        from portal.access.policy import OrgTarget

        return OrgTarget(self.id)

    @property
    def audit_target(self) -> tuple[str, int]:
        return ("organisation", self.id)
