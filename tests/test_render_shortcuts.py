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
