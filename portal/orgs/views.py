"""A company's org_admin manages their own organisation's members; anyone with an
invitation link sets their password here."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal import db
from portal.access.policy import Action
from portal.auth.forms import EmptyForm, SetPasswordForm
from portal.auth.models import User
from portal.core.guard import by_id, discard, failed, guarded, invalid_form, public
from portal.core.service import ServiceError
from portal.core.web import client_ip, settings
from portal.orgs import services
from portal.orgs.forms import InviteForm
from portal.orgs.models import Organisation

bp = Blueprint("orgs", __name__)


def _own_org() -> Organisation:
    return current_user.organisation


@bp.route("/organisation/members")
@guarded(Action.ORG_MEMBERS_VIEW, load=_own_org)
def members(obj: Organisation):
    org = obj
    s = db.session()
    return render_template("orgs/members.html", org=org, members=services.members(s, org.id),
                           invitations=services.pending_invitations(s, org.id), form=InviteForm(),
                           empty=EmptyForm())


@bp.route("/organisation/members/invite", methods=["POST"])
@guarded(Action.ORG_MEMBER_INVITE, load=_own_org)
def invite(obj: Organisation):
    org = obj
    form = InviteForm()
    s = db.session()
    if form.validate_on_submit():
        try:
            services.invite(s, settings(), inviter=current_user, email=form.email.data, name=form.name.data,
                            role=form.role.data, ip=client_ip())
            flash(_("An invitation has been sent to %(email)s.", email=form.email.data), "success")
            return redirect(url_for("orgs.members"))
        except ServiceError as e:
            failed(e, "org.member.invite")
            getattr(form, e.field or "email").errors.append(e.message)
    else:
        invalid_form("org.member.invite", form)
    return render_template("orgs/members.html", org=org, members=services.members(s, org.id),
                           invitations=services.pending_invitations(s, org.id), form=form, empty=EmptyForm()), 400


def _load_member(user_id: int):
    return by_id(User, user_id)


@bp.route("/organisation/members/<int:user_id>/disable", methods=["POST"])
@guarded(Action.ORG_MEMBER_DISABLE, load=_load_member)
def disable(obj: User):
    return _set_active(obj, False)


@bp.route("/organisation/members/<int:user_id>/enable", methods=["POST"])
@guarded(Action.ORG_MEMBER_DISABLE, load=_load_member)
def enable(obj: User):
    return _set_active(obj, True)


def _set_active(member: User, active: bool):
    if not EmptyForm().validate_on_submit():
        abort(400)
    services.set_active(db.session(), target=member, active=active, actor=current_user, ip=client_ip())
    flash(_("%(name)s can sign in again.", name=member.name) if active else
          _("%(name)s has been disabled and signed out.", name=member.name), "success")
    return redirect(url_for("orgs.members"))


@bp.route("/invitation/<token>", methods=["GET", "POST"])
@public
def accept(token: str):
    s = db.session()
    inv = services.find_invitation(s, token)
    if inv is None:
        return render_template("errors/generic.html", code=404, title=_("This invitation link cannot be used"),
                               message=_("It has expired, has already been used, or is incorrect. Ask your organisation administrator for a new invitation.")), 404
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            services.accept_invitation(s, settings(), inv, form.new_password.data, form.confirm_password.data,
                                       client_ip())
            flash(_("Your account is ready. Sign in with your e-mail address and new password."), "success")
            return redirect(url_for("auth.login"))
        except ServiceError as e:
            discard()
            getattr(form, e.field or "new_password").errors.append(e.message)
    return render_template("orgs/accept.html", form=form, inv=inv), 400 if request.method == "POST" else 200
