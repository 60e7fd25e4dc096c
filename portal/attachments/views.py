from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crypto import DecryptionError
from portal import db
from portal.access.levels import LEVEL_LABELS, Level
from portal.access.policy import Action
from portal.attachments import services, web
from portal.attachments.keys import current_keyring
from portal.attachments.models import Attachment
from portal.auth.forms import EmptyForm
from portal.core.guard import audit, current_subject, guarded
from portal.core.security import csrf
from portal.core.service import ServiceError
from portal.core.timeutil import today_jst
from portal.core.web import client_ip, settings
from portal.reports.models import Report

bp = Blueprint("attachments", __name__)


def _store():
    return services.store_for(settings(), db.session)


def _load_report(report_id: int):
    return db.session().get(Report, report_id)


def _load_attachment(attachment_id: int):
    return db.session().get(Attachment, attachment_id)


@bp.route("/reports/<int:report_id>/attachments", methods=["GET"])
@guarded(Action.REPORT_VIEW, load=_load_report)
def index(obj: Report):
    return _render(obj)


def _render(report: Report, error: str | None = None, status: int = 200):
    s = db.session()
    return render_template("attachments/index.html", report=report, attachments=services.list_for_report(s, report),
                           levels=[(l.value, LEVEL_LABELS[l]) for l in Level if l != Level.CSI],
                           error=error, empty=EmptyForm(), limit=settings().max_upload_bytes,
                           editable=report.status in services.EDITABLE), status


@bp.route("/reports/<int:report_id>/attachments", methods=["POST"])
@csrf.exempt  # the token is checked after the streamed body is parsed (attachments.web)
@guarded(Action.REPORT_EDIT, load=_load_report)
def upload(obj: Report):
    """The body is parsed only after the policy allowed the upload. Werkzeug writes the
    file part straight into an UploadSink, which encrypts into the blob store."""
    store = _store()
    received = None
    try:
        received = web.receive(store, settings().max_upload_bytes)
        if received.sink is None:
            raise web.UploadRefused(_("Choose a file to upload."), "no_file")
        att = services.store_upload(db.session(), current_keyring(), received.sink, report=obj,
                                    filename=received.filename, classification=received.form.get("classification", ""),
                                    subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip())
        received.sink.commit()
        db.commit()
    except ServiceError as e:
        if received is not None:
            received.abort()
        db.rollback()
        audit("attachment.upload", outcome="failure", reason=e.reason, target_type="report", target_id=obj.id,
              case_ref=obj.reference)
        db.commit()
        return _render(obj, e.message, getattr(e, "status", 400))
    except Exception:
        if received is not None:
            received.abort()
        raise
    flash(_("The file %(name)s has been encrypted and attached.", name=att.filename), "success")
    return redirect(url_for("attachments.index", report_id=obj.id))


@bp.route("/attachments/<int:attachment_id>")
@guarded(Action.ATTACHMENT_DOWNLOAD, load=_load_attachment)
def download(obj: Attachment):
    store = _store()
    keyring = current_keyring()
    audit("attachment.download", target_type="attachment", target_id=obj.id, case_ref=obj.report.reference,
          org_id=obj.report.organisation_id, details={"sha256": obj.sha256})
    db.commit()
    chunks = services.plaintext(store, keyring, obj)

    def body():
        try:
            yield from chunks
        except DecryptionError:
            current_app.logger.error("attachment %s failed to authenticate; download aborted", obj.id)
            raise  # the server drops the connection: the client sees a truncated download

    name = obj.filename
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    resp = Response(stream_with_context(body()), mimetype=obj.content_type.split(";")[0], direct_passthrough=True)
    resp.headers["Content-Length"] = str(obj.size)
    resp.headers["Content-Disposition"] = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


@bp.route("/attachments/<int:attachment_id>/delete", methods=["POST"])
@guarded(Action.REPORT_EDIT, load=lambda attachment_id: _load_report_of(attachment_id))
def delete(obj: Report):
    att = _load_attachment(request.view_args["attachment_id"])
    if not EmptyForm().validate_on_submit():
        abort(400)
    store = _store()
    try:
        services.delete(db.session(), store, att, actor=current_user, ip=client_ip())
        db.commit()
    except ServiceError as e:
        db.rollback()
        flash(e.message, "error")
        return redirect(url_for("attachments.index", report_id=obj.id))
    if not isinstance(store, services.DatabaseBlobStore):
        store.delete(att.blob_key)  # after the commit: a crash in between leaves an orphan `portal blobs check` finds
    flash(_("The file has been removed."), "success")
    return redirect(url_for("attachments.index", report_id=obj.id))


def _load_report_of(attachment_id: int):
    att = _load_attachment(attachment_id)
    return att.report if att else None
