"""Japanese by default, English by choice (remembered per user, or in the session before sign-in)."""
from __future__ import annotations

from babel import Locale
from babel.support import NullTranslations, Translations
from flask import has_request_context, session
from flask.globals import _cv_app
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


def request_locale() -> Locale | None:
    """Flask-Babel's ``get_locale()``, read straight from where it keeps its answer for the
    request (``g._flask_babel``, also under ``force_locale``) once it has chosen one: its own
    look-up goes through three context proxies, and a page asks for every message it shows."""
    app_ctx = _cv_app.get(None)
    if app_ctx is not None:
        chosen = getattr(app_ctx.g.__dict__.get("_flask_babel"), "babel_locale", None)
        if chosen is not None:
            return chosen
    return get_locale()


class _CatalogueByLocale(Domain):
    """The default domain, with its catalogues found by the request's locale in one dictionary
    look-up. Flask-Babel's own asks for the request's context and spells the locale out on
    every message, and a case page translates several hundred (labels, options, headings)."""

    def __init__(self, domain: str) -> None:
        super().__init__(domain=domain)
        self._by_locale: dict[Locale, Translations | NullTranslations] = {}
        # The request's own Locale object and its catalogue: found by identity, as comparing
        # two Locale objects is itself a Python call. Holding it keeps its id from being reused.
        self._last: tuple[Locale, Translations | NullTranslations] | None = None

    def get_translations(self) -> Translations | NullTranslations:
        locale = request_locale()
        if locale is None:  # outside a request: Flask-Babel's answer
            return super().get_translations()
        last = self._last
        if last is not None and last[0] is locale:
            return last[1]
        found = self._by_locale.get(locale)
        if found is None:
            # Catalogues are loaded once a process, as Flask-Babel's own cache does.
            found = self._by_locale[locale] = super().get_translations()
        self._last = (locale, found)
        return found


def init_app(app) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=lambda: "Asia/Tokyo")
    # Read by Flask-Babel's get_domain() for every message (a cached property until set).
    domain = babel.domain_instance = _CatalogueByLocale(app.extensions["babel"].default_domain)
    # The templates' _() and friends as Flask-Babel installs them, minus its look-up of the
    # domain per message: the portal has the one.
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: domain.get_translations().ugettext(s),
        ngettext=lambda s, p, n: domain.get_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: domain.get_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: domain.get_translations().unpgettext(c, s, p, n),
    )
