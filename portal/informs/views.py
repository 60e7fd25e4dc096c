from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db
from portal.access.policy import Action
from portal.attachments import services as attachments
from crypto import DecryptionError
from portal.core.guard import audit, audited_stream, by_id, current_subject, failed, guarded, public
from portal.core.i18n import gettext as _
from portal.core.security import DOWNLOAD_CSP
from portal.core.service import Refused, ServiceError
from portal.core.timeutil import today_jst
from portal.core.web import client_ip, settings
from portal.encryption.opener import current_keyring
from portal.informs import services
from portal.informs.forms import AckForm, ConfirmForm, DecisionForm, InformForm, LicenceForm, RejectForm, RevokeForm
from portal.informs.models import Inform
from portal.reports import case_forms
from portal.reports.models import Report

bp = Blueprint("informs", __name__)
log = logging.getLogger(__name__)


def _load_report(report_id: int):
    return by_id(Report, report_id)


def _load(inform_id: int):
    return by_id(Inform, inform_id)


def _case(obj) -> str:
    return url_for("reports.show", report_id=obj.report_id if isinstance(obj, Inform) else obj.id, _anchor="inform")


def _common():
    return dict(subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip())


def _show_again(report: Report, event: str, key: str, form, error: ServiceError):
    """The case page again (400) with what was typed kept and the error beside its field: the
    form's own validation errors, or the service's refusal put on the field it names."""
    if error.field and error.field in form._fields:
        fld = form._fields[error.field]
        fld.errors = [*fld.errors, error.message]
        form._errors = None
    return case_forms.show_again(report, event, error, **{key: form})


def _incomplete(message: str) -> ServiceError:
    return ServiceError(message, reason="invalid_input")


def _draft_form(report: Report, inform: Inform | None = None) -> InformForm:
    """The posted draft, offering (and accepting) only the classifications this person may
    give the rationale."""
    form = InformForm()
    form.rationale_classification.choices = services.rationale_choices(
        report, inform, subject=current_subject(), today=today_jst())
    return form


def _save_draft(report: Report, inform: Inform | None, event: str, key: str, save):
    """Drafting and editing take the same fields: ``save`` gets them once the form is
    complete. Returns the case page again when the form or the service refused what it holds."""
    form = _draft_form(report, inform)
    if not form.validate_on_submit():
        return _show_again(report, event, key, form,
                           _incomplete(_("Complete the inform draft: legal basis, reasons and internal rationale.")))
    try:
        save({name: getattr(form, name).data for name in
              ("legal_basis", "reasons", "conditions", "internal_rationale", "rationale_classification")})
    except Refused:
        raise
    except ServiceError as e:
        if not e.field:
            raise
        return _show_again(report, event, key, form, e)
    return None


@bp.route("/reports/<int:report_id>/informs", methods=["POST"])
@guarded(Action.INFORM_DRAFT, load=_load_report, event="inform.draft", back=_case)
def create(obj: Report):
    refused = _save_draft(obj, None, "inform.draft", "inform_draft",
                          lambda fields: services.draft(db.session(), obj, **fields, **_common()))
    if refused is not None:
        return refused
    flash(_("The inform has been drafted. Send it for approval when it is ready."), "success")
    return redirect(_case(obj))


@bp.route("/informs/<int:inform_id>/edit", methods=["POST"])
@guarded(Action.INFORM_DRAFT, load=_load, event="inform.edit", back=_case)
def edit(obj: Inform):
    refused = _save_draft(obj.report, obj, "inform.edit", f"inform_edit_{obj.id}",
                          lambda fields: services.update(db.session(), obj, **fields, **_common()))
    if refused is not None:
        return refused
    flash(_("The draft has been saved."), "success")
    return redirect(_case(obj))


@bp.route("/informs/<int:inform_id>/send", methods=["POST"])
@guarded(Action.INFORM_DRAFT, load=_load, event="inform.send_for_approval", back=_case)
def send(obj: Inform):
    if not DecisionForm().validate_on_submit():
        abort(400)
    services.send_for_approval(db.session(), obj, base_url=settings().base_url, **_common())
    flash(_("The draft has been sent for approval."), "success")
    return redirect(_case(obj))


def _confirm_page(obj) -> str:
    return url_for("informs.confirm", inform_id=obj.id)


