from __future__ import annotations

from flask import (Blueprint, current_app, flash, jsonify, redirect, render_template, request, send_from_directory,
                   session, url_for)
from flask_login import current_user
from sqlalchemy import text

from portal import db
from portal.auth.forms import EmptyForm
from portal.core import worklists
from portal.core.guard import current_subject, public
from portal.core.i18n import LANGUAGES, gettext as _
from portal.core.timeutil import today_jst
from portal.core.web import safe_next, settings

bp = Blueprint("core", __name__)


@bp.route("/")
@public
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    lists = worklists.for_user(db.session(), current_user._get_current_object(), current_subject(), today_jst())
    return render_template("home.html", work_lists=lists)


@bp.route("/language", methods=["POST"])
@public
def language():
    form = EmptyForm()
    back = safe_next(request.form.get("next"), url_for("core.home"))
    lang = request.form.get("lang", "")
    if not form.validate_on_submit():
        return redirect(back)
    if lang not in LANGUAGES:
        flash(_("That language is not available. Choose Japanese or English."), "error")
        return redirect(back)
    session["lang"] = lang
    if current_user.is_authenticated:
        current_user.locale = lang
    return redirect(back)


@bp.route("/favicon.ico")
@public
def favicon():
    """Browsers ask for /favicon.ico whatever the page says: a small icon rather than a 404
    in every log. Public, like the stylesheet."""
    return send_from_directory(current_app.static_folder, "favicon.ico", mimetype="image/x-icon", max_age=86400)


@bp.route("/livez")
@public
def livez():
    """Liveness only: no database, no files (a baseline for benchmarks and load balancers)."""
    return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.route("/healthz")
@public
def healthz():
    status = {"database": "ok", "keyring": "ok"}
    code = 200
    try:
        # Its own connection: a database that is away fails here, not in the request's commit.
        # A read-only snapshot: on SQLite the request itself may already hold the write lock
        # (a signed-in caller's session was looked up), and waiting for it would never end.
        with db.engine().connect().execution_options(read_only_snapshot=True) as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - health is reported, not raised
        status["database"] = "unavailable"
        code = 503
    from portal.encryption.instance import keyring_status

    status["keyring"] = keyring_status(settings())
    if status["keyring"] != "ok":
        code = 503
    # The scanner does not decide the code: without it the portal still serves, and uploads
    # wait as pending (README "Malware scanning"); it makes the status degraded.
    from portal import clamd

    s = settings()
    scanner = clamd.health(s.clamd_socket, s.clamd_database_dir)
    status["scanner"] = scanner
    status["status"] = "ok" if code == 200 and scanner["state"] == "ok" else "degraded"
    return jsonify(status), code
