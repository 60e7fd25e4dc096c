"""A company's org_admin manages their own organisation's members; anyone with an
invitation link sets their password here."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db
from portal.access.policy import Action
from portal.auth.forms import EmptyForm, SetPasswordForm
from portal.auth.models import User
from portal.core.guard import by_id, discard, failed, guarded, invalid_form, public
from portal.core.i18n import gettext as _, lazy_gettext as _l
from portal.core.service import ServiceError
from portal.core.web import client_ip, settings
from portal.orgs import services
from portal.orgs.forms import ApiTokenForm, InviteForm
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


# ---------------------------------------------------------------- API tokens (issue 19)

SCOPE_LABELS = {
    "reports:read": _l("Read reports, their files and the catalogue"),
    "reports:write": _l("Create, change, submit and withdraw reports; attach files"),
    "messages": _l("Read and post messages with METI; answer requests for information"),
    "informs": _l("Read informs, download notices, acknowledge them"),
}


def _token_form(org: Organisation, formdata=None) -> ApiTokenForm:
    from portal.auth import tokens

    form = ApiTokenForm(formdata=formdata) if formdata is not None else ApiTokenForm()
    form.user_id.choices = [("", _("Choose…"))] + [
        (str(m.id), f"{m.name} <{m.email}>") for m in services.members(db.session(), org.id) if m.active]
    form.scopes.choices = [(s, SCOPE_LABELS[s]) for s in tokens.SCOPES]
    return form


def _tokens_page(org: Organisation, form: ApiTokenForm, *, issued: str | None = None, status: int = 200):
    from portal.auth import tokens
    from portal.db import utcnow

    return render_template("orgs/api_tokens.html", org=org, form=form, tokens=tokens.for_org(db.session(), org.id),
                           now=utcnow(), issued=issued, scope_labels=SCOPE_LABELS, empty=EmptyForm()), status


@bp.route("/organisation/api-tokens")
@guarded(Action.ORG_MEMBERS_VIEW, load=_own_org)
def api_tokens(obj: Organisation):
    return _tokens_page(obj, _token_form(obj))


@bp.route("/organisation/api-tokens", methods=["POST"])
@guarded(Action.ORG_MEMBER_INVITE, load=_own_org)
def issue_api_token(obj: Organisation):
    """Issuing a token is giving a system a member's access: the same decision as inviting one."""
    from portal.auth import tokens

    form = _token_form(obj, request.form)
    if form.validate_on_submit():
        try:
            _row, token = tokens.issue(db.session(), org_id=obj.id, user_id=int(form.user_id.data)
                                      if str(form.user_id.data).isdigit() else None, name=form.name.data,
                                      scopes=form.scopes.data or [], days=form.days.data,
                                      addresses=form.source_addresses.data or "", actor=current_user, ip=client_ip())
            # Shown on this answer only (never flashed, never stored): the database keeps its hash.
            return _tokens_page(obj, _token_form(obj), issued=token)
        except ServiceError as e:
            failed(e, "api.token.issue")
            getattr(form, e.field or "name").errors.append(e.message)
    else:
        invalid_form("api.token.issue", form)
    return _tokens_page(obj, form, status=400)


def _load_token(token_id: int):
    from portal.auth.tokens import ApiToken

    return by_id(ApiToken, token_id)


@bp.route("/organisation/api-tokens/<int:token_id>/revoke", methods=["POST"])
@guarded(Action.ORG_MEMBER_INVITE, load=_load_token)
def revoke_api_token(obj):
    from portal.auth import tokens

    tokens.revoke(db.session(), obj, actor=current_user, ip=client_ip())
    flash(_("The token has been revoked: it no longer works."), "success")
    return redirect(url_for("orgs.api_tokens"))
