from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.catalogue.models import Technology
from portal.access.material import CaseMaterial
from portal.db import Base, utcnow
from portal.orgs.models import Organisation
from portal.encryption.sealed import Ciphertext, Sealed


class Report(Base):
    """A prior report (事前報告). The working copy lives in ``draft``; what was submitted is
    frozen in ``ReportVersion`` rows. The columns below are the labels and list keys of the
    current content (technology, classification, destination, dates)."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_org_status", "organisation_id", "status"),
        Index("ix_reports_status_submitted", "status", "submitted_at"),
        # The review queue: newest first, by planned transfer, and the label filter.
        Index("ix_reports_submitted_id", "submitted_at", "id"),
        Index("ix_reports_status_transfer_id", "status", "planned_transfer_date", "id"),
        Index("ix_reports_queue_labels", "status", "classification", "technology_id"),
        # A company's list: newest first, with or without a status filter.
        # INCLUDE the policy's labels so the list's total is an index-only count on PostgreSQL.
        Index("ix_reports_org_updated", "organisation_id", "updated_at", "id",
              postgresql_include=["status", "classification", "technology_id"]),
        Index("ix_reports_org_status_updated", "organisation_id", "status", "updated_at", "id",
              postgresql_include=["classification", "technology_id"]),
        # The few cases with several compartments (rule 7's union), which lists check one by one.
        Index("ix_reports_multi_compartment", "id", sqlite_where=text("compartments LIKE '% %'"),
              postgresql_where=text("compartments LIKE '% %'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(24), default="draft")
    reference: Mapped[str | None] = mapped_column(String(20), unique=True)
    technology_id: Mapped[int | None] = mapped_column(ForeignKey("technologies.id"), index=True)
    classification: Mapped[str] = mapped_column(String(16), default="restricted")
    destination_country: Mapped[str | None] = mapped_column(String(2))
    planned_transfer_date: Mapped[date | None]
    # Sealed: the counterparty's name (the lists' title), the description and the rest of the
    # working copy are encrypted at rest, each bound to this row.
    _title: Mapped[bytes] = mapped_column("title", Ciphertext())
    title = Sealed[str]("_title", default="")
    _draft: Mapped[bytes] = mapped_column("draft", Ciphertext())
    draft = Sealed[str]("_draft", default="{}")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    version_count: Mapped[int] = mapped_column(default=0)
    # The case's compartments (rule 7): the union of the technologies of every submitted
    # version, space-separated codes. Empty while the report was never submitted: a draft's
    # compartment is its working technology. A company's later edit never shrinks it.
    compartments: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The review clock (business days on the government calendar) stops while the case
    # awaits the company: days already paused, and since when the current pause runs.
    paused_days: Mapped[int] = mapped_column(default=0)
    awaiting_since: Mapped[date | None]
    response_due: Mapped[date | None]
    closed_at: Mapped[datetime | None]

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    technology: Mapped[Technology | None] = relationship(lazy="joined")

    @property
    def draft_data(self) -> dict:
        return json.loads(self.draft or "{}")

    def case_compartments(self) -> frozenset[str]:
        from portal.access.policy import compartment_set

        fixed = compartment_set(self.compartments)
        if fixed:
            return fixed
        return frozenset({self.technology.code}) if self.technology else frozenset()

    def access_labels(self):
        from portal.access.policy import Labels

        return Labels(org_id=self.organisation_id, classification=self.classification,
                      compartments=self.case_compartments(), draft=self.status == "draft")

    def working_copy_labels(self):
        """What the company reads and writes while it edits: the case's labels and, once a
        version was submitted, those of the working copy's own choices (a returned report moved
        to another technology or classification is that technology's too, for its editors)."""
        from portal.access.levels import Level
        from portal.access.policy import Labels

        compartments, level = self.case_compartments(), Level(self.classification)
        if self.version_count:
            data = self.draft_data
            if data.get("technology"):
                compartments = compartments | {str(data["technology"])}
            chosen = Level.parse(str(data.get("classification") or ""))
            if chosen is not None and chosen > level:
                level = chosen
        return Labels(org_id=self.organisation_id, classification=level.value, compartments=compartments,
                      draft=self.status == "draft", audience="company",
                      audience_facility_valid=self.organisation.facility_clearance_valid(_today()))

    def policy_target(self):
        return self.access_labels()

    @property
    def audit_target(self) -> tuple[str, int]:
        return ("report", self.id)


class ReportTally(Base):
    """How many reports carry each combination of the labels that the policy and the lists
    filter on. Database triggers on ``reports`` keep it (migration 0008), in the transaction
    that changes a report, so a list's total and the queue's counts are a sum over a few rows
    instead of a count over every visible report. ``technology_id`` 0 stands for a draft with
    no technology chosen yet (a primary key cannot hold NULL)."""

    __tablename__ = "report_tallies"

    organisation_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(24), primary_key=True)
    technology_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    classification: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(default=0)


class ReportVersion(CaseMaterial, Base):
    """Submitted content, frozen. An amendment after a return is a new version."""

    __tablename__ = "report_versions"
    audit_kind = "report"
    __table_args__ = (UniqueConstraint("report_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    _content: Mapped[bytes] = mapped_column("content", Ciphertext())
    content = Sealed[str]("_content")
    technology_id: Mapped[int] = mapped_column(ForeignKey("technologies.id"))
    # The version's own label, as it was submitted (rule 7); its compartment is its technology.
    classification: Mapped[str] = mapped_column(String(16), default="restricted", server_default="restricted")
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    report: Mapped[Report] = relationship(lazy="joined")
    technology: Mapped[Technology] = relationship(lazy="joined")

    @property
    def data(self) -> dict:
        return json.loads(self.content)

    def access_labels(self):
        from portal.access.policy import Labels

        return Labels(org_id=self.report.organisation_id, classification=self.classification,
                      compartments=frozenset({self.technology.code}))

    @property
    def audit_target(self) -> tuple[str, int]:
        return ("report", self.report_id)


class ReportEvent(Base):
    """The case history shown to people (the audit trail is the proof; this is the story)."""

    __tablename__ = "report_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    transition: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    comment: Mapped[str | None] = mapped_column(Text)


class ReferenceCounter(Base):
    """Gap-free numbering per kind and year: the row is locked in the submitting transaction,
    so a rolled-back submission gives its number back."""

    __tablename__ = "reference_counters"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last: Mapped[int] = mapped_column(default=0)


class GroupACountry(Base):
    """輸出貿易管理令 別表第3 destinations, with listing periods (data, kept by an admin)."""

    __tablename__ = "group_a_countries"

    id: Mapped[int] = mapped_column(primary_key=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    listed_from: Mapped[date]
    listed_until: Mapped[date | None]


def _today():
    from portal.core.timeutil import today_jst

    return today_jst()
