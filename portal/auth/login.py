from __future__ import annotations

from flask import g
from flask_login import LoginManager

from portal import db
from portal.auth import principal
from portal.auth.models import User
from portal.core.i18n import lazy_gettext as _l

login_manager = LoginManager()


def init_app(app) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = None  # server-side sessions are regenerated at sign-in
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Sign in to continue.")
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def _load(user_id: str):
        if not user_id.isdigit():
            return None
        p = g.get("principal")
        if p is not None and p.user_id == int(user_id):
            # Read with the session at the start of the request: built from that row, no SQL.
            return principal.user_for(db.session(), p)
        user = db.session().get(User, int(user_id))
        # A disabled account is signed out on its very next request.
        if user is None or not user.active:
            return None
        return user
