from __future__ import annotations

import logging
from pathlib import Path

from flask import Response, current_app, g, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from portal import db
from portal.core.i18n import gettext as _

log = logging.getLogger(__name__)

# The portal's own page while the database is away: a static file, so that showing it needs
# no database, no template, no signed-in user and no translation catalogue (both languages are
# on it). A proxy can serve the same file when no app server answers at all (README).
UNAVAILABLE_PAGE = Path(__file__).resolve().parent.parent / "static" / "unavailable.html"
RETRY_AFTER_SECONDS = 60
# What still answers without the database: health checks report the outage themselves.
WITHOUT_DATABASE = frozenset({"core.healthz", "core.livez", "static", "observability.metrics"})


class DatabaseUnavailable(Exception):
    """The request's session could not be read because the database is away."""


def unavailable_response() -> Response:
    return become_unavailable(Response())


def become_unavailable(resp: Response) -> Response:
    """``resp`` turned into the 503 page (also a response already made, whose session could
    not be saved)."""
    resp.set_data(current_app.extensions["unavailable_page"])
    resp.status_code = 503
    resp.mimetype = "text/html"
    resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers.pop("Location", None)
    return resp


def init_app(app) -> None:
    app.extensions["unavailable_page"] = UNAVAILABLE_PAGE.read_bytes()

    @app.before_request
    def _database_away():
        if g.get("database_unavailable") and request.endpoint not in WITHOUT_DATABASE:
            raise DatabaseUnavailable()

    def _unavailable(e: Exception):
        db.mark_unavailable(e)
        if "_login_user" not in g:
            # The response's headers ask whether someone is signed in: nobody is, rather than
            # a loader that would try the database again.
            g._login_user = app.login_manager.anonymous_user()
        return unavailable_response()

    def _api(e: HTTPException):
        """Under /api/ an error is a problem document (portal.api.problems), never a page."""
        render = app.extensions.get("api_problem")
        if render is not None and request.path.startswith("/api/"):
            return render(e)
        return None

    @app.errorhandler(CSRFError)
    def _csrf(e):
        return _api(e) or render_template("errors/generic.html", code=400, title=_("Your form expired"),
                               message=_("The page was open too long or was sent twice. Go back, reload the page and try again.")), 400

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(e):
        return _api(e) or render_template("errors/generic.html", code=413, title=_("Too much data"),
                               message=_("What you sent is larger than the portal accepts.")), 413

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        api = _api(e)
        if api is not None:
            return api
        code = e.code or 500
        titles = {
            400: (_("Bad request"), _("The request could not be understood. Go back and try again.")),
            403: (_("You do not have access to this page"), _("Your role or clearance does not allow this. If you think it should, contact your administrator.")),
            404: (_("Page not found"), _("Check the address, or go back to the start page.")),
            405: (_("Not allowed"), _("This page cannot be used this way.")),
            429: (_("Too many attempts"), _("Wait a moment and try again.")),
        }
        title, message = titles.get(code, (_("Something went wrong"), _("Try again later.")))
        return render_template("errors/generic.html", code=code, title=title, message=message), code

    @app.errorhandler(DatabaseUnavailable)
    def _session_unreadable(e: DatabaseUnavailable):
        return unavailable_response()

    @app.errorhandler(sa_exc.DBAPIError)
    @app.errorhandler(sa_exc.TimeoutError)
    def _database(e: Exception):
        if db.unavailable(e):
            return _unavailable(e)
        return _unexpected(e)

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        if isinstance(e, HTTPException):
            return _http(e)
        if db.unavailable(e):
            return _unavailable(e)
        # The route's rule, never the path: an invitation's path is its token.
        log.exception("unhandled error on %s %s", request.method,
                      request.url_rule.rule if request.url_rule is not None else "(no route)")
        api = _api(InternalServerError())
        if api is not None:
            return api
        try:
            return render_template("errors/generic.html", code=500, title=_("Something went wrong"),
                                   message=_("The portal could not complete your request. Nothing was changed. Try again later.")), 500
        except Exception as again:
            # The error page itself needs the database (the signed-in user's menu): if that is
            # what failed, the static page says so rather than the server's bare 500.
            if db.unavailable(again):
                return _unavailable(again)
            raise
