from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from crypto import DecryptionError
from portal import db
from portal.access.levels import LEVEL_LABELS, Level
from portal.access.policy import Action
from portal.attachments import services, web
from portal.attachments.closed import upload_closed_reason
from portal.attachments.models import Attachment
from portal.auth.forms import EmptyForm
from portal.core.guard import (after_this_request_commits, audit, audited_stream, by_id, check, current_subject, failed,
                               guarded)
from portal.core.i18n import gettext as _
from portal.core.security import DOWNLOAD_CSP
from portal.core.service import Refused, ServiceError
from portal.core.timeutil import today_jst
from portal.core.web import client_ip, settings
from portal.encryption.opener import current_keyring
from portal.observability import metrics
from portal.reports.models import Report

bp = Blueprint("attachments", __name__)
log = logging.getLogger(__name__)


def _store():
    return services.store_for(settings(), db.session)


def _load_report(report_id: int):
    return by_id(Report, report_id)


def _load_attachment(attachment_id: int):
    return by_id(Attachment, attachment_id)


def _files_page(obj) -> str:
    return url_for("attachments.index", report_id=obj.report_id if isinstance(obj, Attachment) else obj.id)


@bp.route("/reports/<int:report_id>/attachments", methods=["GET"])
@guarded(Action.REPORT_VIEW, load=_load_report)
def index(obj: Report):
    return _render(obj)


def _render(report: Report, error: str | None = None, status: int = 200):
    """The files the reader may download (each on its own labels), which of them they may
    remove, and whether they may add one: decided here, shown by the template."""
    from portal.reports import flow

    s = db.session()
    files = services.list_for_report(s, report, subject=current_subject(), today=today_jst())
    closed = upload_closed_reason(report.status, check(Action.ATTACHMENT_UPLOAD, report.working_copy_labels()))
    editable = report.status in services.EDITABLE
    # While the report is being written this page is a step of the filing (after the content,
    # before the check page); afterwards it is the case's file list.
    in_filing = editable and check(Action.REPORT_EDIT, report).allowed
    return render_template("attachments/index.html", report=report, attachments=files,
                           removable={a.id for a in files if check(Action.ATTACHMENT_DELETE, a).allowed},
                           may_upload=closed is None, closed_reason=closed,
                           levels=[(l.value, LEVEL_LABELS[l]) for l in services.upload_levels(
                               report, subject=current_subject(), today=today_jst()) if l != Level.CSI],
                           error=error, empty=EmptyForm(), limit=settings().max_upload_bytes,
                           editable=editable, stops=flow.stops(report.id) if in_filing else None), status


@bp.route("/reports/<int:report_id>/attachments", methods=["POST"])
@guarded(Action.ATTACHMENT_UPLOAD, load=_load_report, target=lambda r: r.working_copy_labels(), body="stream")
def upload(obj: Report):
    """The body is parsed only after the policy allowed the upload. Werkzeug writes the
    file part straight into an UploadSink, which encrypts into the blob store."""
    store = _store()
    received = None
    try:
        received = web.receive(store, settings().max_upload_bytes)
        if received.sink is None:
            raise web.UploadRefused(_("Choose a file to upload."), "no_file")
        _hold(obj)
        att = services.store_upload(db.session(), current_keyring(), received.sink, report=obj,
                                    filename=received.filename, classification=received.form.get("classification", ""),
                                    subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip())
        after_this_request_commits(lambda: metrics.upload_stored(att.size))
    except Refused as e:
        metrics.upload_refused(e.reason)
        if received is not None:
            received.abort()
        raise
    except ServiceError as e:
        metrics.upload_refused(e.reason)
        if received is not None:
            received.abort()
        failed(e, "attachment.upload", obj)
        return _render(obj, e.message, getattr(e, "status", 400))
    except BaseException:
        metrics.upload_refused("error")
        if received is not None:
            received.abort()
        raise
    web.flash_verdict(att)
    return redirect(url_for("attachments.index", report_id=obj.id))


def _hold(report: Report) -> None:
    """The body took its time with no transaction open: the report is locked (PostgreSQL; a
    submission locks it too) and read afresh, so a report submitted or withdrawn meanwhile
    refuses the file, and a submission waits for this upload rather than freezing the report's
    files without it."""
    s = db.session()
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(Report.id).where(Report.id == report.id).with_for_update())
    s.refresh(report)


@bp.route("/attachments/<int:attachment_id>")
@guarded(Action.ATTACHMENT_DOWNLOAD, load=_load_attachment)
def download(obj: Attachment):
    store = _store()
    keyring = current_keyring()
    # The permission and the start are recorded with the request; whether the last byte went
    # out (or a segment failed to authenticate) is recorded when the stream ends.
    audit("attachment.download.start", target_type="attachment", target_id=obj.id, case_ref=obj.report.reference,
          org_id=obj.report.organisation_id, details={"sha256": obj.sha256})
    try:
        chunks = metrics.download("attachment", services.plaintext(store, keyring, obj),
                                  integrity_errors=(DecryptionError,))
    except services.BlobUnreadable as e:
        metrics.blob_error(e.reason)
        # The portal's error page, before any byte of the file; recorded instead of the start.
        log.error("attachment %s: blob unreadable (%s): %s", obj.id, e.reason, e)
        failed(ServiceError(_("This file cannot be read at the moment. The administrators have been told."),
                            reason=e.reason), "attachment.download", obj)
        return render_template("errors/generic.html", code=500, title=_("Something went wrong"),
                               message=_("This file cannot be read at the moment. The administrators have been told.")), 500
    name = obj.filename
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    body = audited_stream(chunks, "attachment.download", obj=obj, integrity_errors=(DecryptionError,),
                          sha256=obj.sha256)
    resp = Response(body, mimetype=obj.content_type.split(";")[0], direct_passthrough=True)
    resp.headers["Content-Length"] = str(obj.size)
    resp.headers["Content-Disposition"] = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    return resp


@bp.route("/attachments/<int:attachment_id>/delete", methods=["POST"])
@guarded(Action.ATTACHMENT_DELETE, load=_load_attachment, event="attachment.delete", back=_files_page)
def delete(obj: Attachment):
    if not EmptyForm().validate_on_submit():
        abort(400)
    store = _store()
    services.delete(db.session(), store, obj, actor=current_user, ip=client_ip())
    if not isinstance(store, services.DatabaseBlobStore):
        # Removed when the deletion is committed; a crash in between leaves an orphan blob
        # that `portal blobs check` finds, never a row without its blob.
        after_this_request_commits(lambda: store.delete(obj.blob_key))
    flash(_("The file has been removed."), "success")
    return redirect(url_for("attachments.index", report_id=obj.report_id))