@bp.route("/informs/<int:inform_id>/confirm")
@guarded(Action.INFORM_APPROVE, load=_load, back=_case)
def confirm(obj: Inform):
    """The notice as it will be sent, and the only form that issues it."""
    services.may_decide(obj, subject=current_subject(), actor=current_user, today=today_jst())
    if obj.status != "pending_approval":
        flash(_("This inform is not awaiting approval."), "error")
        return redirect(_case(obj))
    from portal.informs.notice import outline

    s = db.session()
    form = ConfirmForm(confirmed=services.confirmation(obj))
    notice = services.notice_data(s, obj, "ja", preview_on=today_jst())
    return render_template("informs/confirm.html", inform=obj, report=obj.report, form=form, notice=notice,
                           notice_outline=outline(notice, "ja"))


@bp.route("/informs/<int:inform_id>/preview.pdf")
@guarded(Action.INFORM_APPROVE, load=_load, back=_case)
def preview(obj: Inform):
    data = services.preview_pdf(db.session(), obj, subject=current_subject(), actor=current_user, today=today_jst())
    resp = Response(data, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'inline; filename="preview-{obj.id}.pdf"'
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    return resp


@bp.route("/informs/<int:inform_id>/approve", methods=["POST"])
@guarded(Action.INFORM_APPROVE, load=_load, event="inform.approve", back=_confirm_page)
def approve(obj: Inform):
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    store = attachments.store_for(settings(), db.session)
    try:
        # On return the sealed notice is complete in the store, before the row naming it commits.
        inform = services.approve(db.session(), obj, comment=form.comment.data, confirmed=form.confirmed.data,
                                  store=store, keyring=current_keyring(), base_url=settings().base_url,
                                  settings=settings(), **_common())
    except BaseException:
        sink = getattr(obj, "_pending_sink", None)
        if sink is not None:
            sink.abort()
        raise
    flash(_("The inform %(number)s has been issued and the company notified.", number=inform.number), "success")
    return redirect(_case(obj))


@bp.route("/informs/<int:inform_id>/reject", methods=["POST"])
@guarded(Action.INFORM_APPROVE, load=_load, event="inform.reject", back=_case)
def reject(obj: Inform):
    form = RejectForm()
    if not form.validate_on_submit():
        return _show_again(obj.report, "inform.reject", "inform_reject", form,
                           _incomplete(_("The reason for rejecting is too long.")))
    services.reject(db.session(), obj, comment=form.comment.data, **_common())
    flash(_("The draft has been rejected and returned to the drafter."), "success")
    return redirect(_case(obj))


@bp.route("/informs/<int:inform_id>/acknowledge", methods=["POST"])
@guarded(Action.INFORM_ACKNOWLEDGE, load=_load, event="inform.acknowledge", back=_case)
def acknowledge(obj: Inform):
    form = AckForm()
    if not form.validate_on_submit():
        return _show_again(obj.report, "inform.acknowledge", "inform_ack", form,
                           _incomplete(_("Confirm that you have received the notice.")))
    services.acknowledge(db.session(), obj, **_common())
    flash(_("You have acknowledged receipt of the inform."), "success")
    return redirect(_case(obj))


@bp.route("/informs/<int:inform_id>/licence", methods=["POST"])
@guarded(Action.INFORM_ACKNOWLEDGE, load=_load, event="inform.licence_application", back=_case)
def licence(obj: Inform):
    form = LicenceForm()
    if not form.validate_on_submit():
        return _show_again(obj.report, "inform.licence_application", "inform_licence", form,
                           _incomplete(_("Enter the reference of your licence application.")))
    try:
        services.record_licence_application(db.session(), obj, form.licence_application_ref.data, **_common())
    except Refused:
        raise
    except ServiceError as e:
        if not e.field:
            raise
        return _show_again(obj.report, "inform.licence_application", "inform_licence", form, e)
    flash(_("The licence application reference has been recorded."), "success")
    return redirect(_case(obj))


@bp.route("/informs/<int:inform_id>/revoke", methods=["POST"])
@guarded(Action.INFORM_REVOKE, load=_load, event="inform.revoke", back=_case)
def revoke(obj: Inform):
    form = RevokeForm()
    if not form.validate_on_submit():
        return _show_again(obj.report, "inform.revoke", "inform_revoke", form,
                           _incomplete(_("Enter the reason for the revocation.")))
    services.revoke(db.session(), obj, reason=form.reason.data, base_url=settings().base_url, **_common())
    flash(_("The inform has been revoked and the company notified."), "success")
    return redirect(_case(obj))


@bp.route("/informs/<int:inform_id>/notice.pdf")
@guarded(Action.INFORM_VIEW, load=_load)
def notice(obj: Inform):
    if obj.status not in ("issued", "revoked") or not obj.notice_blob_key:
        abort(404)
    lang = request.args.get("lang", "ja")
    if lang not in ("ja", "en"):
        abort(404)
    audit("inform.notice.download.start", target_type="inform", target_id=obj.id, case_ref=obj.report.reference,
          org_id=obj.report.organisation_id, details={"lang": lang})
    if services.stored(obj, lang):
        # The stored notice: the same bytes for the company and the auditors, always, and only
        # once they have been checked against their SHA-256 and their signature.
        check = _checked(obj, lang)
        if check.status == "unreadable":
            return _unreadable(attachments.BlobUnreadable(check.reason, "the notice blob cannot be read"), obj, lang)
        if not check.servable:
            return _damaged(check, obj, lang)
        body = audited_stream([check.data], "inform.notice.download", obj=obj, integrity_errors=(DecryptionError,),
                              lang=lang)
        size = len(check.data)
    else:  # an English notice of an inform issued before it was stored: rendered now, unsigned
        data = services.notice_pdf(db.session(), obj, "en")
        body, size = audited_stream([data], "inform.notice.download", obj=obj, lang=lang), len(data)
    resp = Response(body, mimetype="application/pdf", direct_passthrough=True)
    resp.headers["Content-Length"] = str(size)
    resp.headers["Content-Disposition"] = f'attachment; filename="{obj.number}{"" if lang == "ja" else "-en"}.pdf"'
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    if services.stored(obj, lang):
        resp.headers["X-Content-SHA256"] = services.notice_sha256(obj, lang)
    return resp


def _checked(obj: Inform, lang: str = "ja") -> services.NoticeCheck:
    return services.check_stored_notice(attachments.store_for(settings(), db.session), current_keyring(), settings(),
                                        obj, lang)


def _damaged(check: services.NoticeCheck, obj: Inform, lang: str):
    """A stored notice that fails its SHA-256 or its signature is never served: the failure
    is audited (instead of the download) and logged for the administrators."""
    log.error("inform %s: stored notice %s (%s)", obj.id, check.status, check.reason)
    failed(ServiceError(_("The stored notice is damaged and is not served."), reason=f"notice_{check.reason}"),
           "inform.notice.download", obj, details={"lang": lang})
    audit("inform.notice.damaged", outcome="failure", reason=check.reason, target_type="inform", target_id=obj.id,
          case_ref=obj.report.reference, org_id=obj.report.organisation_id, details={"lang": lang})
    return render_template("errors/generic.html", code=500, title=_("The notice is damaged"),
                           message=_("The stored notice failed its integrity check and is not served. "
                                     "The administrators have been told.")), 500


@bp.route("/informs/<int:inform_id>/notice")
@guarded(Action.INFORM_VIEW, load=_load)
def notice_page(obj: Inform):
    """The issued notice: its signature checked now, its revocation, and how to verify it."""
    if obj.status not in ("issued", "revoked") or not obj.notice_blob_key:
        abort(404)
    checks = {lang: _checked(obj, lang) for lang in services.NOTICE_LANGS if services.stored(obj, lang)}
    for lang, check in checks.items():
        if not check.servable:
            log.error("inform %s: stored %s notice %s (%s)", obj.id, lang, check.status, check.reason)
            audit("inform.notice.damaged", outcome="failure", reason=check.reason, target_type="inform",
                  target_id=obj.id, case_ref=obj.report.reference, org_id=obj.report.organisation_id,
                  details={"lang": lang})
    check = checks["ja"]
    return render_template("informs/notice.html", inform=obj, report=obj.report, check=check,
                           verdict=check.verdict, check_en=checks.get("en"))


@bp.route("/notices/ca.pem")
@public
def ca_certificate():
    """The CA certificate companies verify a notice's signature against."""
    from portal.informs import signing

    pem = signing.ca_pem(settings())
    if pem is None:
        abort(404)
    resp = Response(pem, mimetype="application/x-pem-file")
    resp.headers["Content-Disposition"] = 'attachment; filename="notice-ca.pem"'
    resp.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    return resp


def _unreadable(e, obj: Inform, lang: str):
    """The portal's error page, before any byte of the notice: the failure is recorded (instead
    of the start) and logged for the administrators."""
    log.error("inform %s: notice blob unreadable (%s): %s", obj.id, e.reason, e)
    failed(ServiceError(_("This file cannot be read at the moment. The administrators have been told."),
                        reason=e.reason), "inform.notice.download", obj, details={"lang": lang})
    return render_template("errors/generic.html", code=500, title=_("Something went wrong"),
                           message=_("This file cannot be read at the moment. The administrators have been told.")), 500
