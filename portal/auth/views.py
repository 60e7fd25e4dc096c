from __future__ import annotations

import time

from flask import Blueprint, abort, after_this_request, flash, redirect, render_template, request, session, url_for
from flask_babel import format_datetime
from flask_login import current_user, login_user, logout_user

from portal import db
from portal.access.policy import Action
from portal.auth import devices, gbiz, oidc, services, totp
from portal.auth.gbiz_claims import ClaimsProblem, identity_from
from portal.auth.forms import CodeForm, EmptyForm, LoginForm, PasswordChangeForm, RecoveryForm
from portal.auth.models import User
from portal.auth.passwords import password_problems, verify_password
from portal.core.guard import audit, failed, guarded, public
from portal.core.i18n import gettext as _
from portal.core.links import absolute_url
from portal.core.service import ServiceError
from portal.core.web import client_ip, safe_next, settings

bp = Blueprint("auth", __name__)

PENDING_SECONDS = 300


def _throttled_message(retry_at, known_device: bool) -> str:
    minutes = max(1, int((retry_at.timestamp() - time.time() + 59) // 60))
    if minutes < 120:
        text = _("Too many failed attempts. Try again after %(time)s (in about %(n)d minutes).",
                 time=format_datetime(retry_at, "HH:mm"), n=minutes)
    else:
        text = _("Too many failed attempts. Try again after %(time)s (in about %(n)d hours).",
                 time=format_datetime(retry_at, "short"), n=(minutes + 30) // 60)
    if not known_device:
        # True for every hold on a stranger's browser: the owner's own browser is held by its own failures only.
        text += " " + _("A browser you have signed in with before can still sign in.")
    return text


def _device() -> devices.KnownDevice | None:
    """This browser, if it has signed in before (the throttle tells the owner's browser from a stranger's)."""
    s = settings()
    return devices.read(request.cookies.get(devices.COOKIE), s.require_secret(), s.login_known_device_days)


def _remember_device(user: User, device: devices.KnownDevice | None) -> None:
    s = settings()
    value = devices.remember(device, user.id, s.require_secret())

    @after_this_request
    def _set(response):
        response.set_cookie(devices.COOKIE, value, max_age=s.login_known_device_days * 86400, path=devices.COOKIE_PATH,
                            secure=s.https, httponly=True, samesite="Lax")
        return response


def _start_pending(user: User, stage: str) -> None:
    nxt = session.get("pending_next")
    link = session.get("gbiz_pending_link")
    session.clear()
    session.regenerate()
    session["pending_user_id"] = user.id
    session["pending_stage"] = stage
    session["pending_since"] = time.time()
    if nxt:
        session["pending_next"] = nxt
    if link:
        session["gbiz_pending_link"] = link


def _pending_user() -> User | None:
    uid = session.get("pending_user_id")
    since = session.get("pending_since", 0)
    if uid is None or time.time() - since > PENDING_SECONDS:
        return None
    user = db.session().get(User, uid)
    return user if user is not None and user.active else None


def _finish(user: User, method: str):
    nxt = session.get("pending_next") or request.args.get("next")
    lang = session.get("lang")
    # A GビズID sign-in named this account's e-mail: it links once the owner has signed in here.
    link = session.get("gbiz_pending_link") if method != "gbiz" else None
    session.clear()
    session.regenerate()
    if lang and not user.locale:
        user.locale = lang
    login_user(user)
    device = _device()
    services.signed_in(db.session(), settings(), user, client_ip(), method, device)
    _remember_device(user, device)
    if link and gbiz.link_after_password(db.session(), settings(), user, link, client_ip()):
        flash(_("Your gBizID is now linked to this account: next time you can sign in with gBizID."), "success")
    return redirect(safe_next(nxt, url_for("core.home")))


@bp.route("/auth/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("core.home"))
    form = LoginForm()
    if request.method == "GET" and request.args.get("next"):
        session["pending_next"] = safe_next(request.args.get("next"), "")
    error = None
    if form.validate_on_submit():
        s = db.session()
        result = services.check_password(s, settings(), form.email.data, form.password.data, client_ip(), _device())
        if result.status == "throttled":
            error = _throttled_message(result.retry_at, result.known_device)
            return render_template("auth/login.html", form=form, error=error), 429
        if result.status == "failed":
            error = _("The e-mail address or password is incorrect.")
            return render_template("auth/login.html", form=form, error=error), 200
        user = result.user
        if result.status == "ok":
            return _finish(user, "password")
        _start_pending(user, result.status)
        if result.status == "need_enrol":
            return redirect(url_for("auth.enrol"))
        return redirect(url_for("auth.second_factor"))
    return render_template("auth/login.html", form=form, error=error)


@bp.route("/auth/2fa", methods=["GET", "POST"])
@public
def second_factor():
    user = _pending_user()
    if user is None or session.get("pending_stage") != "need_totp":
        flash(_("Your sign-in took too long. Sign in again."), "error")
        return redirect(url_for("auth.login"))
    use_recovery = request.args.get("recovery") == "1"
    form = RecoveryForm() if use_recovery else CodeForm()
    error = None
    status = 200
    if form.validate_on_submit():
        result = services.check_second_factor(db.session(), settings(), user, form.code.data, client_ip(),
                                               recovery=use_recovery, device=_device())
        if result.status == "ok":
            return _finish(user, "recovery_code" if use_recovery else "totp")
        if result.status == "throttled":
            error, status = _throttled_message(result.retry_at, result.known_device), 429
        else:
            error = _("The code is incorrect or has already been used. Enter the current code.") if not use_recovery \
                else _("The recovery code is incorrect or has already been used.")
    return render_template("auth/second_factor.html", form=form, error=error, recovery=use_recovery), status


@bp.route("/auth/2fa/setup", methods=["GET", "POST"])
@public
def enrol():
    """Enrolment for a user in the middle of signing in (mandatory for government roles)
    or signed in and choosing to turn it on (optional for companies)."""
    if current_user.is_authenticated:
        user = current_user._get_current_object()
        if user.totp_enabled:
            return redirect(url_for("auth.account"))
    else:
        user = _pending_user()
        if user is None or session.get("pending_stage") != "need_enrol":
            flash(_("Your sign-in took too long. Sign in again."), "error")
            return redirect(url_for("auth.login"))
    secret = session.get("enrol_secret")
    if not secret:
        secret = totp.new_secret()
        session["enrol_secret"] = secret
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        codes = services.enrol_totp(db.session(), settings(), user, secret, form.code.data, client_ip(), _device())
        if codes is None:
            error = _("The code is incorrect. Check the time on your device and enter the current code.")
        else:
            session.pop("enrol_secret", None)
            was_signed_in = current_user.is_authenticated
            response = _finish(user, "totp_enrol")
            # Shown once; never stored in clear.
            return render_template("auth/recovery_codes.html", codes=codes,
                                   next_url=response.location, first=not was_signed_in)
    uri = totp.provisioning_uri(secret, user.email, settings().totp_issuer)
    return render_template("auth/enrol.html", form=form, error=error, qr=totp.qr_svg(uri), secret=secret,
                           mandatory=services.two_factor_required(user))


@bp.route("/auth/logout", methods=["POST"])
@public
def logout():
    form = EmptyForm()
    if not form.validate_on_submit():
        return redirect(url_for("core.home"))
    if current_user.is_authenticated:
        audit("auth.signout")
        logout_user()
    lang = session.get("lang")
    id_token = session.get("gbiz_id_token")
    session.clear()
    session.regenerate()  # the old id is deleted server-side
    if lang:
        session["lang"] = lang
    flash(_("You have signed out."), "info")
    # Signed in through GビズID: the provider's session ends too (RP-initiated logout), and
    # the provider sends the browser back to the sign-in page.
    provider_logout = oidc.logout_url(settings(), id_token, absolute_url(settings().base_url, "auth.login"))
    return redirect(provider_logout or url_for("auth.login"))


# ---------------------------------------------------------------- GビズID (OpenID Connect)

GBIZ_EVENT = "auth.gbiz.signin"


def _oidc_message(reason: str) -> str:
    if reason == "provider_unavailable":
        return _("gBizID cannot be reached at the moment. Try again later, or sign in with your password.")
    if reason == "cancelled":
        return _("The sign-in with gBizID was cancelled. You have not been signed in.")
    if reason in {"state_mismatch", "code_refused"}:
        return _("The sign-in with gBizID could not be completed: it took too long, was already used, or was "
                 "started in another window. You have not been signed in. Start again from the sign-in page.")
    return _("gBizID's answer could not be verified, so you have not been signed in. Start again from the "
             "sign-in page; if this happens again, contact the portal help desk.")


def _gbiz_refused(reason: str, message: str, status: int, details: dict | None = None):
    """Nothing of the attempt is kept but its record; the page says what the person can do."""
    failed(ServiceError(message, reason=reason), GBIZ_EVENT, details=details)
    return render_template("auth/gbiz_refused.html", message=message, reason=reason), status


@bp.route("/auth/gbiz", methods=["GET"])
@public
def gbiz_start():
    s = settings()
    if not s.oidc_enabled:
        abort(404)
    if current_user.is_authenticated:
        return redirect(url_for("core.home"))
    nxt = safe_next(request.args.get("next"), "")
    if nxt:
        session["pending_next"] = nxt
    try:
        return oidc.start(s, absolute_url(s.base_url, "auth.gbiz_callback"))
    except oidc.SignInFailed as e:
        return _gbiz_refused(e.reason, _oidc_message(e.reason), e.status)


@bp.route("/auth/gbiz/callback", methods=["GET"])
@public
def gbiz_callback():
    s = settings()
    if not s.oidc_enabled:
        abort(404)
    who = None
    try:
        claims, id_token = oidc.finish(s)
        who = identity_from(claims)
        outcome = gbiz.sign_in(db.session(), s, who, client_ip())
    except oidc.SignInFailed as e:
        return _gbiz_refused(e.reason, _oidc_message(e.reason), e.status)
    except ClaimsProblem as e:
        return _gbiz_refused(e.reason, _oidc_message(e.reason), 400)
    except gbiz.GbizRefused as e:
        return _gbiz_refused(e.reason, e.message, e.status, details=who.audit_details() if who else None)
    if outcome.kind == "link_pending":
        nxt, lang = session.get("pending_next"), session.get("lang")
        session.clear()
        session.regenerate()
        session["gbiz_pending_link"] = gbiz.pending_link(who)
        if nxt:
            session["pending_next"] = nxt
        if lang:
            session["lang"] = lang
        flash(_("An account with your e-mail address already exists here. Sign in with its password once to link "
                "it to your gBizID."), "info")
        return redirect(url_for("auth.login"))
    response = _finish(outcome.user, "gbiz")
    session["gbiz_id_token"] = id_token  # the hint for RP-initiated logout at sign-out
    return response


@bp.route("/account", methods=["GET"])
@guarded(Action.ACCOUNT_SELF)
def account():
    remaining = services.remaining_recovery_codes(db.session(), current_user) if current_user.totp_enabled else 0
    return render_template("auth/account.html", form=PasswordChangeForm(), empty=EmptyForm(),
                           remaining=remaining, mandatory=services.two_factor_required(current_user),
                           has_password=bool(current_user.password_hash))


@bp.route("/account/password", methods=["POST"])
@guarded(Action.ACCOUNT_SELF)
def change_password():
    form = PasswordChangeForm()
    user = current_user._get_current_object()
    if form.validate_on_submit():
        if not verify_password(form.current_password.data, user.password_hash):
            form.current_password.errors.append(_("Your current password is incorrect."))
            audit("account.password.change", outcome="failure", reason="bad_current_password")
        else:
            problems = password_problems(form.new_password.data, email=user.email, name=user.name)
            if form.new_password.data != form.confirm_password.data:
                form.confirm_password.errors.append(_("The passwords do not match."))
            if problems:
                form.new_password.errors.extend(problems)
            if not form.errors:
                services.set_password(db.session(), settings(), user, form.new_password.data, actor=user, ip=client_ip())
                session.regenerate()
                flash(_("Your password has been changed. Other sessions have been signed out."), "success")
                return redirect(url_for("auth.account"))
    remaining = services.remaining_recovery_codes(db.session(), user) if user.totp_enabled else 0
    return render_template("auth/account.html", form=form, empty=EmptyForm(), remaining=remaining,
                           mandatory=services.two_factor_required(user), has_password=bool(user.password_hash)), 400


@bp.route("/account/2fa/disable", methods=["POST"])
@guarded(Action.ACCOUNT_SELF)
def disable_2fa():
    form = EmptyForm()
    user = current_user._get_current_object()
    if form.validate_on_submit() and services.disable_totp(db.session(), user, client_ip()):
        session.regenerate()
        flash(_("Two-factor authentication has been turned off."), "success")
    else:
        flash(_("Two-factor authentication is required for your role and cannot be turned off."), "error")
    return redirect(url_for("auth.account"))


@bp.route("/account/recovery-codes", methods=["POST"])
@guarded(Action.ACCOUNT_SELF)
def new_recovery_codes():
    form = EmptyForm()
    user = current_user._get_current_object()
    if not form.validate_on_submit() or not user.totp_enabled:
        return redirect(url_for("auth.account"))
    codes = services.replace_recovery_codes(db.session(), settings(), user)
    audit("auth.2fa.recovery_codes.replace")
    return render_template("auth/recovery_codes.html", codes=codes, next_url=url_for("auth.account"), first=False)
