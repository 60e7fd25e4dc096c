"""RFC 9457 problem details: every refusal the API gives, with the field it is about when
there is one (a ServiceError's ``field``, a schema error's location)."""
from __future__ import annotations

import json

from flask import Response, request
from werkzeug.exceptions import HTTPException

from portal.core.i18n import gettext as _
from portal.core.service import ServiceError

MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None, *, reason: str | None = None,
            errors: list[dict] | None = None, headers: dict | None = None) -> Response:
    body = {"type": f"urn:ttr:problem:{reason}" if reason else "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path
    if reason:
        body["reason"] = reason
    if errors:
        body["errors"] = errors
    resp = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=MEDIA_TYPE)
    resp.headers["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


class FieldErrors(ServiceError):
    """Several fields refused at once (a draft's step checked by its form and the service)."""

    def __init__(self, errors: dict[str, str], reason: str = "invalid_fields", status: int = 422):
        super().__init__(_("Some fields were not accepted. Nothing was saved."), reason=reason)
        self.errors = errors
        self.status = status


def from_service_error(e: ServiceError) -> Response:
    """A service's refusal of the request as asked: 422 with the field when it names one
    (409 when the report's state does not allow it; 413 for a file too large)."""
    status = getattr(e, "status", None) or (409 if e.reason in CONFLICT_REASONS else 422)
    if isinstance(e, FieldErrors):
        errors = [{"field": k, "detail": str(v)} for k, v in sorted(e.errors.items())]
    else:
        errors = [{"field": e.field, "detail": e.message}] if e.field else None
    return problem(status, TITLES.get(status, _("The request was refused")), e.message, reason=e.reason,
                   errors=errors)


# A state that does not allow the action: the request was well formed, the resource is not ready.
CONFLICT_REASONS = frozenset({"illegal_transition", "not_editable", "case_closed", "not_issued", "upload_closed",
                              "closed", "frozen"})


def _titles() -> dict[int, str]:
    return {
        400: _("Bad request"), 401: _("Authentication required"), 403: _("Forbidden"), 404: _("Not found"),
        405: _("Method not allowed"), 406: _("Not acceptable"), 409: _("Conflict"), 412: _("Precondition failed"),
        413: _("Too much data"), 415: _("Unsupported media type"), 422: _("The request was refused"),
        428: _("Precondition required"), 429: _("Too many requests"), 500: _("Something went wrong"),
        503: _("Service unavailable"),
    }


class _Titles:
    def get(self, status: int, default: str) -> str:
        return _titles().get(status, default)


TITLES = _Titles()


def from_http_error(e: HTTPException) -> Response:
    from flask import g

    code = e.code or 500
    headers = {}
    reason = g.get("bearer_refusal")
    if code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="ttr-portal"' + (
            ', error="invalid_token"' if reason and reason != "token_missing" else "")
    elif code == 403 and reason == "insufficient_scope":
        headers["WWW-Authenticate"] = 'Bearer realm="ttr-portal", error="insufficient_scope"'
    if code == 405 and getattr(e, "valid_methods", None):
        headers["Allow"] = ", ".join(e.valid_methods)
    detail = {
        401: _("Send a valid API token: Authorization: Bearer <token>."),
        403: _("The token, its user's role or clearance does not allow this."),
        404: _("There is nothing here, or nothing you may see."),
        413: _("What you sent is larger than the portal accepts."),
    }.get(code)
    return problem(code, TITLES.get(code, _("Something went wrong")), detail, reason=reason or e.name.lower().replace(" ", "_"),
                   headers=headers)
