from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal import db
from portal.access.policy import Action
from portal.attachments import services as attachments
from portal.attachments.keys import current_keyring
from portal.core.guard import audit, current_subject, guarded
from portal.core.service import ServiceError
from portal.core.timeutil import today_jst
from portal.core.web import client_ip, settings
from portal.informs import services
from portal.informs.forms import AckForm, DecisionForm, InformForm, LicenceForm, RevokeForm
from portal.informs.models import Inform
from portal.reports.models import Report

bp = Blueprint("informs", __name__)


def _load_report(report_id: int):
    return db.session().get(Report, report_id)


def _load(inform_id: int):
    return db.session().get(Inform, inform_id)


def _back(report_id: int):
    return redirect(url_for("reports.show", report_id=report_id, _anchor="inform"))


def _run(action: str, report_id: int, fn):
    """Call a service; refusals are audited and explained, nothing is left half-done."""
    try:
        result = fn()
        db.commit()
        return True, result
    except services.Refused as e:
        db.rollback()
        audit(f"inform.{action}", outcome="denied", reason=e.reason, target_type="report", target_id=report_id)
        db.commit()
        if e.conceal:
            abort(404)
        if e.reason == "four_eyes":
            flash(e.message, "error")
            return False, None
        abort(403)
    except ServiceError as e:
        db.rollback()
        audit(f"inform.{action}", outcome="failure", reason=e.reason, target_type="report", target_id=report_id)
        db.commit()
        flash(e.message, "error")
        return False, None


def _common():
    return dict(subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip())


@bp.route("/reports/<int:report_id>/informs", methods=["POST"])
@guarded(Action.REPORT_VIEW, load=_load_report)
def create(obj: Report):
    form = InformForm()
    if not form.validate_on_submit():
        flash(_("Complete the inform draft: legal basis, reasons and internal rationale."), "error")
        return _back(obj.id)
    ok, _r = _run("draft", obj.id, lambda: services.draft(
        db.session(), obj, legal_basis=form.legal_basis.data, reasons=form.reasons.data,
        conditions=form.conditions.data, internal_rationale=form.internal_rationale.data,
        rationale_classification=form.rationale_classification.data, **_common()))
    if ok:
        flash(_("The inform has been drafted. Send it for approval when it is ready."), "success")
    return _back(obj.id)


@bp.route("/informs/<int:inform_id>/edit", methods=["POST"])
@guarded(Action.INFORM_DRAFT, load=_load)
def edit(obj: Inform):
    form = InformForm()
    if not form.validate_on_submit():
        flash(_("Complete the inform draft: legal basis, reasons and internal rationale."), "error")
        return _back(obj.report_id)
    ok, _r = _run("edit", obj.report_id, lambda: services.update(
        db.session(), obj, legal_basis=form.legal_basis.data, reasons=form.reasons.data,
        conditions=form.conditions.data, internal_rationale=form.internal_rationale.data,
        rationale_classification=form.rationale_classification.data, **_common()))
    if ok:
        flash(_("The draft has been saved."), "success")
    return _back(obj.report_id)


@bp.route("/informs/<int:inform_id>/send", methods=["POST"])
@guarded(Action.INFORM_DRAFT, load=_load)
def send(obj: Inform):
    if not DecisionForm().validate_on_submit():
        abort(400)
    ok, _r = _run("send_for_approval", obj.report_id, lambda: services.send_for_approval(db.session(), obj, **_common()))
    if ok:
        flash(_("The draft has been sent for approval."), "success")
    return _back(obj.report_id)


@bp.route("/informs/<int:inform_id>/approve", methods=["POST"])
@guarded(Action.INFORM_VIEW, load=_load)
def approve(obj: Inform):
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400)
    store = attachments.store_for(settings(), db.session)
    try:
        ok, inform = _run("approve", obj.report_id, lambda: services.approve(
            db.session(), obj, comment=form.comment.data, store=store, keyring=current_keyring(),
            base_url=settings().base_url, **_common()))
    except Exception:
        # The commit failed after the notice was sealed: its blob must not outlive the rollback.
        sink = getattr(obj, "_pending_sink", None)
        if sink is not None:
            sink.abort()
        raise
    if not ok:
        sink = getattr(obj, "_pending_sink", None)
        if sink is not None:
            sink.abort()
        return _back(obj.report_id)
    inform._pending_sink.commit()
    flash(_("The inform %(number)s has been issued and the company notified.", number=inform.number), "success")
    return _back(obj.report_id)


