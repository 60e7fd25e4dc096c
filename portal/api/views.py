"""/api/v1: filing, following and answering reports from a company's own systems.

Every route is on the web's request path (``@guarded`` with ``auth="bearer"``): the token
names the user, its scope must cover the route's action, and the same ``decide()`` allows or
refuses with the same 404/403 and audit events. Views parse (pydantic models, then the web's
own step forms), call the same services as the web views and render JSON; a service's
refusal becomes an RFC 9457 problem (portal.api.problems). Government work stays in the web
console in this version.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from urllib.parse import quote

from flask import Blueprint, Response, current_app, request, url_for
from flask_login import current_user
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from crypto import DecryptionError
from portal import db
from portal.access.policy import Action, OrgTarget
from portal.api import drafts, idempotency, schemas as M
from portal.api.openapi import document, operation
from portal.api.problems import FieldErrors, from_http_error, from_service_error, problem
from portal.api.ratelimit import Limiter, key_for, retry_after
from portal.attachments import services as attachments, web
from portal.attachments.models import Attachment
from portal.core.guard import audit, audited_stream, by_id, check, current_subject, guarded, public
from portal.core.i18n import gettext as _
from portal.core.security import DOWNLOAD_CSP
from portal.core.service import Refused, ServiceError
from portal.core.timeutil import today_jst
from portal.core.web import client_ip, settings
from portal.dialogue import services as dialogue
from portal.dialogue.models import EXTERNAL
from portal.encryption.opener import current_keyring
from portal.informs import services as informs
from portal.informs.models import Inform
from portal.reports import content as C, services as reports, states as S
from portal.reports.models import Report

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def api(action, load=None, *, target=None, event: str | None = None, body: str = "json"):
    """The request path for an API route: bearer-token sign-in, the policy, one commit; a
    service's refusal answered as a problem."""
    return guarded(action, load, target=target, event=event, body=body, auth="bearer", answer=from_service_error)


# ---------------------------------------------------------------- the blueprint's own rules

@bp.before_request
def _rate_limit():
    limiter: Limiter = current_app.extensions["api_limiter"]
    wait = limiter.take(key_for(request.headers.get("Authorization"), request.remote_addr))
    if wait:
        return problem(429, _("Too many requests"), _("Slow down: try again after the time in Retry-After."),
                       reason="rate_limited", headers={"Retry-After": retry_after(wait)})
    return None


def init_app(app) -> None:
    app.extensions["api_limiter"] = Limiter(app.config["SETTINGS"].api_rate_per_minute)
    # The app's error pages are HTML; under /api/ they are problem documents (portal.core.errors).
    app.extensions["api_problem"] = from_http_error


# ---------------------------------------------------------------- parsing

def _json_body() -> object:
    if request.mimetype != "application/json":
        raise _Refused(415, _("Send the body as application/json."), "unsupported_media_type")
    try:
        return json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, RecursionError):
        raise _Refused(400, _("The body is not valid JSON."), "bad_json") from None


class _Refused(ServiceError):
    def __init__(self, status: int, message: str, reason: str, field: str | None = None):
        super().__init__(message, reason=reason, field=field)
        self.status = status


def _parse(model: type[BaseModel], data: object):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = {}
        for err in e.errors(include_url=False, include_input=False):
            name = ".".join(str(p) for p in err["loc"]) or "body"
            errors.setdefault(name, err["msg"])
        raise FieldErrors(errors, reason="schema") from None


