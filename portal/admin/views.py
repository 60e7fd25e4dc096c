"""System administration (METI IT): accounts, roles, organisations, the outbox. Never content."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db
from portal.access.policy import Action
from portal.admin import services
from portal.admin.forms import AdminInviteForm, OrganisationForm, RoleForm
from portal.auth.forms import EmptyForm
from portal.auth.models import User
from portal.core.guard import by_id, failed, guarded, invalid_form
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError
from portal.core.web import client_ip, page_arg, settings
from portal.mail import outbox
from portal.orgs import services as org_services
from portal.orgs.models import Organisation

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _invite_form(formdata=None) -> AdminInviteForm:
    form = AdminInviteForm(formdata) if formdata is not None else AdminInviteForm()
    form.organisation_id.choices = [(o.id, o.name) for o in services.organisations(db.session())]
    return form


def _render_users(invite_form=None, status=200):
    s = db.session()
    q = request.args.get("q", "")[:100]
    return render_template("admin/users.html", users=services.users(s, q=q), q=q,
                           form=invite_form or _invite_form(), empty=EmptyForm(),
                           scanning=services.scanning_summary(s, settings())), status


@bp.route("/users")
@guarded(Action.USERS_ADMIN)
def users():
    return _render_users()


@bp.route("/users/invite", methods=["POST"])
@guarded(Action.USERS_ADMIN)
def invite():
    form = _invite_form()
    s = db.session()
    if form.validate_on_submit():
        org = by_id(Organisation, form.organisation_id.data)
        try:
            if org is None:
                raise ServiceError(_("Choose an organisation."), field="organisation_id", reason="unknown_org")
            org_services.invite(s, settings(), inviter=current_user, org=org, email=form.email.data,
                                name=form.name.data, role=form.role.data, ip=client_ip())
            flash(_("An invitation has been sent to %(email)s.", email=form.email.data), "success")
            return redirect(url_for("admin.users"))
        except ServiceError as e:
            failed(e, "org.member.invite")
            getattr(form, e.field or "email").errors.append(e.message)
    else:
        invalid_form("org.member.invite", form)
    return _render_users(form, 400)


def _load_user(user_id: int):
    return by_id(User, user_id)


@bp.route("/users/<int:user_id>")
@guarded(Action.USERS_ADMIN)
def user(user_id: int):
    target = _load_user(user_id)
    if target is None:
        abort(404)
    form = RoleForm(data={"role": target.role})
    return render_template("admin/user.html", target=target, form=form, empty=EmptyForm())


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@guarded(Action.USER_CHANGE_ROLE, load=_load_user)
def change_role(obj: User):
    form = RoleForm()
    if form.validate_on_submit():
        try:
            services.change_role(db.session(), target=obj, role=form.role.data, actor=current_user, ip=client_ip())
            flash(_("The role has been changed. %(name)s has been signed out everywhere.", name=obj.name), "success")
            return redirect(url_for("admin.user", user_id=obj.id))
        except ServiceError as e:
            failed(e, "account.role.change", target_type="user", target_id=obj.id)
            form.role.errors.append(e.message)
    else:
        invalid_form("account.role.change", form, target_type="user", target_id=obj.id)
    return render_template("admin/user.html", target=obj, form=form, empty=EmptyForm()), 400


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
@guarded(Action.USER_DISABLE, load=_load_user)
def disable(obj: User):
    return _set_active(obj, False)


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
@guarded(Action.USER_DISABLE, load=_load_user)
def enable(obj: User):
    return _set_active(obj, True)


def _set_active(target: User, active: bool):
    if not EmptyForm().validate_on_submit():
        abort(400)
    org_services.set_active(db.session(), target=target, active=active, actor=current_user, ip=client_ip())
    flash(_("%(name)s can sign in again.", name=target.name) if active else
          _("%(name)s has been disabled and signed out.", name=target.name), "success")
    return redirect(url_for("admin.user", user_id=target.id))


@bp.route("/organisations", methods=["GET", "POST"])
@guarded(Action.USERS_ADMIN)
def organisations():
    form = OrganisationForm()
    s = db.session()
    status = 200
    if form.validate_on_submit():
        try:
            org_services.create_organisation(s, name=form.name.data, number=form.corporate_number.data,
                                             address=form.address.data, actor=current_user, ip=client_ip())
            flash(_("The organisation has been added."), "success")
            return redirect(url_for("admin.organisations"))
        except ServiceError as e:
            failed(e, "org.create")
            getattr(form, e.field or "name").errors.append(e.message)
            status = 400
    elif request.method == "POST":
        invalid_form("org.create", form)
        status = 400
    return render_template("admin/organisations.html", orgs=services.organisations(s), form=form), status


@bp.route("/outbox")
@guarded(Action.OUTBOX_READ)
def outbox_view():
    page = min(page_arg(), 10000)
    show_links = settings().mail_links_shown
    msgs = outbox.for_readers(outbox.recent(db.session(), limit=50, offset=(page - 1) * 50), show_links=show_links)
    return render_template("admin/outbox.html", msgs=msgs, page=page, show_links=show_links)
