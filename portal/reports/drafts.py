"""Deleting a draft (issue 15): a report never submitted is the company's working copy, known
to nobody outside it; the company may throw it away. Anything submitted stays (a version,
its files and its history are the case record)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from portal.access.policy import Action, Subject, decide
from portal.attachments import services as attachments
from portal.attachments.blobstore import BlobStore
from portal.attachments.models import Attachment
from portal.audit.trail import record
from portal.core.i18n import gettext as _
from portal.core.service import Refused, ServiceError
from portal.notifications.models import Notification
from portal.reports import states as S
from portal.reports.models import Report, ReportEvent


def deletable(report: Report) -> bool:
    return report.status == S.DRAFT and not report.version_count and not report.reference


def delete_draft(session: Session, store: BlobStore, report: Report, *, subject: Subject, actor, today: date,
                 ip: str | None) -> list[str]:
    """Remove the draft, its files and its own history; recorded in the audit trail (which is
    append-only, so the record outlives the draft). Returns the blob keys the caller removes
    once the transaction has committed (a crash in between leaves an orphan blob that
    `portal blobs check` finds, never a row without its blob)."""
    d = decide(subject, Action.REPORT_DELETE, report, today=today)
    if not d.allowed:
        raise Refused(_("You are not allowed to do this."), reason=d.reason, conceal=d.conceal)
    if not deletable(report):
        raise ServiceError(_("Only a draft that was never submitted can be deleted. A submitted report can be withdrawn."),
                           reason="not_draft")
    files = list(session.execute(select(Attachment).where(Attachment.report_id == report.id)).scalars())
    keys = [a.blob_key for a in files]
    for att in files:
        attachments.delete(session, store, att, actor=actor, ip=ip)
    session.execute(delete(Notification).where(Notification.report_id == report.id))
    events = session.execute(select(func.count()).select_from(ReportEvent)
                             .where(ReportEvent.report_id == report.id)).scalar_one()
    session.execute(delete(ReportEvent).where(ReportEvent.report_id == report.id))
    record(session, "report.delete", actor=actor, source_ip=ip, target_type="report", target_id=report.id,
           org_id=report.organisation_id, details={"files": len(files), "events": events})
    session.delete(report)
    session.flush()
    return keys
