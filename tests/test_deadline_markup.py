"""A deadline drawn by portal.core.deadline_markup (issue 20: Python instead of two macro calls
per list row) is byte for byte what the Jinja macros it replaced drew, escaping included."""
from __future__ import annotations

from flask import render_template_string
from flask_babel import force_locale
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from portal.core.deadline_markup import draw_dated, draw_deadline
from portal.reports.deadlines import Shown

# templates/macros/deadline.html as it stood before the change, the reference.
MACROS = """\
{% macro dated(text, overdue, kind="", overdue_text=None) -%}
<span class="deadline{% if overdue %} deadline--overdue{% endif %}" data-test="deadline"{% if kind %} data-kind="{{ kind }}"{% endif %}>{{ text }}{% if overdue %} <strong class="tag tag--overdue">{{ overdue_text or _("Overdue") }}</strong>{% endif %}</span>
{%- endmacro %}

{% macro deadline(d, overdue_text=None) -%}
{%- if d %}{{ dated(d.text, d.overdue, d.kind, overdue_text) }}{% if d.note %} <strong class="tag tag--overdue" data-test="transfer-passed">{{ d.note }}</strong>{% endif %}{% endif -%}
{%- endmacro %}
"""

# Text with every character HTML gives meaning to, and markup that is already safe.
texts = st.one_of(st.text(alphabet='<>&"\' a期限x', max_size=8),
                  st.text(alphabet='<>&"\' ab', max_size=6).map(Markup))
shown = st.builds(Shown, kind=st.sampled_from(["", "file_by", "review_target", 'x"<']), text=texts,
                  overdue=st.booleans(), note=st.one_of(st.just(""), texts))


def _macro(call: str, **values) -> str:
    # The macros' definitions leave their blank lines before the call's output, never in it.
    return render_template_string(MACROS + "{{ " + call + " }}", **values).lstrip("\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(d=st.one_of(st.none(), shown), overdue_text=st.one_of(st.none(), st.just(""), texts),
       lang=st.sampled_from(["ja", "en"]))
def test_a_deadline_is_drawn_as_the_macro_drew_it(app, d, overdue_text, lang):
    with app.test_request_context("/"), force_locale(lang):
        expected = _macro("deadline(d, overdue_text)", d=d, overdue_text=overdue_text)
        drawn = draw_deadline(d, overdue_text)
        assert isinstance(drawn, Markup) and str(drawn) == expected
        assert render_template_string("{{ draw_deadline(d, overdue_text) }}", d=d, overdue_text=overdue_text) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, overdue=st.booleans(), kind=st.sampled_from(["", "review_target", "<&>"]),
       lang=st.sampled_from(["ja", "en"]))
def test_a_dated_line_is_drawn_as_the_macro_drew_it(app, text, overdue, kind, lang):
    with app.test_request_context("/"), force_locale(lang):
        assert str(draw_dated(text, overdue, kind)) == _macro("dated(text, overdue, kind)", text=text,
                                                              overdue=overdue, kind=kind)


def test_overdue_is_said_in_words_in_the_pages_language(app):
    with app.test_request_context("/"):
        with force_locale("en"):
            assert ">Overdue</strong>" in draw_deadline(Shown("file_by", "1 December 2026", True))
        with force_locale("ja"):
            assert "Overdue" not in draw_deadline(Shown("file_by", "2026年12月1日", True))
