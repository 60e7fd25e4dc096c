"""Japanese by default, English by choice (remembered per user, or in the session before sign-in).

The portal translates through this module (``gettext``, ``ngettext``, ``lazy_gettext``,
``language``) rather than through Flask-Babel's functions of the same names, with the same
results: Flask-Babel finds the request's domain, its locale and then the catalogue again for
every message, seven context-local look-ups where one does, and a case page translates about
two hundred messages (templates, field labels, lazy strings), a tenth of its time
(bench/profile_case.py). Flask-Babel still chooses the locale (``select_locale``) and loads the
catalogue; this module keeps what it found beside Flask-Babel's own per-context state, with the
locale it was found for, and finds it again whenever the locale is another (``force_locale``)."""
from __future__ import annotations

from flask import g, has_request_context, session
from flask_babel import Babel, Domain, get_domain, get_locale
from flask_babel.speaklater import LazyString
from flask_login import current_user
from jinja2 import pass_eval_context
from markupsafe import Markup

LANGUAGES = ("ja", "en")

babel = Babel()


def select_locale() -> str:
    if not has_request_context():
        return "ja"
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return current_user.locale
    lang = session.get("lang")
    return lang if lang in LANGUAGES else "ja"


def _found() -> tuple:
    """(locale, catalogue, language) of the current context."""
    try:
        ns = g._flask_babel  # Flask-Babel's state for this context (its locale, its domain)
        found = ns.portal_found
        if found[0] is ns.babel_locale:
            return found
    except (AttributeError, RuntimeError):  # the first message here, or outside any context
        pass
    domain = get_domain()
    # The library's own look-up, not the portal domain's (which would come back here).
    catalogue = Domain.get_translations(domain)
    locale = get_locale()
    found = (locale, catalogue, str(locale))
    try:
        g._flask_babel.portal_found = found
    except (AttributeError, RuntimeError):  # outside a context: looked up each time, as before
        pass
    return found


def translations():
    return _found()[1]


def language() -> str:
    """``str(get_locale())``: "ja" or "en" (``"None"`` outside any context, as Flask-Babel says)."""
    return _found()[2]


def gettext(string: str, **variables) -> str:
    s = _found()[1].ugettext(string)
    return s % variables if variables else s


def ngettext(singular: str, plural: str, num: int, **variables) -> str:
    variables.setdefault("num", num)
    return _found()[1].ungettext(singular, plural, num) % variables


def pgettext(context: str, string: str, **variables) -> str:
    s = _found()[1].upgettext(context, string)
    return s % variables if variables else s


def npgettext(context: str, singular: str, plural: str, num: int, **variables) -> str:
    variables.setdefault("num", num)
    return _found()[1].unpgettext(context, singular, plural, num) % variables


def lazy_gettext(string: str, **variables) -> LazyString:
    return LazyString(gettext, string, **variables)


@pass_eval_context
def template_gettext(eval_ctx, string: str, /, **variables):
    """Jinja's new-style ``gettext`` (``jinja2.ext._make_new_gettext``, the same result) as one
    call: the library's ``_`` resolves ``gettext`` in the template's context and calls it
    through the context, which calls the catalogue through the context again, three calls for
    each of the fifty-odd messages a case page shows. A message is always a format string in
    an autoescaped template (``%%`` is a percent sign); one without ``%`` is its own result."""
    rv = _found()[1].ugettext(string)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    if not variables and "%" not in rv:
        return rv
    return rv % variables


class PortalDomain(Domain):
    """The portal's one domain: what Flask-Babel's own functions (``flask_babel.gettext``, the
    formatters, Flask-WTF's messages) translate with finds the catalogue the same way."""

    def get_translations(self):
        return _found()[1]


def init_app(app) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=lambda: "Asia/Tokyo")
    babel.domain_instance = PortalDomain(domain=app.extensions["babel"].default_domain)
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _found()[1].ugettext(s),
        ngettext=lambda s, p, n: _found()[1].ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: _found()[1].upgettext(c, s),
        npgettext=lambda c, s, p, n: _found()[1].unpgettext(c, s, p, n),
    )
    # ``_`` calls ``gettext`` directly: nothing in a template rebinds ``gettext``.
    app.jinja_env.globals.update(_=template_gettext, gettext=template_gettext)
