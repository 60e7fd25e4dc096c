from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.access.material import CaseMaterial
from portal.db import Base, utcnow
from portal.encryption import registry
from portal.encryption.sealed import Ciphertext, Sealed

DRAFT, PENDING, REJECTED, ISSUED, REVOKED = "draft", "pending_approval", "rejected", "issued", "revoked"
COMPANY_VISIBLE = (ISSUED, REVOKED)


class Inform(CaseMaterial, Base):
    """An inform (インフォーム通知): drafted by a case worker, approved by another approver
    (four eyes), issued with a number and an official notice stored encrypted."""

    __tablename__ = "informs"
    audit_kind = "inform"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=DRAFT)
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    legal_basis: Mapped[str] = mapped_column(Text)
    _reasons: Mapped[bytes] = mapped_column("reasons", Ciphertext())
    reasons = Sealed[str]("_reasons")
    _conditions: Mapped[bytes] = mapped_column("conditions", Ciphertext())
    conditions = Sealed[str]("_conditions")
    _internal_rationale: Mapped[bytes] = mapped_column("internal_rationale", Ciphertext())
    internal_rationale = Sealed[str]("_internal_rationale")
    rationale_classification: Mapped[str] = mapped_column(String(16))
    # The inform's own labels, fixed when drafted (rule 7); the rationale has its own level.
    classification: Mapped[str] = mapped_column(String(16), default="restricted", server_default="restricted")
    compartments: Mapped[str] = mapped_column(String(200), default="", server_default="")
    drafted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_comment: Mapped[str | None] = mapped_column(Text)
    issued_at: Mapped[datetime | None]
    notice_uid: Mapped[str | None] = mapped_column(String(32))
    notice_blob_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    notice_kek_id: Mapped[str | None] = mapped_column(String(64), index=True)
    notice_wrapped_dek: Mapped[bytes | None] = mapped_column(LargeBinary)
    notice_sha256: Mapped[str | None] = mapped_column(String(64))
    notice_size: Mapped[int | None] = mapped_column(BigInteger)
    # The English notice, signed and stored at issue too (issue 16); NULL for informs issued
    # before it was (their English notice is rendered on request).
    notice_en_uid: Mapped[str | None] = mapped_column(String(32))
    notice_en_blob_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    notice_en_kek_id: Mapped[str | None] = mapped_column(String(64), index=True)
    notice_en_wrapped_dek: Mapped[bytes | None] = mapped_column(LargeBinary)
    notice_en_sha256: Mapped[str | None] = mapped_column(String(64))
    notice_en_size: Mapped[int | None] = mapped_column(BigInteger)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime | None]
    licence_application_ref: Mapped[str | None] = mapped_column(String(100))
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    report = relationship("Report", lazy="joined")

    def access_labels(self):
        from portal.access.policy import Labels

        from portal.access.policy import compartment_set

        report = self.report
        # Until it is issued an inform is METI's internal work: concealed from the company.
        return Labels(org_id=report.organisation_id, classification=self.classification,
                      compartments=compartment_set(self.compartments) or report.case_compartments(),
                      internal=self.status not in COMPANY_VISIBLE, author_id=self.drafted_by_id)

    def rationale_labels(self):
        """The internal rationale: METI-only, at its own classification, whatever the inform's."""
        from dataclasses import replace

        return replace(self.access_labels(), classification=self.rationale_classification, internal=True,
                       author_id=None)


class InformEvent(Base):
    __tablename__ = "inform_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    inform_id: Mapped[int] = mapped_column(ForeignKey("informs.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    step: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)


# The issued notices (Japanese, English): each stream is bound to its uid; NULL until issued.
registry.blobs("inform_notices", Inform, key=Inform.notice_blob_key, kek=Inform.notice_kek_id,
               wrapped=Inform.notice_wrapped_dek, uid=Inform.notice_uid, size=Inform.notice_size)
registry.blobs("inform_notices_en", Inform, key=Inform.notice_en_blob_key, kek=Inform.notice_en_kek_id,
               wrapped=Inform.notice_en_wrapped_dek, uid=Inform.notice_en_uid, size=Inform.notice_en_size)