@bp.route("/informs/<int:inform_id>/reject", methods=["POST"])
@guarded(Action.INFORM_VIEW, load=_load)
def reject(obj: Inform):
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400)
    ok, _r = _run("reject", obj.report_id, lambda: services.reject(db.session(), obj, comment=form.comment.data,
                                                                   **_common()))
    if ok:
        flash(_("The draft has been rejected and returned to the drafter."), "success")
    return _back(obj.report_id)


@bp.route("/informs/<int:inform_id>/acknowledge", methods=["POST"])
@guarded(Action.INFORM_VIEW, load=_load)
def acknowledge(obj: Inform):
    if not AckForm().validate_on_submit():
        flash(_("Confirm that you have received the notice."), "error")
        return _back(obj.report_id)
    ok, _r = _run("acknowledge", obj.report_id, lambda: services.acknowledge(db.session(), obj, **_common()))
    if ok:
        flash(_("You have acknowledged receipt of the inform."), "success")
    return _back(obj.report_id)


@bp.route("/informs/<int:inform_id>/licence", methods=["POST"])
@guarded(Action.INFORM_VIEW, load=_load)
def licence(obj: Inform):
    form = LicenceForm()
    if not form.validate_on_submit():
        flash(_("Enter the reference of your licence application."), "error")
        return _back(obj.report_id)
    ok, _r = _run("licence_application", obj.report_id, lambda: services.record_licence_application(
        db.session(), obj, form.licence_application_ref.data, **_common()))
    if ok:
        flash(_("The licence application reference has been recorded."), "success")
    return _back(obj.report_id)


@bp.route("/informs/<int:inform_id>/revoke", methods=["POST"])
@guarded(Action.INFORM_VIEW, load=_load)
def revoke(obj: Inform):
    form = RevokeForm()
    if not form.validate_on_submit():
        flash(_("Enter the reason for the revocation."), "error")
        return _back(obj.report_id)
    ok, _r = _run("revoke", obj.report_id, lambda: services.revoke(db.session(), obj, reason=form.reason.data,
                                                                   base_url=settings().base_url, **_common()))
    if ok:
        flash(_("The inform has been revoked and the company notified."), "success")
    return _back(obj.report_id)


@bp.route("/informs/<int:inform_id>/notice.pdf")
@guarded(Action.INFORM_VIEW, load=_load)
def notice(obj: Inform):
    if obj.status not in ("issued", "revoked") or not obj.notice_blob_key:
        abort(404)
    lang = request.args.get("lang", "ja")
    if lang not in ("ja", "en"):
        abort(404)
    audit("inform.notice.download", target_type="inform", target_id=obj.id, case_ref=obj.report.reference,
          org_id=obj.report.organisation_id, details={"lang": lang})
    db.commit()
    if lang == "ja":
        # The stored official notice: the same bytes for the company and the auditors, always.
        body = stream_with_context(services.notice_stream(attachments.store_for(settings(), db.session),
                                                          current_keyring(), obj))
        size = obj.notice_size
    else:
        data = services.notice_pdf(db.session(), obj, "en")
        body, size = [data], len(data)
    resp = Response(body, mimetype="application/pdf", direct_passthrough=True)
    resp.headers["Content-Length"] = str(size)
    resp.headers["Content-Disposition"] = f'attachment; filename="{obj.number}{"" if lang == "ja" else "-en"}.pdf"'
    resp.headers["Cache-Control"] = "no-store"
    if lang == "ja":
        resp.headers["X-Content-SHA256"] = obj.notice_sha256
    return resp
