from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow


class Technology(Base):
    """A designated technology (事前報告の対象技術); also the compartment of clearances."""

    __tablename__ = "technologies"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_ja: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    effective_from: Mapped[date]
    effective_until: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_until is None or on <= self.effective_until)

    def name(self, locale: str) -> str:
        return self.name_en if locale == "en" else self.name_ja
