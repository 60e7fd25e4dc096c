"""Templates compiled per language with their literal messages already translated
(portal.core.localised_templates, issue 20) say exactly what the run-time ``_`` says: every
message of both catalogues, with hostile values, escaped or not; a page follows a change of
language; a template that rebinds the message function is refused."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from flask import render_template
from flask_babel import force_locale, gettext
from jinja2 import TemplateAssertionError

from tests.conftest import csrf_of

CATALOGUES = Path(__file__).resolve().parent.parent / "portal" / "translations"
HOSTILE = '<b class="x">&amp;\'</b>'
PLACEHOLDER = re.compile(r"%\((\w+)\)([sd])")
STRAY_PERCENT = re.compile(r"%(?!\(\w+\)[sd]|%)")


def _messages() -> list[str]:
    with (CATALOGUES / "ja" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return [m.id for m in read_po(f) if m.id and isinstance(m.id, str)]


def _call(msgid: str) -> str:
    """``_("…", name=value, …)`` in template syntax, the values the render's ``hostile`` string
    or ``number``, so that they are formatted in as the page renders."""
    args = "".join(f", {name}={'number' if kind == 'd' else 'hostile'}"
                   for name, kind in dict(PLACEHOLDER.findall(msgid)).items())
    return f"{{{{ _({json.dumps(msgid)}{args}) }}}}"


VALUES = {"hostile": HOSTILE, "number": 7}


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_every_message_says_what_the_run_time_call_says(app, lang):
    messages = _messages()
    assert len(messages) > 500
    with app.test_request_context("/"), force_locale(lang):
        folded = app.jinja_env.for_language(lang)
        calls = []
        for m in messages:
            if not STRAY_PERCENT.search(m):
                calls.append(_call(m))
                continue
            try:
                app.jinja_env.from_string(_call(m)).render(VALUES)
            except ValueError:  # a "%" meant for Python's formatting: fails in a template either way
                with pytest.raises(ValueError):
                    folded.from_string(_call(m)).render(VALUES)
                continue
            calls.append(_call(m))
        assert len(calls) > 500
        source = "\n".join(calls)
        unescaped = "{% autoescape false %}" + source + "{% endautoescape %}"
        assert folded is not app.jinja_env and folded.language == lang
        escaped = folded.from_string(source).render(VALUES)
        assert escaped == app.jinja_env.from_string(source).render(VALUES)
        assert "&lt;b class=&#34;x&#34;&gt;&amp;amp;&#39;&lt;/b&gt;" in escaped and HOSTILE not in escaped
        raw = folded.from_string(unescaped).render(VALUES)
        assert raw == app.jinja_env.from_string(unescaped).render(VALUES)
        assert HOSTILE in raw


def test_a_literal_message_is_not_looked_up_when_the_page_renders(app):
    def refuse(*args, **kwargs):
        raise AssertionError("looked up at run time")

    text = '{{ _("Send") }}|{{ _("%(n)d reports", n=n) }}|{{ gettext("100%% sure") }}'
    with app.test_request_context("/"), force_locale("en"):
        template = app.jinja_env.for_language("en").from_string(text)
        saved = app.jinja_env.globals["_"], app.jinja_env.globals["gettext"]
        app.jinja_env.globals.update(_=refuse, gettext=refuse)
        try:
            assert template.render(n=3) == "Send|3 reports|100% sure"
            with pytest.raises(AssertionError, match="run time"):
                app.jinja_env.from_string(text).render(n=3)
        finally:
            app.jinja_env.globals.update(_=saved[0], gettext=saved[1])


# A message wherever a template may put one. Text with "&" and "'" shows a message escaped
# twice or not at all; a constant join (~) or a filter is where Jinja folds constants.
PLACES = [
    '{{ _("M&A / capital tie-up") }}|{{ _("Enter the person\'s name.") }}',
    '{{ _("M&A / capital tie-up") ~ ":" }}|{{ (_("M&A / capital tie-up") ~ " x")|paren }}',
    '{{ _("M&A / capital tie-up")|upper }}|{{ _("Send")|length }}|{{ _("M&A / capital tie-up")|e }}',
    '{% set l = _("M&A / capital tie-up") %}{{ l }}{{ l ~ "&" }}|{% set m = _("Send") ~ "" %}{{ m }}',
    '{{ _("M&A / capital tie-up") if flag else _("Send") }}|{{ _("Send") if not flag }}|{{ "<" if flag else _("Send") }}',
    '{{ _("Page %(n)d of %(total)d", n=number, total=number) }}|{{ _("%(n)d reports", n=hostile|length) }}',
    '{% macro box(t) %}[{{ t }}]{{ caller() if caller }}{% endmacro %}{{ box(_("M&A / capital tie-up")) }}'
    '{% call box(_("Send")) %}{{ _("M&A / capital tie-up") }}{% endcall %}',
    '{% filter upper %}{{ _("Send") }}{{ _("M&A / capital tie-up") }}{% endfilter %}'
    '|{% set block %}{{ _("M&A / capital tie-up") }}{% endset %}{{ block }}',
    '{% for w in [hostile] %}{{ _("Send") }}{{ w }}{{ loop.index }}{% endfor %}',
    '{% autoescape false %}{{ _("M&A / capital tie-up") ~ hostile }}{{ _("Send") if flag }}{% endautoescape %}',
    '{% include "reports/_pager.html" %}',
]


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("text", PLACES)
def test_a_message_anywhere_in_a_template_says_what_the_run_time_call_says(app, lang, text):
    values = {**VALUES, "flag": True, "page": type("P", (), {"page": 2, "pages": 3, "total": 9})(), "args": {}}
    with app.test_request_context("/reports"), force_locale(lang):
        at_run_time = app.jinja_env.from_string(text).render(values)
        assert app.jinja_env.for_language(lang).from_string(text).render(values) == at_run_time
        assert at_run_time.strip()


def test_a_message_that_is_not_a_literal_is_still_translated_when_it_runs(app):
    with app.test_request_context("/"), force_locale("ja"):
        template = app.jinja_env.for_language("ja").from_string("{{ _(word) }}|{{ _('Se' ~ rest) }}")
        ja = gettext("Send")
        assert ja != "Send"
        assert template.render(word="Send", rest="nd") == f"{ja}|{ja}"


@pytest.mark.parametrize("text", [
    "{% set _ = 1 %}",
    "{% for gettext in [1] %}{% endfor %}",
    "{% macro m(_) %}{% endmacro %}",
    "{% with _ = 2 %}{% endwith %}",
    '{% from "macros/forms.html" import field as _ %}',
    "{% macro gettext(s) %}[{{ s }}]{% endmacro %}",
    '{% import "macros/forms.html" as _ %}',
])
def test_a_template_may_not_rebind_the_message_function(app, text):
    with app.test_request_context("/"):
        for env in (app.jinja_env, app.jinja_env.for_language("ja")):
            with pytest.raises(TemplateAssertionError):
                env.from_string(text)


def test_each_language_has_its_own_compiled_pages(app, client):
    page = client.get("/auth/login").get_data(as_text=True)
    assert '<html lang="ja">' in page and "ログイン" in page
    for lang, words in (("en", "Sign in"), ("ja", "ログイン"), ("en", "Sign in")):
        client.post("/language", data={"lang": lang, "next": "/auth/login", "csrf_token": csrf_of(page)})
        page = client.get("/auth/login").get_data(as_text=True)
        assert f'<html lang="{lang}">' in page and words in page
        other = "ログイン" if lang == "en" else "Sign in"
        assert other not in page



def test_a_page_forced_into_another_language_is_compiled_for_that_language(app):
    # A mail or a notice is written in its reader's language, whatever the request's.
    with app.test_request_context("/"):
        ja = render_template("errors/generic.html", title="t", message="m", code=418)
        with force_locale("en"):
            en = render_template("errors/generic.html", title="t", message="m", code=418)
        assert render_template("errors/generic.html", title="t", message="m", code=418) == ja
        in_japanese = gettext("Error code: %(code)s", code=418)
    assert "Error code: 418" in en and "Error code" not in ja
    assert in_japanese != "Error code: 418" and in_japanese in ja


def test_a_render_may_not_name_the_message_function(app):
    with app.test_request_context("/"):
        for name in ("_", "gettext"):
            with pytest.raises(RuntimeError, match="message function"):
                render_template("errors/generic.html", title="t", message="m", code=1, **{name: lambda s: "x"})


def test_the_languages_follow_the_applications_template_reloading(app):
    env = app.jinja_env
    saved = env.auto_reload
    with app.test_request_context("/"):
        folded = env.for_language("en")
    try:
        for value in (True, False):
            env.auto_reload = value
            assert folded.auto_reload is value
    finally:
        env.auto_reload = saved
