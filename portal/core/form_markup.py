"""A form field as the portal shows it, after DADS / GOV.UK: the label, 必須/任意 as text, a
hint, the error under the label (＊ on Japanese pages, a hidden "Error:" on English ones), then
the control with ``aria-describedby`` and ``aria-invalid``. No placeholder stands in for a label.

Written in Python rather than as a Jinja macro: a case page draws a dozen fields, and the
macro's calls (the field, its tag, its description ids) were a tenth of the page's time
(bench/profile_case.py). The control itself is still the field's WTForms widget."""
from __future__ import annotations

from markupsafe import Markup, escape

from portal.core.i18n import gettext, language

_CHOICE_GROUPS = ("CheckboxesField", "RadioField")


def error_mark() -> Markup:
    """What goes before an error message under a field: ＊ on Japanese pages (DADS), a
    visually hidden "Error:" on English ones (GOV.UK), so a screen reader says it is an error."""
    if language() == "ja":
        return Markup("＊")
    return Markup(f'<span class="visually-hidden">{escape(gettext("Error:"))} </span>')


def required_tag(f) -> Markup:
    if f.flags.required:
        return Markup(f'<span class="req-tag req-tag--required">{escape(gettext("Required"))}</span>')
    return Markup(f'<span class="req-tag">{escape(gettext("Optional"))}</span>')


def described_by(f) -> str:
    """The ids of what describes the field's control: its hint, its error."""
    ids = []
    if f.description:
        ids.append(f"{f.id}-hint")
    if f.errors:
        ids.append(f"{f.id}-error")
    return " ".join(ids)


def _hint(f) -> Markup:
    if not f.description:
        return Markup("")
    return Markup(f'<p class="form-hint" id="{escape(f.id)}-hint">{escape(f.description)}</p>')


def _errors(f, between: str) -> Markup:
    if not f.errors:
        return Markup("")
    mark = error_mark()
    text = Markup(between).join(mark + escape(e) for e in f.errors)
    return Markup(f'<p class="form-error" id="{escape(f.id)}-error">{text}</p>')


def _group_class(f) -> str:
    return "form-group form-group--error" if f.errors else "form-group"


def field(f, type=None, autocomplete=None, inputmode=None, cls="", rows=None, extra=None) -> Markup:
    """The whole form group of ``f``; the keywords become attributes of its control."""
    desc = described_by(f)
    kw = {}
    if desc:
        kw["aria-describedby"] = desc
    if f.errors:
        kw["aria-invalid"] = "true"
    if autocomplete:
        kw["autocomplete"] = autocomplete
    if inputmode:
        kw["inputmode"] = inputmode
    if rows:
        kw["rows"] = rows
    if extra:
        kw.update(extra)
    if f.type in _CHOICE_GROUPS:
        return _choice_group(f, desc)
    if f.type == "BooleanField":
        return Markup(f'<div class="{_group_class(f)}">{_errors(f, "")}<div class="choice">'
                      f'{escape(f(**{"class": "choice__input", **kw}))} {escape(f.label(**{"class": "choice__label"}))} '
                      f'{required_tag(f)}</div>{_hint(f)}</div>')
    control_kw = {"class": f"input {cls}" + (" input--error" if f.errors else ""), **kw}
    if type:
        control_kw["type"] = type
    # Each piece escaped once and joined as a plain string: Markup's % wraps every argument
    # in a helper object, and a case page draws about fifteen of these.
    return Markup(f'<div class="{_group_class(f)}"><label class="form-label" for="{escape(f.id)}">'
                  f'{escape(f.label.text)} {required_tag(f)}</label>{_hint(f)}{_errors(f, "<br>")}'
                  f'{escape(f(**control_kw))}</div>')


def _choice_group(f, desc: str) -> Markup:
    sub_kw = {"class": "choice__input"}
    if f.errors:
        sub_kw["aria-invalid"] = "true"
    label_kw = {"class": "choice__label"}
    choices = Markup("").join(Markup('<div class="choice">%s %s</div>') % (sub(**sub_kw), sub.label(**label_kw))
                              for sub in f)
    described = Markup(' aria-describedby="%s"') % desc if desc else Markup("")
    return Markup('<div class="%s"><fieldset class="fieldset"%s><legend class="form-label">%s %s</legend>'
                  '%s%s<div class="choices">%s</div></fieldset></div>') % (
        _group_class(f), described, f.label.text, required_tag(f), _hint(f), _errors(f, "<br>"), choices)