def _json(model: BaseModel, status: int = 200, headers: dict | None = None) -> Response:
    resp = Response(model.model_dump_json(), status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _ctx() -> dict:
    return dict(subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip())


# ---------------------------------------------------------------- the document

@bp.route("/openapi.json")
@public
def openapi():
    """The OpenAPI 3.1 document, generated from the routes and models below."""
    resp = Response(json.dumps(document(current_app), ensure_ascii=False), mimetype="application/json")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


# ---------------------------------------------------------------- catalogue

@bp.route("/technologies")
@operation("GET", "The designated technologies in force today (the codes a report's `technology` takes).",
           responses={200: M.TechnologyList}, tag="catalogue")
@api(Action.REPORT_LIST)
def technologies():
    items = [M.Technology(code=t.code, name_ja=t.name_ja, name_en=t.name_en, effective_from=t.effective_from,
                          effective_until=t.effective_until)
             for t in reports.technologies_in_force(db.session(), today_jst())]
    return _json(M.TechnologyList(items=items))


# ---------------------------------------------------------------- reports

def _load(report_id: int) -> Report | None:
    return by_id(Report, report_id)


def _own_org():
    return OrgTarget(current_user.organisation_id)


def etag(report: Report) -> str:
    h = hashlib.sha256(f"{report.id}:{report.status}:{report.version_count}:{report.updated_at.isoformat()}:"
                       .encode() + json.dumps(report.draft_data, sort_keys=True).encode()).hexdigest()
    return f'"{h[:32]}"'


def _report_body(report: Report) -> M.Report:
    s = db.session()
    editable = report.status in (S.DRAFT, S.RETURNED)
    if editable:
        content = report.draft_data
        findings = reports.check_for_submission(s, report, today_jst())
        warnings = {k: str(v) for k, v in findings.warnings.items()}
        incomplete = findings.incomplete_steps
    else:
        vs = reports.versions(s, report)
        content = vs[-1].data if vs else report.draft_data
        warnings, incomplete = {}, []
    fields = [f for step in C.STEPS for f in C.STEP_FIELDS[step]]
    return M.Report(id=report.id, reference=report.reference, status=report.status,
                    classification=report.classification, version_count=report.version_count,
                    created_at=report.created_at, updated_at=report.updated_at, submitted_at=report.submitted_at,
                    closed_at=report.closed_at, response_due=report.response_due,
                    content={k: content.get(k) for k in fields}, warnings=warnings, incomplete_steps=incomplete)


def _report_response(report: Report, status: int = 200, *, warnings: dict | None = None) -> Response:
    body = _report_body(report)
    if warnings:
        body.warnings.update(warnings)
    headers = {"ETag": etag(report)}
    if status == 201:
        headers["Location"] = url_for("api.get_report", report_id=report.id)
    return _json(body, status, headers)


def _replayed(record) -> Response:
    """The answer to a request repeated with its Idempotency-Key: the resource it made or
    acted on, as it is now."""
    kind, _sep, ident = record.resource.partition(":")
    obj = {"report": Report, "attachment": Attachment, "message": None, "inform": Inform}.get(kind)
    if kind == "message":
        from portal.dialogue.models import Message

        obj = Message
    row = db.session().get(obj, int(ident)) if obj is not None else None
    if row is None:
        raise _Refused(409, _("What this request made no longer exists."), "idempotent_target_gone")
    # Read again as any read would be: the user's clearance may have changed since.
    decision = check({"report": Action.REPORT_VIEW, "attachment": Action.ATTACHMENT_DOWNLOAD,
                      "message": Action.MESSAGE_READ, "inform": Action.INFORM_VIEW}[kind], row)
    if not decision.allowed:
        raise Refused(_("You are not allowed to do this."), reason=decision.reason, conceal=decision.conceal)
    if kind == "report":
        resp = _report_response(row, record.status)
    elif kind == "attachment":
        resp = _json(_attachment_body(row), record.status)
    elif kind == "message":
        resp = _json(_message_body(row), record.status)
    else:
        resp = _json(_inform_body(row), record.status)
    if record.location:
        resp.headers["Location"] = record.location
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


@bp.route("/reports", methods=["GET"])
@operation("GET", "The organisation's reports the token's user may read, newest change first, with filters and a "
                  "cursor.", query=M.ListQuery, responses={200: M.ReportList}, tag="reports")
@api(Action.REPORT_LIST)
def list_reports():
    q = _parse(M.ListQuery, request.args.to_dict(flat=True))
    after = _cursor(q.cursor) if q.cursor else None
    subject = current_subject()
    rows, more = reports.org_reports_after(db.session(), subject, status=q.status, technology=q.technology,
                                           after=after, limit=q.limit)
    today = today_jst()
    # Every row shown is one the policy allows (the SQL filter mirrors it; this proves it).
    shown = [r for r in rows if reports.decide(subject, Action.REPORT_VIEW, r, today=today).allowed]
    href = url_for("api.get_report", report_id=0)[:-1]
    items = [M.ReportSummary(id=r.id, reference=r.reference, status=r.status, title=r.title,
                             technology=r.technology_code, classification=r.classification,
                             destination_country=r.destination_country,
                             planned_transfer_date=r.planned_transfer_date, submitted_at=r.submitted_at,
                             updated_at=r.updated_at, url=f"{href}{r.id}") for r in shown]
    nxt = _encode_cursor(rows[-1].updated_at, rows[-1].id) if more and rows else None
    return _json(M.ReportList(items=items, next_cursor=nxt))


def _encode_cursor(at: datetime, ident: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), ident]).encode()).decode().rstrip("=")


