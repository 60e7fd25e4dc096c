"""The security officer's console: personal clearances and facility clearances."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from portal import db
from portal.access import services
from portal.access.forms import FacilityForm, GrantForm, RevokeForm
from portal.access.policy import Action
from portal.access.subject import current_clearance
from portal.core.i18n import gettext as _, language
from portal.orgs.services import organisations, users
from portal.auth.models import User
from portal.catalogue.models import Technology
from portal.core.guard import by_id, failed, guarded, invalid_form
from portal.core.service import ServiceError
from portal.core.timeutil import today_jst
from portal.core.web import client_ip
from portal.orgs import services as org_services
from portal.orgs.models import Organisation

bp = Blueprint("access", __name__, url_prefix="/security")


def _technologies():
    return list(db.session().execute(select(Technology).order_by(Technology.code)).scalars())


def _grant_form(formdata=None) -> GrantForm:
    form = GrantForm(formdata) if formdata is not None else GrantForm()
    locale = language()
    form.compartments.choices = [(t.code, f"{t.code} {t.name(locale)}") for t in _technologies()]
    return form


@bp.route("/clearances")
@guarded(Action.CLEARANCES_ADMIN)
def clearances():
    s = db.session()
    rows = [(u, current_clearance(s, u.id)) for u in users(s, limit=500)]
    return render_template("access/clearances.html", rows=rows, today=today_jst(),
                           orgs=organisations(s))


def _load_user(user_id: int):
    return by_id(User, user_id)


def _render_user(target: User, grant_form=None, revoke_form=None, status=200):
    s = db.session()
    return render_template("access/user.html", target=target, current=current_clearance(s, target.id),
                           history=services.history(s, target.id), grant_form=grant_form or _grant_form(),
                           revoke_form=revoke_form or RevokeForm(), today=today_jst()), status


@bp.route("/clearances/<int:user_id>")
@guarded(Action.CLEARANCES_ADMIN)
def user(user_id: int):
    target = _load_user(user_id)
    if target is None:
        from flask import abort

        abort(404)
    cur = current_clearance(db.session(), target.id)
    form = _grant_form()
    if cur and not form.is_submitted():
        form.level.data = cur.level
        form.compartments.data = [t.code for t in cur.compartments]
    return _render_user(target, grant_form=form)


@bp.route("/clearances/<int:user_id>/grant", methods=["POST"])
@guarded(Action.CLEARANCE_GRANT, load=_load_user)
def grant(obj: User):
    form = _grant_form()
    if form.validate_on_submit():
        try:
            services.grant(db.session(), target=obj, level=form.level.data, compartments=form.compartments.data or [],
                           expires_on=form.expires_on.data, reason=form.reason.data, actor=current_user,
                           today=today_jst(), ip=client_ip())
            flash(_("The clearance has been granted. %(name)s has been signed out everywhere.", name=obj.name), "success")
            return redirect(url_for("access.user", user_id=obj.id))
        except ServiceError as e:
            failed(e, "clearance.grant", target_type="user", target_id=obj.id)
            getattr(form, e.field or "level").errors.append(e.message)
    else:
        invalid_form("clearance.grant", form, target_type="user", target_id=obj.id)
    return _render_user(obj, grant_form=form, status=400)


@bp.route("/clearances/<int:user_id>/revoke", methods=["POST"])
@guarded(Action.CLEARANCE_REVOKE, load=_load_user)
def revoke(obj: User):
    form = RevokeForm()
    if form.validate_on_submit():
        try:
            services.revoke(db.session(), target=obj, reason=form.reason.data, actor=current_user, ip=client_ip())
            flash(_("The clearance has been revoked. %(name)s has been signed out everywhere.", name=obj.name), "success")
            return redirect(url_for("access.user", user_id=obj.id))
        except ServiceError as e:
            failed(e, "clearance.revoke", target_type="user", target_id=obj.id)
            form.reason.errors.append(e.message)
    else:
        invalid_form("clearance.revoke", form, target_type="user", target_id=obj.id)
    return _render_user(obj, revoke_form=form, status=400)


def _load_org(org_id: int):
    return by_id(Organisation, org_id)


@bp.route("/organisations/<int:org_id>/facility", methods=["GET", "POST"])
@guarded(Action.FACILITY_CLEARANCE_MANAGE, load=_load_org)
def facility(obj: Organisation):
    form = FacilityForm(data={"valid_from": obj.facility_clearance_from, "valid_until": obj.facility_clearance_until}) \
        if not FacilityForm().is_submitted() else FacilityForm()
    status = 200
    if form.validate_on_submit():
        try:
            org_services.set_facility_clearance(db.session(), org=obj, valid_from=form.valid_from.data,
                                                valid_until=form.valid_until.data, actor=current_user, ip=client_ip())
            flash(_("The facility clearance has been saved."), "success")
            return redirect(url_for("access.clearances"))
        except ServiceError as e:
            failed(e, "org.facility_clearance.set", target_type="organisation", target_id=obj.id)
            getattr(form, e.field or "valid_until").errors.append(e.message)
            status = 400
    elif form.is_submitted():
        invalid_form("org.facility_clearance.set", form, target_type="organisation", target_id=obj.id)
        status = 400
    return render_template("access/facility.html", org=obj, form=form, today=today_jst()), status
