"""Shared form pieces: server-side normalisation (DESIGN §10) and common validators."""
from __future__ import annotations

import re
import unicodedata
from typing import ClassVar

from email_validator import EmailNotValidError, validate_email
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import DecimalField, IntegerField
from wtforms import SelectField as _LibrarySelectField
from wtforms import TextAreaField as _LibraryTextAreaField
from wtforms import widgets
from wtforms.validators import StopValidation, ValidationError

from portal.core.i18n import gettext, lazy_gettext as _l

_HYPHENS = re.compile("[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff0d\ufe63\u2043]")


def normalise_code(value: str | None) -> str | None:
    """NFKC for codes and numbers only: full-width digits, hyphen variants, commas and spaces."""
    if value is None:
        return None
    v = unicodedata.normalize("NFKC", value)
    v = _HYPHENS.sub("-", v)
    return re.sub(r"[\s,]", "", v)


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def normalise_email_input(value: str | None) -> str | None:
    if value is None:
        return None
    # Full-width ＠ and letters typed with an IME are the same address.
    return unicodedata.normalize("NFKC", value).strip()


class Email:
    def __init__(self, message=None):
        self.message = message

    def __call__(self, form, field):
        if not field.data:
            return
        try:
            validate_email(field.data, check_deliverability=False)
        except EmailNotValidError:
            raise ValidationError(self.message or _l("Enter an e-mail address in the correct format, like name@example.co.jp."))


class Required:
    """Like DataRequired, with a message that names the field (GOV.UK/DADS pattern)."""

    field_flags: ClassVar[dict[str, bool]] = {"required": True}

    def __init__(self, message):
        self.message = message

    def __call__(self, form, field):
        if field.data is None or field.data is False or (isinstance(field.data, str) and not field.data.strip()) or field.data == []:
            field.errors[:] = []
            raise StopValidation(self.message)


class BaseForm(FlaskForm):
    class Meta:
        def render_field(self, field, render_kw):
            # The CSRF token is rendered in every form, several on one page (the case page):
            # an id on each would repeat, and nothing refers to it.
            if field.type == "CSRFTokenField" and "id" not in render_kw:
                if not render_kw and not field.render_kw:
                    # What the library writes for it (tests/test_form_widgets.py), in one step:
                    # a case page has four of these.
                    return Markup(f'<input name="{escape(field.name)}" type="hidden" value="{escape(field._value())}">')
                render_kw = {**render_kw, "id": False}
            return super().render_field(field, render_kw)


def html_attributes(**kwargs) -> Markup:
    """WTForms' ``html_params`` (the same output: tests/test_form_widgets.py), written as one
    plain string escaped piece by piece: the library's ``Markup.format`` per attribute made it
    the costliest step of drawing a text area, and ``Markup %`` still wraps every piece."""
    parts = []
    for key, value in sorted(kwargs.items()):
        key = key.rstrip("_")
        if key.startswith(("data_", "aria_")):
            key = key.replace("_", "-")
        if value is True:
            parts.append(str(escape(key)))
        elif value is not False:
            parts.append(f'{escape(key)}="{str.replace(escape(value), chr(34), "&quot;")}"')
    return Markup(" ".join(parts))


def _flag_attributes(widget, field, kwargs: dict) -> None:
    """What the library's widgets take from ``dir(field.flags)``: the validation attributes set
    on the field (``required``, ``maxlength``...), unless the call gave its own. A flag is an
    instance attribute of ``Flags``; ``dir`` sorted every attribute of the class too."""
    present = getattr(getattr(field, "flags", None), "__dict__", {})
    for k in widget.validation_attrs:
        if k in present and k not in kwargs:
            kwargs[k] = present[k]


class TextArea(widgets.TextArea):
    """WTForms' text area, its attributes written by ``html_attributes``."""

    def __call__(self, field, **kwargs):
        kwargs.setdefault("id", field.id)
        _flag_attributes(self, field, kwargs)
        return Markup(f"<textarea {html_attributes(name=field.name, **kwargs)}>\r\n{escape(field._value())}</textarea>")


class TextAreaField(_LibraryTextAreaField):
    widget = TextArea()


class Select(widgets.Select):
    """WTForms' select, with a plain option (no attributes of its own) written in one step.

    The library writes each option through ``html_params`` and ``Markup.format``: a country
    list has two hundred options, a case page thirty, and that was most of what drawing its
    forms cost (bench/profile_case.py). The markup is the library's (tests/test_form_widgets.py
    compares the two); an option with attributes of its own goes to the library's writer."""

    def __call__(self, field, **kwargs):
        # The library's, with the attributes written by html_attributes and render_option
        # called directly (the library inspects its signature on every select it draws).
        kwargs.setdefault("id", field.id)
        if self.multiple:
            kwargs["multiple"] = True
        _flag_attributes(self, field, kwargs)
        html = [f"<select {html_attributes(name=field.name, **kwargs)}>"]
        if field.has_groups():
            for optgroup, choices in field._iter_groups_normalized():
                if optgroup is not None:
                    html.append(f"<optgroup {html_attributes(label=optgroup)}>")
                html.extend(self.render_option(choice) for choice in choices)
                if optgroup is not None:
                    html.append("</optgroup>")
        else:
            html.extend(self.render_option(choice) for choice in field._iter_choices_normalized())
        html.append("</select>")
        return Markup("".join(html))

    @classmethod
    def render_option(cls, choice, **kwargs):
        if kwargs or choice.render_kw:
            return super().render_option(choice, **kwargs)
        value = str(choice.value) if isinstance(choice.value, bool) else choice.value
        # The library's html_params: the value escaped, then any quote a Markup value kept.
        value = str.replace(escape(value), '"', "&quot;")
        selected = " selected" if choice.selected else ""
        return Markup(f'<option{selected} value="{value}">{escape(choice.label or choice.value)}</option>')


class SelectField(_LibrarySelectField):
    widget = Select()


class DateWindow:
    """A date within ``years_back`` before and ``years_ahead`` after today (JST), with a
    message that says the window (GOV.UK: say what is allowed, not only what is wrong)."""

    def __init__(self, years_back: int, years_ahead: int, *, not_before_today: bool = False):
        self.years_back, self.years_ahead, self.not_before_today = years_back, years_ahead, not_before_today

    def __call__(self, form, field):
        if field.data is None:
            return
        from portal.calendar import window
        from portal.core.templating import jdate
        from portal.core.timeutil import today_jst

        today = today_jst()
        low, high = window(today, self.years_back, self.years_ahead)
        if self.not_before_today:
            low = today
        if not low <= field.data <= high:
            raise ValidationError(gettext("Enter a date from %(low)s to %(high)s.", low=jdate(low), high=jdate(high)))


def _normalise_amount_text(value: str) -> str:
    v = normalise_code(value) or ""
    return v.replace("円", "").replace("¥", "").replace("%", "")


class AmountField(IntegerField):
    """An integer typed any way a person types it: full-width digits, commas, 円."""

    def process_formdata(self, valuelist):
        super().process_formdata([_normalise_amount_text(v) for v in valuelist])


class PercentField(DecimalField):
    def process_formdata(self, valuelist):
        super().process_formdata([_normalise_amount_text(v) for v in valuelist])