def _cursor(text: str) -> tuple[datetime, int]:
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(ident, int) or not 0 < ident < 2**31:
            raise ValueError
        return when, ident
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise _Refused(400, _("The cursor is not one this API gave. Start again without it."), "bad_cursor",
                       field="cursor") from None


@bp.route("/reports", methods=["POST"])
@operation("POST", "Create a draft, optionally with its first content.", body=M.ReportFields,
           responses={201: M.Report}, tag="reports", etag=True)
@api(Action.REPORT_CREATE, load=_own_org, event="report.create")
def create_report(obj: OrgTarget):
    fields = _parse(M.ReportFields, _json_body()).model_dump(exclude_unset=True, mode="json")
    earlier = idempotency.begin(idempotency.fingerprint(fields))
    if earlier is not None:
        return _replayed(earlier)
    ctx = _ctx()
    r = reports.create_draft(db.session(), subject=ctx["subject"], actor=current_user, today=ctx["today"],
                             ip=ctx["ip"])
    warnings = drafts.apply(r, fields, **ctx) if fields else {}
    db.session().flush()
    location = url_for("api.get_report", report_id=r.id)
    idempotency.remember(201, f"report:{r.id}", location)
    return _report_response(r, 201, warnings=warnings)


@bp.route("/reports/<int:report_id>", methods=["GET"])
@operation("GET", "A report: its working copy while a draft or returned, else its latest submitted version.",
           responses={200: M.Report}, tag="reports", etag=True)
@api(Action.REPORT_VIEW, load=_load)
def get_report(obj: Report):
    audit("report.view", target_type="report", target_id=obj.id, case_ref=obj.reference, org_id=obj.organisation_id)
    return _report_response(obj)


def _hold(report: Report) -> None:
    """Lock the report (PostgreSQL) and read it afresh, so that the ETag compared is the one
    about to be overwritten and two systems cannot both pass the same If-Match."""
    s = db.session()
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(Report.id).where(Report.id == report.id).with_for_update())
    s.refresh(report)


def _precondition(report: Report, *, required: bool) -> None:
    want = request.headers.get("If-Match")
    if want is None:
        if required:
            raise _Refused(428, _("Send the report's ETag in If-Match, so that a change made meanwhile is not "
                                  "overwritten."), "if_match_missing")
        return
    if want.strip() != "*" and etag(report) not in [t.strip() for t in want.split(",")]:
        raise _Refused(412, _("The report has changed since you read it. Read it again and apply your change to "
                              "what it holds now."), "etag_mismatch")


@bp.route("/reports/<int:report_id>", methods=["PATCH"])
@operation("PATCH", "Change a draft (or a report returned for correction). Requires If-Match.",
           body=M.ReportFields, responses={200: M.Report}, tag="reports", etag=True, if_match="required")
