from __future__ import annotations

import logging

from flask import render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


def init_app(app) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(e):
        return render_template("errors/generic.html", code=400, title=_("Your form expired"),
                               message=_("The page was open too long or was sent twice. Go back, reload the page and try again.")), 400

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(e):
        return render_template("errors/generic.html", code=413, title=_("Too much data"),
                               message=_("What you sent is larger than the portal accepts.")), 413

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
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

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        if isinstance(e, HTTPException):
            return _http(e)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_template("errors/generic.html", code=500, title=_("Something went wrong"),
                               message=_("The portal could not complete your request. Nothing was changed. Try again later.")), 500
