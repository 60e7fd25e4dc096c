"""The daily job's bookkeeping: one row per job and day, and one row per notice that a run
has sent, so that a run interrupted half-way is finished by the next invocation without
sending anything twice."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow


class JobRun(Base):
    """One row per job and day. ``finished_at`` set: the day is done. Unset: a run is under way
    (``owner`` holds it until ``lease_until``) or was interrupted (the lease has run out or was
    given back), and the next invocation takes it over."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "run_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(32))
    run_on: Mapped[date]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=1, server_default="1")


class JobItem(Base):
    """A notice a run has sent, committed in the same transaction as the notice itself: the
    unique key is what makes a re-run (or a second server) skip it. Deleted when the run
    finishes, since a finished day is never run again."""

    __tablename__ = "job_items"
    __table_args__ = (UniqueConstraint("run_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("job_runs.id"))
    key: Mapped[str] = mapped_column(String(64))
    done_at: Mapped[datetime] = mapped_column(default=utcnow)