@api(Action.REPORT_EDIT, load=_load, target=Report.working_copy_labels, event="report.draft.save")
def update_report(obj: Report):
    fields = _parse(M.ReportFields, _json_body()).model_dump(exclude_unset=True, mode="json")
    _hold(obj)
    _precondition(obj, required=True)
    if obj.status not in (S.DRAFT, S.RETURNED):
        raise _Refused(409, _("This report has been submitted and can no longer be changed."), "not_editable")
    warnings = drafts.apply(obj, fields, **_ctx())
    db.session().flush()
    return _report_response(obj, warnings=warnings)


@bp.route("/reports/<int:report_id>/submit", methods=["POST"])
@operation("POST", "Submit a draft (or resubmit a returned report), as the web's check page does. If-Match is "
                   "honoured when sent.", body=M.SubmitIn, responses={200: M.Report}, tag="reports", etag=True,
           if_match="optional")
@api(Action.REPORT_SUBMIT, load=_load, target=Report.working_copy_labels, event="report.submit")
def submit_report(obj: Report):
    body = _parse(M.SubmitIn, _json_body())
    earlier = idempotency.begin(idempotency.fingerprint(obj.id, body.model_dump()))
    if earlier is not None:
        return _replayed(earlier)
    _hold(obj)
    _precondition(obj, required=False)
    name = "resubmit" if obj.status == S.RETURNED else "submit"
    s = db.session()
    findings = reports.check_for_submission(s, obj, today_jst())
    if obj.status in (S.DRAFT, S.RETURNED) and (findings.errors or findings.incomplete_steps):
        errors = {k: str(v) for k, v in findings.errors.items()}
        for step in findings.incomplete_steps:
            for f in C.REQUIRED[step]:
                if obj.draft_data.get(f) in (None, "", []):
                    errors.setdefault(f, _("This field is required before the report can be submitted."))
        raise FieldErrors(errors, reason="incomplete")
    reports.transition(s, obj, name, **_ctx())
    idempotency.remember(200, f"report:{obj.id}", None)
    return _report_response(obj)


@bp.route("/reports/<int:report_id>/withdraw", methods=["POST"])
@operation("POST", "Withdraw a submitted report, with the reason.", body=M.WithdrawIn, responses={200: M.Report},
           tag="reports", etag=True)
@api(Action.REPORT_WITHDRAW, load=_load, event="report.withdraw")
def withdraw_report(obj: Report):
    body = _parse(M.WithdrawIn, _json_body())
    earlier = idempotency.begin(idempotency.fingerprint(obj.id, body.model_dump()))
    if earlier is not None:
        return _replayed(earlier)
    reports.transition(db.session(), obj, "withdraw", comment=body.comment, **_ctx())
    idempotency.remember(200, f"report:{obj.id}", None)
    return _report_response(obj)


# ---------------------------------------------------------------- attachments

def _attachment_body(a: Attachment) -> M.Attachment:
    return M.Attachment(id=a.id, filename=a.filename, content_type=a.content_type, size=a.size, sha256=a.sha256,
                        classification=a.classification, version=a.version, uploaded_at=a.created_at,
                        download_url=url_for("api.download_attachment", attachment_id=a.id))


@bp.route("/reports/<int:report_id>/attachments", methods=["GET"])
@operation("GET", "The report's files the token's user may download.", responses={200: M.AttachmentList},
           tag="attachments")
@api(Action.REPORT_VIEW, load=_load)
def list_attachments(obj: Report):
    files = attachments.list_for_report(db.session(), obj, subject=current_subject(), today=today_jst())
    return _json(M.AttachmentList(items=[_attachment_body(a) for a in files if a.message_id is None]))


@bp.route("/reports/<int:report_id>/attachments", methods=["POST"])
@operation("POST", "Attach a file to a draft or returned report (multipart/form-data, streamed and encrypted "
                   "as it arrives; the web's formats and size limit).", body=M.UploadForm, body_kind="multipart",
           responses={201: M.Attachment}, tag="attachments", extra_statuses=(413,))
@api(Action.ATTACHMENT_UPLOAD, load=_load, target=lambda r: r.working_copy_labels(), event="attachment.upload",
     body="stream")
