"""Japanese by default, English by choice (remembered per user, or in the session before sign-in)."""
from __future__ import annotations

from flask import has_request_context, request, session
from flask_babel import Babel, Domain
from flask_login import current_user

LANGUAGES = ("ja", "en")

babel = Babel()


def select_locale() -> str:
    if not has_request_context():
        return "ja"
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return current_user.locale
    lang = session.get("lang")
    return lang if lang in LANGUAGES else "ja"


class RequestDomain(Domain):
    """The portal's one translation domain, its catalogue looked up once per request.

    Flask-Babel fixes the locale for a request on first use (its context keeps it), but finds
    the catalogue again for every message: the request's context, the locale, the locale's
    name as the cache key. A case page translates several hundred messages (templates, field
    labels, lazy strings), and that search was a tenth of it (bench/profile_case.py). The
    catalogue found first is kept on the request, so it changes when the locale does: with
    the next request."""

    def get_translations(self):
        try:
            return request.portal_translations
        except AttributeError:  # the first message of this request
            translations = request.portal_translations = super().get_translations()
            return translations
        except RuntimeError:  # outside a request (the CLI, a job): looked up each time, as before
            return super().get_translations()


def init_app(app) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=lambda: "Asia/Tokyo")
    # The templates' _() and friends as Flask-Babel installs them, minus its look-up of the
    # domain for every message (a case page translates several hundred): the portal has one.
    domain = babel.domain_instance = RequestDomain(domain=app.extensions["babel"].default_domain)
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: domain.get_translations().ugettext(s),
        ngettext=lambda s, p, n: domain.get_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: domain.get_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: domain.get_translations().unpgettext(c, s, p, n),
    )
