"""The templates' translation shortcut (issue 20) finds what Flask-Babel finds, also when a
message is forced into another language (a mail, a notice)."""
from __future__ import annotations

from flask import render_template_string
from flask_babel import force_locale, gettext


def test_translations_follow_the_request_and_a_forced_locale(app):
    template = '{{ _("Send") }}'
    with app.test_request_context("/"):
        ja = gettext("Send")
        assert ja != "Send"
        assert render_template_string(template) == ja
        with force_locale("en"):
            assert gettext("Send") == "Send"
            assert render_template_string(template) == "Send"
        assert gettext("Send") == ja
        assert render_template_string(template) == ja


def test_the_portals_functions_follow_the_request_a_forced_locale_and_the_next_request(app):
    from portal.core import i18n

    label = i18n.lazy_gettext("Send")
    with app.test_request_context("/"):
        ja = gettext("Send")
        assert (i18n.gettext("Send"), str(label), i18n.language()) == (ja, ja, "ja")
        with force_locale("en"):
            assert (i18n.gettext("Send"), str(label), i18n.language()) == ("Send", "Send", "en")
            assert gettext("Send") == "Send"
        assert (i18n.gettext("Send"), str(label), i18n.language()) == (ja, ja, "ja")
        assert i18n.gettext("%(n)s days", n=3) == gettext("%(n)s days", n=3)
    with app.test_request_context("/"):
        from flask import session

        session["lang"] = "en"  # another request, another choice: nothing kept from the last
        assert (i18n.gettext("Send"), str(label), i18n.language()) == ("Send", "Send", "en")
    # Outside any request the message stays as written, as with Flask-Babel.
    assert i18n.gettext("Send") == gettext("Send") == "Send"


def test_the_template_gettext_gives_what_jinjas_own_gives(app):
    """portal.core.i18n.template_gettext against Jinja's new-style gettext, in an autoescaped
    and a plain template, with and without variables, with a percent sign and markup."""
    from jinja2 import Environment
    from jinja2.ext import _make_new_gettext

    from portal.core import i18n

    calls = [('"Send"', ""), ('"Send"', ", x=1"), ('"100%% sure"', ""), ('"<b>%(n)s & %(m)s</b>"', ', n="<i>", m=2'),
             ('"Filled in with %(n)d business days from today (%(date)s). A date on a day the government is closed '
              '(a weekend, a holiday or 29 December – 3 January) moves to the next open day."', ', n=5, date="<d>"'),
             ('"Enter the reasons the company will read."', "")]
    with app.test_request_context("/"):
        for lang in ("ja", "en"):
            with force_locale(lang):
                for autoescape in (True, False):
                    ours = Environment(autoescape=autoescape)
                    ours.globals["_"] = i18n.template_gettext
                    theirs = Environment(autoescape=autoescape)
                    theirs.globals["_"] = _make_new_gettext(lambda s: i18n.translations().ugettext(s))
                    for text, variables in calls:
                        source = f"{{{{ _({text}{variables}) }}}}|{{{{ _({text}{variables})|length }}}}"
                        assert ours.from_string(source).render() == theirs.from_string(source).render()
        assert app.jinja_env.globals["_"] is app.jinja_env.globals["gettext"] is i18n.template_gettext
        assert render_template_string('{{ _("100%% sure") }}') == "100% sure"