def upload_attachment(obj: Report):
    if request.mimetype != "multipart/form-data":
        raise _Refused(415, _("Send the file as multipart/form-data, in the part named “file”."),
                       "unsupported_media_type")
    store = attachments.store_for(settings(), db.session)
    received = None
    try:
        received = web.receive(store, settings().max_upload_bytes)
        if received.sink is None:
            raise web.UploadRefused(_("Choose a file to upload."), "no_file")
        classification = received.form.get("classification") or obj.classification
        earlier = idempotency.begin(idempotency.fingerprint(
            obj.id, received.filename, classification, received.sink.size, received.sink.encryptor.plaintext_sha256))
        if earlier is not None:
            received.abort()
            return _replayed(earlier)
        _hold(obj)
        att = attachments.store_upload(db.session(), current_keyring(), received.sink, report=obj,
                                       filename=received.filename or "", classification=classification, **_ctx())
        location = url_for("api.download_attachment", attachment_id=att.id)
        idempotency.remember(201, f"attachment:{att.id}", location)
    except BaseException:
        if received is not None:
            received.abort()
        raise
    return _json(_attachment_body(att), 201, {"Location": location})


def _load_attachment(attachment_id: int):
    return by_id(Attachment, attachment_id)


@bp.route("/attachments/<int:attachment_id>")
@operation("GET", "Download a file (decrypted as it streams out).", responses={200: "binary"}, tag="attachments")
@api(Action.ATTACHMENT_DOWNLOAD, load=_load_attachment)
def download_attachment(obj: Attachment):
    store = attachments.store_for(settings(), db.session)
    audit("attachment.download.start", target_type="attachment", target_id=obj.id, case_ref=obj.report.reference,
          org_id=obj.report.organisation_id, details={"sha256": obj.sha256})
    try:
        chunks = attachments.plaintext(store, current_keyring(), obj)
    except attachments.BlobUnreadable as e:
        raise _Refused(503, _("This file cannot be read at the moment. The administrators have been told."),
                       e.reason) from None
    return _file(audited_stream(chunks, "attachment.download", obj=obj, integrity_errors=(DecryptionError,),
                                sha256=obj.sha256), obj.filename, obj.content_type.split(";")[0], obj.size,
                 sha256=obj.sha256)


def _file(body, name: str, mimetype: str, size: int, *, sha256: str | None) -> Response:
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    resp = Response(body, mimetype=mimetype, direct_passthrough=True)
    resp.headers["Content-Length"] = str(size)
    resp.headers["Content-Disposition"] = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    if sha256:
        resp.headers["X-Content-SHA256"] = sha256
    return resp


# ---------------------------------------------------------------- the external channel

def _load_channel(report_id: int):
    return dialogue.channel_of(db.session(), by_id(Report, report_id), EXTERNAL)


def _message_body(m) -> M.Message:
    return M.Message(id=m.id, author=m.author.name if m.author is not None else "",
                     from_government=m.author is not None and m.author.role_enum is not None
                     and not m.author.role_enum.is_company,
                     body=m.body, classification=m.classification, is_request=m.is_request, due_date=m.due_date,
                     reply_to=m.reply_to_id, created_at=m.created_at)


@bp.route("/reports/<int:report_id>/messages", methods=["GET"])
@operation("GET", "The case's external channel with METI (reading marks it read, as on the web).",
           responses={200: M.MessageList}, tag="messages")
@api(Action.MESSAGE_READ, load=_load_channel)
def list_messages(obj):
    report = obj.report
    s = db.session()
    if report.status == S.DRAFT:
        return _json(M.MessageList(items=[]))
    subject, today = current_subject(), today_jst()
    msgs = [m for m in dialogue.thread(s, report, EXTERNAL)
            if dialogue.decide(subject, Action.MESSAGE_READ, m, today=today).allowed]
    dialogue.mark_read(s, current_user.id, report, EXTERNAL, msgs, role=current_user.role)
    return _json(M.MessageList(items=[_message_body(m) for m in msgs]))


