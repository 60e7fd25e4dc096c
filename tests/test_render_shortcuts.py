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
