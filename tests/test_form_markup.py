"""A field as every form shows it (portal.core.form_markup.field): its label, 必須/任意, its
hint and error tied to the control by aria-describedby, the error marked in each language."""
import re

import pytest
from flask import session
from wtforms import BooleanField, RadioField, StringField, TextAreaField

from portal.core.form_markup import field
from portal.core.forms import BaseForm, Required


class _Form(BaseForm):
    name = StringField("Name", description="Like 山田太郎", validators=[Required("Enter the name.")])
    note = TextAreaField("Note")
    agree = BooleanField("I agree", validators=[Required("Tick the box.")])
    colour = RadioField("Colour", choices=[("r", "Red"), ("g", "Green & <b>")], validators=[Required("Choose one.")])


def _form(app, lang, *, posted):
    ctx = app.test_request_context("/", method="POST" if posted else "GET", data={} if posted else None)
    ctx.push()
    session["lang"] = lang
    form = _Form(meta={"csrf": False}) if posted else _Form(formdata=None, meta={"csrf": False})
    if posted:
        assert not form.validate()
    return ctx, form


@pytest.mark.parametrize("lang, mark", [("ja", "＊"), ("en", '<span class="visually-hidden">Error: </span>')])
def test_an_error_is_under_the_label_and_tied_to_the_control(app, lang, mark):
    ctx, form = _form(app, lang, posted=True)
    try:
        html = str(field(form.name, cls="input--wide", autocomplete="off"))
        assert '<div class="form-group form-group--error">' in html
        assert f'<label class="form-label" for="{form.name.id}">' in html
        assert '<p class="form-hint" id="name-hint">Like 山田太郎</p>' in html
        assert f'<p class="form-error" id="name-error">{mark}Enter the name.</p>' in html
        control = re.search(r"<input [^>]*>", html).group(0)
        assert 'aria-describedby="name-hint name-error"' in control and 'aria-invalid="true"' in control
        assert 'class="input input--wide input--error"' in control and 'autocomplete="off"' in control
        assert html.index("form-label") < html.index("form-hint") < html.index("form-error") < html.index("<input")
    finally:
        ctx.pop()


def test_a_blank_field_says_whether_it_is_required_and_points_at_its_hint_only(app):
    ctx, form = _form(app, "ja", posted=False)
    try:
        name, note = str(field(form.name)), str(field(form.note, rows=3, extra={"maxlength": "200"}))
        assert '<span class="req-tag req-tag--required">※必須</span>' in name and "form-error" not in name
        assert 'aria-describedby="name-hint"' in name and "aria-invalid" not in name
        assert '<span class="req-tag">※任意</span>' in note and "aria-describedby" not in note
        assert re.search(r'<textarea [^>]*maxlength="200"[^>]*rows="3"', note)
    finally:
        ctx.pop()


def test_a_checkbox_and_a_radio_group_keep_their_own_shapes(app):
    ctx, form = _form(app, "en", posted=True)
    try:
        agree = str(field(form.agree))
        assert re.search(r'<div class="choice"><input [^>]*aria-invalid="true"[^>]*class="choice__input"[^>]*type="checkbox"'
                         r'[^>]*> <label class="choice__label" for="agree">I agree</label> <span class="req-tag', agree)
        colour = str(field(form.colour))
        assert '<fieldset class="fieldset" aria-describedby="colour-error"><legend class="form-label">Colour ' in colour
        assert colour.count('aria-invalid="true"') == 2  # each radio
        assert "Green &amp; &lt;b&gt;" in colour and "<b>" not in colour
    finally:
        ctx.pop()