@bp.route("/reports/<int:report_id>/messages", methods=["POST"])
@operation("POST", "Post a message to METI; while METI awaits information, this is the answer (the report "
                   "goes back to review, as on the web).", body=M.MessageIn, responses={201: M.Message},
           tag="messages")
@api(Action.MESSAGE_POST, load=_load_channel, event="message.post")
def post_message(obj):
    body = _parse(M.MessageIn, _json_body())
    earlier = idempotency.begin(idempotency.fingerprint(obj.report.id, body.model_dump()))
    if earlier is not None:
        return _replayed(earlier)
    msg = dialogue.post(db.session(), obj.report, channel=EXTERNAL, body=body.body,
                        classification=body.classification, reply_to=body.reply_to, due=None, request=False,
                        base_url=settings().base_url, **_ctx())
    idempotency.remember(201, f"message:{msg.id}", None)
    return _json(_message_body(msg), 201)


# ---------------------------------------------------------------- informs

def _inform_body(i: Inform) -> M.Inform:
    has_notice = i.status in ("issued", "revoked") and bool(i.notice_blob_key)
    return M.Inform(id=i.id, number=i.number, status=i.status, legal_basis=i.legal_basis, reasons=i.reasons,
                    conditions=i.conditions, issued_at=i.issued_at, acknowledged_at=i.acknowledged_at,
                    notice_url=url_for("api.inform_notice", inform_id=i.id) if has_notice else None,
                    notice_sha256=i.notice_sha256 if has_notice else None)


@bp.route("/reports/<int:report_id>/informs", methods=["GET"])
@operation("GET", "The informs issued on the case.", responses={200: M.InformList}, tag="informs")
@api(Action.INFORM_VIEW, load=_load)
def list_informs(obj: Report):
    views = informs.readable(db.session(), obj, subject=current_subject(), today=today_jst())
    return _json(M.InformList(items=[_inform_body(v.inform) for v in views]))


def _load_inform(inform_id: int):
    return by_id(Inform, inform_id)


@bp.route("/informs/<int:inform_id>/notice")
@operation("GET", "The official notice (PDF, Japanese), the same bytes as on the web.", responses={200: "pdf"},
           tag="informs")
@api(Action.INFORM_VIEW, load=_load_inform)
def inform_notice(obj: Inform):
    if obj.status not in ("issued", "revoked") or not obj.notice_blob_key:
        raise _Refused(404, _("This inform has no notice."), "no_notice")
    audit("inform.notice.download.start", target_type="inform", target_id=obj.id, case_ref=obj.report.reference,
          org_id=obj.report.organisation_id, details={"lang": "ja"})
    try:
        chunks = informs.notice_stream(attachments.store_for(settings(), db.session), current_keyring(), obj)
    except attachments.BlobUnreadable as e:
        raise _Refused(503, _("This file cannot be read at the moment. The administrators have been told."),
                       e.reason) from None
    body = audited_stream(chunks, "inform.notice.download", obj=obj, integrity_errors=(DecryptionError,), lang="ja")
    return _file(body, f"{obj.number}.pdf", "application/pdf", obj.notice_size or 0, sha256=obj.notice_sha256)


@bp.route("/informs/<int:inform_id>/acknowledge", methods=["POST"])
@operation("POST", "Acknowledge receipt of an issued inform.", body=M.AcknowledgeIn, responses={200: M.Inform},
           tag="informs")
@api(Action.INFORM_ACKNOWLEDGE, load=_load_inform, event="inform.acknowledge")
def acknowledge_inform(obj: Inform):
    body = _parse(M.AcknowledgeIn, _json_body())
    earlier = idempotency.begin(idempotency.fingerprint(obj.id, body.model_dump()))
    if earlier is not None:
        return _replayed(earlier)
    informs.acknowledge(db.session(), obj, **_ctx())
    idempotency.remember(200, f"inform:{obj.id}", None)
    return _json(_inform_body(obj))

