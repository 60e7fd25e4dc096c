from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import DateField, StringField
from wtforms.validators import Length, Optional

from portal import db
from portal.access.policy import Action
from portal.auth.forms import EmptyForm
from portal.catalogue import services
from portal.catalogue.models import Technology
from portal.core.forms import BaseForm, DateWindow, Required, strip
from portal.core.guard import by_id, failed, guarded
from portal.core.i18n import gettext as _, lazy_gettext as _l
from portal.core.service import ServiceError
from portal.core.web import client_ip

bp = Blueprint("catalogue", __name__, url_prefix="/admin/technologies")


class EntryForm(BaseForm):
    code = StringField(_l("Code"), filters=[strip], validators=[Required(_l("Enter a code.")), Length(max=32)],
                       description=_l("The letter T and two or three digits, for example T20."))
    name_ja = StringField(_l("Name in Japanese"), filters=[strip],
                          validators=[Required(_l("Enter the name in Japanese.")), Length(max=200)])
    name_en = StringField(_l("Name in English"), filters=[strip],
                          validators=[Required(_l("Enter the name in English.")), Length(max=200)])
    effective_from = DateField(_l("In force from"),
                               validators=[Required(_l("Enter the date from which reports are required.")), DateWindow(5, 20)],
                               description=_l("The date of the amended notice, for example 2027-04-01."))


class EditForm(BaseForm):
    name_ja = StringField(_l("Name in Japanese"), filters=[strip],
                          validators=[Required(_l("Enter the name in Japanese.")), Length(max=200)])
    name_en = StringField(_l("Name in English"), filters=[strip],
                          validators=[Required(_l("Enter the name in English.")), Length(max=200)])
    effective_until = DateField(_l("In force until"), validators=[Optional(), DateWindow(5, 20)],
                                description=_l("Leave empty while the entry is in force. Reports already filed keep their entry."))


def _page(form=None, status=200):
    s = db.session()
    return render_template("catalogue/index.html", entries=services.all_entries(s), usage=services.usage(s),
                           form=form or EntryForm(), empty=EmptyForm()), status


@bp.route("/", methods=["GET", "POST"])
@guarded(Action.CATALOGUE_MANAGE)
def index():
    form = EntryForm()
    if request.method == "GET":
        return _page(form)
    if form.validate_on_submit():
        try:
            services.add(db.session(), code=form.code.data, name_ja=form.name_ja.data, name_en=form.name_en.data,
                         effective_from=form.effective_from.data, actor=current_user, ip=client_ip())
            flash(_("The entry has been added."), "success")
            return redirect(url_for("catalogue.index"))
        except ServiceError as e:
            failed(e, "catalogue.add")
            getattr(form, e.field or "code").errors.append(e.message)
    return _page(form, 400)


def _entry(tech_id: int) -> Technology:
    t = by_id(Technology, tech_id)
    if t is None:
        abort(404)
    return t


@bp.route("/<int:tech_id>", methods=["GET", "POST"])
@guarded(Action.CATALOGUE_MANAGE)
def edit(tech_id: int):
    t = _entry(tech_id)
    form = EditForm(data={"name_ja": t.name_ja, "name_en": t.name_en, "effective_until": t.effective_until}) \
        if request.method == "GET" else EditForm()
    status = 200
    if request.method == "POST":
        status = 400
        if form.validate_on_submit():
            try:
                services.update(db.session(), t, name_ja=form.name_ja.data, name_en=form.name_en.data,
                                effective_until=form.effective_until.data, actor=current_user, ip=client_ip())
                flash(_("The entry has been saved."), "success")
                return redirect(url_for("catalogue.index"))
            except ServiceError as e:
                failed(e, "catalogue.update", target_type="technology", target_id=t.code)
                getattr(form, e.field or "name_ja").errors.append(e.message)
    return render_template("catalogue/edit.html", t=t, form=form, empty=EmptyForm()), status


@bp.route("/<int:tech_id>/delete", methods=["POST"])
@guarded(Action.CATALOGUE_MANAGE)
def delete(tech_id: int):
    t = _entry(tech_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        services.delete(db.session(), t, actor=current_user, ip=client_ip())
        flash(_("The entry has been deleted."), "success")
    except ServiceError as e:
        failed(e, "catalogue.delete", target_type="technology", target_id=t.code)
        flash(e.message, "error")
    return redirect(url_for("catalogue.index"))
