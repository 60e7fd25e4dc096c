"""The case page's shortcuts write what the libraries they stand in for write (issue 20): the
attributes of a form field as WTForms writes them, and translations as Flask-Babel finds them,
also when a message is forced into another language (a mail, a notice)."""
from __future__ import annotations

import pytest
from flask import render_template_string
from flask_babel import force_locale, gettext
from markupsafe import Markup

from portal.core.forms import html_params, wtforms_html_params


@pytest.mark.parametrize("attrs", [
    {},
    {"name": "body", "id": "body-external", "class_": "input input--wide", "rows": 4, "maxlength": "20000"},
    {"aria_describedby": "due-hint due-error", "data_test": "x", "for_": "a"},
    {"selected": True, "disabled": False, "value": 0},
    {"value": 'a"<b>&c'},
    {"value": Markup('<b title="x">')},
    {"value": None, "checked": True},
    {"a&b": "c"},
])
def test_field_attributes_are_written_as_wtforms_writes_them(attrs):
    ours, theirs = html_params(**attrs), wtforms_html_params(**attrs)
    assert ours == theirs
    assert isinstance(ours, Markup)


def test_a_form_field_renders_through_the_shortcut(app):
    from portal.dialogue.forms import MessageForm

    with app.test_request_context("/"):
        form = MessageForm(formdata=None).for_channel("external")
        form.classification.choices = [("public", "公開"), ("restricted", 'A "quoted" <label>')]
        form.classification.data = "restricted"
        html = str(form.classification())
    assert html == ('<select id="classification-external" name="classification" required>'
                    '<option value="public">公開</option>'
                    '<option selected value="restricted">A &#34;quoted&#34; &lt;label&gt;</option></select>')


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
