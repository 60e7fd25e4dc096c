from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.access.material import CaseMaterial
from portal.db import Base, utcnow
from portal.encryption import registry


class DataKey(Base):
    """A data key for field encryption, stored wrapped by a KEK of the keyring."""

    __tablename__ = "data_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    kek_id: Mapped[str] = mapped_column(String(64), index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(CaseMaterial, Base):
    """An encrypted file on a report (and later on a message). The blob key is random and
    never derived from the filename; the DEK is the attachment's own, wrapped by a KEK."""

    __tablename__ = "attachments"
    audit_kind = "attachment"
    __table_args__ = (Index("ix_attachments_report_id", "report_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)  # bound into the ciphertext
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    classification: Mapped[str] = mapped_column(String(16))
    # Labels fixed at upload (rule 7): the case's compartments then.
    compartments: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The submitted version a report-level file was frozen into (None: the working copy's).
    version: Mapped[int | None]
    blob_key: Mapped[str] = mapped_column(String(64), unique=True)
    kek_id: Mapped[str] = mapped_column(String(64), index=True)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Malware scan (portal.attachments.scanning): pending until clamd gave a verdict, then
    # clean, infected (malware, or a file clamd cannot look into) or error. Only a clean file
    # is ever served (the policy's scan condition).
    scan_state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending", index=True)
    scan_signature: Mapped[str | None] = mapped_column(String(200))  # what clamd found, or its error
    scanned_at: Mapped[datetime | None]

    # Whether the person a list is shown to may open the file (set by services.visible).
    downloadable = False

    report = relationship("Report", lazy="joined")
    message = relationship("Message", lazy="joined")

    def access_labels(self):
        from portal.access.policy import Labels

        from portal.access.policy import compartment_set

        report = self.report
        internal = self.message is not None and self.message.channel == "internal"
        return Labels(org_id=report.organisation_id, classification=self.classification,
                      compartments=compartment_set(self.compartments) or report.case_compartments(),
                      audience="government" if internal else "company", draft=report.status == "draft",
                      internal=internal, frozen=self.message_id is not None or self.version is not None,
                      audience_facility_valid=report.organisation.facility_clearance_valid(_today()),
                      scan_state=self.scan_state or "pending", uploader_id=self.uploaded_by_id)


class BlobChunk(Base):
    """The database blob backend: ciphertext in ordered chunks."""

    __tablename__ = "blob_chunks"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # When the chunk was written: `portal blobs clean-partial` removes only old unreferenced ones.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


registry.wrapped_keys("data_keys", DataKey, kek=DataKey.kek_id, wrapped=DataKey.wrapped)
# The stream of an attachment is bound to its uid (crypto.stream's attachment id).
registry.blobs("attachments", Attachment, key=Attachment.blob_key, kek=Attachment.kek_id,
               wrapped=Attachment.wrapped_dek, uid=Attachment.uid, size=Attachment.size)


def _today():
    from portal.core.timeutil import today_jst

    return today_jst()
