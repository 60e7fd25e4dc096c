"""Request safety: CSRF on every form and strict headers on every response (CONVENTIONS §9)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, g, request
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect

from portal.auth import principal

csrf = CSRFProtect()

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# A file a person downloads (an attachment, a notice): nothing in it may run or load, even if
# a browser renders it in place.
DOWNLOAD_CSP = "default-src 'none'; sandbox"


def csp_for(settings) -> str:
    """The page policy; with GビズID sign-in on, the sign-out form may end at the provider (its
    RP-initiated logout follows the form's redirect, which ``form-action`` governs)."""
    if not settings.oidc_enabled:
        return CSP
    issuer = urlsplit(settings.oidc_issuer)
    return CSP.replace("form-action 'self'", f"form-action 'self' {issuer.scheme}://{issuer.netloc}")


def _signed_in() -> bool:
    """Whether the response goes to someone signed in. When the request did not ask who is
    signed in, the session's principal answers (what Flask-Login's loader would return is
    that principal's user), so that a route that needs no user builds none."""
    if "_login_user" in g:
        return bool(current_user.is_authenticated)
    return principal.signed_in_user_id() is not None


def init_app(app) -> None:
    csrf.init_app(app)

    @app.before_request
    def _no_nul():
        # PostgreSQL refuses NUL in text, so a NUL typed into an address bar would end in a 500
        # halfway through a view: refuse it up front. Form bodies are checked by the request
        # path after the policy decided (portal.core.guard).
        if any("\x00" in v for v in request.args.values()):
            abort(400)

    # The same on every response of this app: built once (werkzeug's Headers.set scans the
    # list for each name, which made these lines a tenth of a signed-in request's floor).
    fixed = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
             ("Referrer-Policy", "same-origin"), ("Cross-Origin-Opener-Policy", "same-origin"),
             ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"))
    fixed_names = frozenset(name.lower() for name, _ in fixed)
    hsts = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")

    @app.after_request
    def _headers(response):
        h = response.headers
        present = {name.lower() for name in h.keys()}  # noqa: SIM118 - Headers iterates (name, value) pairs
        if "content-security-policy" not in present:  # a view's own (stricter) policy stays
            h.add("Content-Security-Policy", csp_for(app.config["SETTINGS"]))
        if present.isdisjoint(fixed_names):
            h.extend(fixed)
        else:  # a view set one of them: ours replaces it
            for name, value in fixed:
                h[name] = value
        if request.is_secure or app.config["SETTINGS"].https:
            h[hsts[0]] = hsts[1]
        signed_in = _signed_in()
        if signed_in or request.endpoint not in {"static"}:
            # Nothing a signed-in person sees may be kept by a browser or proxy.
            if signed_in or "cache-control" not in present:
                h["Cache-Control"] = "no-store"
                h["Pragma"] = "no-cache"
        return response
