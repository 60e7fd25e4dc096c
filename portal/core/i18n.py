"""Japanese by default, English by choice (remembered per user, or in the session before sign-in)."""
from __future__ import annotations

from flask import has_request_context, request, session
from flask_babel import Babel, Domain, get_locale
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
    """The portal's one translation domain, its catalogue looked up once per request and locale.

    Flask-Babel keeps a request's locale once chosen, but finds the catalogue again for every
    message, keyed by the locale's name, which it builds each time: a case page translates a few
    hundred messages (templates, field labels, lazy strings), and that was a tenth of its
    profile (bench/profile_case.py). The catalogue found is kept on the request with the locale
    it was found for, and found again whenever the locale is another (``force_locale``)."""

    def get_translations(self):
        locale = get_locale()
        try:
            found_for, translations = request.portal_translations
            if found_for is locale:
                return translations
        except AttributeError:  # the first message of this request
            pass
        except RuntimeError:  # outside a request (the CLI, a job): looked up each time, as before
            return super().get_translations()
        translations = super().get_translations()
        request.portal_translations = (locale, translations)
        return translations


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
