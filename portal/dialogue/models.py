from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.access.material import CaseMaterial
from portal.db import Base, utcnow
from portal.encryption.sealed import Ciphertext, Sealed

EXTERNAL, INTERNAL = "external", "internal"


class Message(CaseMaterial, Base):
    """Append-only: a correction is a new message. The body is sealed at rest."""

    __tablename__ = "messages"
    audit_kind = "message"
    __table_args__ = (Index("ix_messages_report_channel_id", "report_id", "channel", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"))
    channel: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    _body: Mapped[bytes] = mapped_column("body", Ciphertext())
    body = Sealed[str]("_body")
    classification: Mapped[str] = mapped_column(String(16))
    # Labels fixed when written (rule 7): the case's compartments then.
    compartments: Mapped[str] = mapped_column(String(200), default="", server_default="")
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    is_request: Mapped[bool] = mapped_column(default=False)
    due_date: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author = relationship("User", lazy="joined")
    report = relationship("Report", lazy="joined")

    def access_labels(self):
        return self.labels_in(case_part(self.report))

    def labels_in(self, case: tuple[int, frozenset[str], bool]):
        """This message's labels, what they take from its case given as ``case_part(report)``:
        a case page labels each of its messages, all of one case."""
        from portal.access.policy import Labels, compartment_set

        org_id, case_compartments, facility_valid = case
        return Labels(org_id=org_id, classification=self.classification,
                      compartments=compartment_set(self.compartments) or case_compartments,
                      audience="company" if self.channel == EXTERNAL else "government",
                      internal=self.channel == INTERNAL, frozen=True, audience_facility_valid=facility_valid)


def case_part(report) -> tuple[int, frozenset[str], bool]:
    """What a message's labels take from its case: the organisation, the case's compartments
    and whether the company holds a valid facility clearance today."""
    return (report.organisation_id, report.case_compartments(),
            report.organisation.facility_clearance_valid(_today()))


class ReadMark(Base):
    """How far a person has read a case's channel."""

    __tablename__ = "read_marks"
    __table_args__ = (UniqueConstraint("user_id", "report_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    last_read_id: Mapped[int] = mapped_column(default=0)



class UnreadCase(Base):
    """A case in which a case worker has messages not yet read, kept as messages are written
    and read (``portal.dialogue.unread``) so that the queue's "unread only" filter is an index
    lookup instead of a pass over every message. ``lowest_rank``: the lowest classification
    rank among those messages (the reader's clearance decides at query time whether any of
    them counts); ``last_id``: the newest message folded in.

    The case's own labels, its status and its submission time are copied in (and kept by a
    trigger on ``reports``, migration 0018), so that the filter's total and its pages in the
    queue's default order are read from this table's index alone."""

    __tablename__ = "unread_cases"
    __table_args__ = (Index("ix_unread_cases_user_submitted", "user_id", "submitted_at", "report_id", "lowest_rank",
                            "status", "classification", "technology_id"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), primary_key=True, index=True)
    lowest_rank: Mapped[int]
    last_id: Mapped[int]
    status: Mapped[str] = mapped_column(String(24))
    classification: Mapped[str] = mapped_column(String(16))
    technology_id: Mapped[int | None]
    submitted_at: Mapped[datetime | None]


class UnreadTally(Base):
    """How many of a case worker's unread cases carry each status, labels and lowest rank: the
    "unread only" filter's total read from a few rows instead of counted over tens of thousands
    (as ``ReportTally`` does for the queue). Kept by triggers on ``unread_cases`` (migration
    0018), whatever writes it; ``technology_id`` 0 stands for none."""

    __tablename__ = "unread_tallies"

    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(24), primary_key=True)
    classification: Mapped[str] = mapped_column(String(16), primary_key=True)
    technology_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    lowest_rank: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int]

def _today():
    from portal.core.timeutil import today_jst

    return today_jst()
